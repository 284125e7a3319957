"""nova.conf options of the powervmd shim: the [powervmd] group.

Only where powervmd's API socket is and how long the shim waits. Everything about PowerVM
(HMC, managed system, storage, networking) lives in powervmd.conf (docs/configuration.md).
"""
from oslo_config import cfg

GROUP = "powervmd"

OPTS = [
    cfg.StrOpt("api_socket", default="/run/powervmd/api.sock",
               help="Path of powervmd's API Unix socket (powervm_api_socket in "
                    "powervmd.conf)."),
    cfg.FloatOpt("request_timeout", default=60.0, min=0.1,
                 help="Seconds a single API request (connect, send, answer) may take "
                      "before the shim reports powervmd as unreachable. Long-polls add "
                      "their wait to it."),
    cfg.FloatOpt("long_poll", default=60.0, min=0.1, max=300.0,
                 help="Seconds of each long-poll (GET /v1/operations/{id}?wait=, GET "
                      "/v1/events?wait=); the shim polls again until the operation ends."),
    cfg.IntOpt("operation_timeout", default=0, min=0,
               help="Seconds the shim waits for one operation to end before it gives up "
                    "(the operation keeps running in powervmd). 0: wait until powervmd "
                    "ends it (every operation has a deadline there)."),
    cfg.FloatOpt("event_delay", default=15.0, min=0.0,
                 help="Seconds a partition state change waits before it becomes a nova "
                      "lifecycle event; a later change of the same partition replaces it, "
                      "so a reboot's stop and start do not reach nova out of order "
                      "(nova-powervm's 15 s)."),
    cfg.FloatOpt("health_interval", default=30.0, min=0.1,
                 help="Seconds between checks of powervmd and its HMC; while they fail the "
                      "compute service is disabled (reason prefixed 'AUTO: '), and enabled "
                      "again when they pass."),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
