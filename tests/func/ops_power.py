#!/usr/bin/python3
"""ops_power: the power operations (power_off, power_on, reboot, resume_state_on_host_boot)
and the host and instance reads, through the real stack (API, journal, workers, client)
against pvmsim, in HMC mode and in NovaLink mode (scripts/stack --mode).

Each operation is run twice (the second finds the work done and sends nothing); pvmsim's
audit proves which jobs were sent. The RMC-inactive (VSP) path: pvmsim ties RMC to
`running`, so the test leaves a partition `starting` with no job (pvmsim killed and
restarted during a PowerOn, as after an HMC restart) and powers that off. Escalation: a
timeout shorter than pvmsim's job time. Faults: 503s on partition reads and injected job
failures; every operation still finishes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402
from stacklib import check, log, lpar_uuid, wait_until  # noqa: E402

JOB_MS = 1000
MS_NAME = "sim-8408-E8E-SN10678CV"


class ModeStack(stacklib.Stack):
    def __init__(self, name, mode, **kw):
        super().__init__(name, mode=mode, **kw)


class Runner:
    def __init__(self, st, uuid):
        self.st = st
        self.uuid = uuid
        self.lpar = lpar_uuid(uuid)
        self.n = 0

    def run(self, typ, params=None, expect="succeeded", timeout=60):
        self.n += 1
        p = {"instance": {"uuid": self.uuid, "name": "instance-%s" % self.uuid[:8]}}
        p.update(params or {})
        r = self.st.submit({"type": typ, "instance_uuid": self.uuid, "params": p,
                            "idempotency_key": "k-%s-%d-%s" % (typ, self.n, self.uuid),
                            "request_id": "req-ops-power-%d" % self.n})
        check(r.status == 202, "submit %s: %r" % (typ, r))
        op = self.st.wait_terminal([r.json["id"]], timeout, typ)[r.json["id"]]
        check(op["state"] == expect, "%s %s ended %s (%s): %s" % (
            typ, params, op["state"], op["error"], op.get("history")))
        return op

    def jobs(self):
        return stacklib.audit_counts(self.st.audit()).get(self.lpar, {}).get("jobs", {})

    def cancels(self):
        return sum(1 for e in self.st.audit() if e.get("method") == "POST" and
                   e.get("path", "").endswith("/cancel") and 200 <= e.get("status", 0) < 300)

    def state(self):
        return self.st.partitions().get(self.lpar)

    def instance(self):
        r = self.st.api("GET", "/v1/instances/%s" % self.uuid)
        check(r.status == 200, "GET instance: %r" % r)
        return r.json

    def wait_cache(self, power_state):
        wait_until(lambda: self.instance()["power_state"] == power_state, 20,
                   "the cache to show power state %d" % power_state)

    def delta(self, before, name):
        return self.jobs().get(name, 0) - before.get(name, 0)


def scenario(mode, rng):
    with ModeStack("ops-power-" + mode, mode, job_ms=JOB_MS, workers=4) as st:
        uuid = stacklib.new_uuid(rng)
        R = Runner(st, uuid)
        # A partition to work on (test_steps without delete_at_end: created, on, off).
        r = st.submit({"type": "test_steps", "instance_uuid": uuid, "params": {}})
        check(r.status == 202, "test_steps: %r" % r)
        op = st.wait_terminal([r.json["id"]], 60, "test_steps")[r.json["id"]]
        check(op["state"] == "succeeded", "test_steps: %s" % op["error"])
        check(R.state() == "not activated", "partition state %s" % R.state())

        # ---- validation ----
        r = st.submit({"type": "reboot", "instance_uuid": uuid,
                       "params": {"instance": {"uuid": uuid}, "reboot_type": "WARM"}})
        check(r.status == 400 and r.error().get("field") == "params.reboot_type", repr(r))
        r = st.submit({"type": "power_off", "instance_uuid": uuid, "params": {"timeout": 1}})
        check(r.status == 400 and r.error().get("field") == "params.instance", repr(r))
        r = st.submit({"type": "power_off", "instance_uuid": uuid,
                       "params": {"instance": {"uuid": uuid}, "timeout": -1}})
        check(r.status == 400 and r.error().get("field") == "params.timeout", repr(r))
        r = st.submit({"type": "resume_state_on_host_boot", "instance_uuid": uuid,
                       "params": {"instance": {"uuid": uuid}}})
        check(r.status == 400 and r.error().get("field") == "params.power_state_before",
              repr(r))
        other = stacklib.new_uuid(rng)
        r = st.submit({"type": "power_on", "instance_uuid": uuid,
                       "params": {"instance": {"uuid": other}}})
        check(r.status == 400 and r.error().get("field") == "params.instance.uuid", repr(r))

        # ---- power_off of a partition already off: nothing sent ----
        j0 = R.jobs()
        op = R.run("power_off", {"timeout": 30})
        check(op["result"]["already_off"] is True and R.delta(j0, "PowerOff") == 0,
              "power_off of an off partition: %s %s" % (op["result"], R.jobs()))

        # ---- power_on, twice ----
        j0 = R.jobs()
        op = R.run("power_on")
        check(op["result"]["already_on"] is False and op["result"]["power_state"] == 1,
              repr(op["result"]))
        check(R.state() == "running", "after power_on: %s" % R.state())
        op = R.run("power_on")
        check(op["result"]["already_on"] is True, repr(op["result"]))
        check(R.delta(j0, "PowerOn") == 1, "PowerOn jobs: %s" % R.jobs())
        R.wait_cache(1)

        # ---- host and instance reads ----
        h = st.api("GET", "/v1/host").json
        check(h["hypervisor_type"] == "phyp" and h["hypervisor_hostname"] == MS_NAME and
              h["nodes"] == [MS_NAME], repr(h))
        check(h["vcpus"] == 400 and h["proc_units_factor"] == 0.1, "vcpus %s" % h["vcpus"])
        check(h["vcpus_used"] == 1 and h["memory_mb"] == 524288, repr(h))
        check(h["memory_mb_used"] == 524288 - h["memory_available_mb"], repr(h))
        check(isinstance(h["hypervisor_version"], int) and h["cpu_info"], repr(h))
        inv = h["inventory"]
        check(sorted(inv) == ["DISK_GB", "MEMORY_MB", "VCPU"], "inventory classes %s" % sorted(inv))
        check(inv["DISK_GB"]["total"] == h["disk"]["total_gb"] > 0, repr(inv["DISK_GB"]))
        check(inv["VCPU"]["total"] == 400 and inv["VCPU"]["max_unit"] == 400 and
              inv["VCPU"]["min_unit"] == 1 and inv["VCPU"]["step_size"] == 1 and
              inv["VCPU"]["allocation_ratio"] == 1.0, repr(inv["VCPU"]))
        check(inv["MEMORY_MB"]["total"] == 524288 and
              0 < inv["MEMORY_MB"]["reserved"] < 524288, repr(inv["MEMORY_MB"]))
        # reserved memory: what the hypervisor, VIOS (and NovaLink partition) hold
        check(inv["MEMORY_MB"]["reserved"] == h["memory_mb_used"] - 512,
              "reserved %d, used %d" % (inv["MEMORY_MB"]["reserved"], h["memory_mb_used"]))
        insts = st.api("GET", "/v1/instances").json["instances"]
        check(len(insts) == 1, "instances: %s" % insts)
        i = insts[0]
        check(i["partition_uuid"].upper() == R.lpar and i["name"] == "pvmtest-" + uuid[:8] and
              i["power_state"] == 1 and i["power_state_name"] == "RUNNING" and
              i["rebooting"] is False, repr(i))
        i = R.instance()
        check(i["instance_uuid"] == uuid and i["partition_uuid"].upper() == R.lpar and
              i["state"] == "running" and i["vcpus"] == 1 and i["memory_mb"] == 512, repr(i))
        check(st.api("GET", "/v1/instances/%s" % stacklib.new_uuid(rng)).status == 404,
              "unknown instance")

        # ---- power_off with RMC active: OS shutdown, twice ----
        j0 = R.jobs()
        op = R.run("power_off", {"timeout": 30, "retry_interval": 5})
        check(op["result"]["first_stage"] == "os" and not op["result"]["escalations"] and
              op["result"]["already_off"] is False, repr(op["result"]))
        op = R.run("power_off", {"timeout": 30})
        check(op["result"]["already_off"] is True, repr(op["result"]))
        check(R.delta(j0, "PowerOff") == 1 and R.state() == "not activated",
              "PowerOff jobs %s, state %s" % (R.jobs(), R.state()))
        R.wait_cache(4)
        check(R.instance()["power_state_name"] == "SHUTDOWN", "cache state")

        # ---- reboot of a partition that is off: powered on ----
        j0 = R.jobs()
        op = R.run("reboot", {"reboot_type": "SOFT"})
        check(op["result"]["powered_on"] is True and R.state() == "running",
              "%s %s" % (op["result"], R.state()))
        check(R.delta(j0, "PowerOn") == 1 and R.delta(j0, "PowerOff") == 0, repr(R.jobs()))

        # ---- reboot SOFT (osshutdown restart) and HARD, each twice; rebooting flag ----
        for typ, first in (("SOFT", "os"), ("HARD", "hard")):
            j0 = R.jobs()
            for _ in range(2):
                R.n += 1
                r = st.submit({"type": "reboot", "instance_uuid": uuid, "params": {
                    "instance": {"uuid": uuid}, "reboot_type": typ}})
                check(r.status == 202, repr(r))
                oid = r.json["id"]
                seen = []

                def flagged_or_done():
                    if R.instance()["rebooting"]:
                        seen.append(True)
                    return seen or st.op(oid)["state"] in stacklib.TERMINAL
                wait_until(flagged_or_done, 60, "reboot", interval=0.01, max_interval=0.02)
                check(seen, "reboot %s: the instance was never reported rebooting" % typ)
                op = st.wait_terminal([oid], 60, "reboot")[oid]
                check(op["state"] == "succeeded", repr(op))
                check(op["result"]["first_stage"] == first and
                      op["result"]["state"] == "running", repr(op["result"]))
                check(R.instance()["rebooting"] is False, "rebooting after the reboot")
            check(R.delta(j0, "PowerOff") == 2 and R.delta(j0, "PowerOn") == 0,
                  "reboot %s jobs %s" % (typ, R.jobs()))
            check(R.state() == "running", "after reboot: %s" % R.state())

        # ---- escalation: a timeout shorter than the job ----
        j0, c0 = R.jobs(), R.cancels()
        op = R.run("power_off", {"timeout": 0.3})
        esc = op["result"]["escalations"]
        check([(e["from"], e["to"]) for e in esc] == [("os", "vsp"), ("vsp", "hard")],
              "escalations %s" % esc)
        check(R.delta(j0, "PowerOff") == 3 and R.cancels() - c0 == 2,
              "escalation jobs %s cancels %d" % (R.jobs(), R.cancels() - c0))
        check(R.state() == "not activated", R.state())
        # timeout 0: straight to VSP immediate
        R.run("power_on")
        j0 = R.jobs()
        op = R.run("power_off", {"timeout": 0})
        check(op["result"]["first_stage"] == "hard" and R.delta(j0, "PowerOff") == 1,
              repr(op["result"]))
        # a SOFT reboot whose shutdown takes too long ends HARD
        R.run("power_on")
        j0 = R.jobs()
        op = R.run("reboot", {"reboot_type": "SOFT", "timeout": 0.3})
        check([e["to"] for e in op["result"]["escalations"]] == ["vsp", "hard"] and
              R.state() == "running", repr(op["result"]))
        check(R.delta(j0, "PowerOff") == 3, repr(R.jobs()))

        # ---- resume_state_on_host_boot ----
        R.run("power_off", {"timeout": 0})
        j0 = R.jobs()
        op = R.run("resume_state_on_host_boot", {"power_state_before": 4})
        check(op["result"]["action"] == "none" and R.state() == "not activated", repr(op))
        op = R.run("resume_state_on_host_boot", {"power_state_before": 1})
        check(op["result"]["action"] == "powered_on" and R.state() == "running", repr(op))
        op = R.run("resume_state_on_host_boot",
                   {"instance": {"uuid": uuid, "name": "x", "power_state": 1}})
        check(op["result"]["action"] == "none", repr(op))
        check(R.delta(j0, "PowerOn") == 1, repr(R.jobs()))

        # ---- RMC inactive: VSP normal (a partition left `starting` by an HMC restart) ----
        R.run("power_off", {"timeout": 0})
        R.n += 1
        r = st.submit({"type": "power_on", "instance_uuid": uuid,
                       "params": {"instance": {"uuid": uuid}}})
        check(r.status == 202, repr(r))
        oid = r.json["id"]
        wait_until(lambda: R.state() == "starting", 20, "the partition to start",
                   interval=0.02, max_interval=0.05)
        st.restart_pvmsim(kill=True)
        op = st.wait_terminal([oid], 90, "power_on after the pvmsim restart")[oid]
        check(op["state"] == "succeeded", repr(op))
        check(R.state() == "starting", "partition after the restart: %s" % R.state())
        j0 = R.jobs()
        op = R.run("power_off", {"timeout": 30})
        check(op["result"]["first_stage"] == "vsp" and R.state() == "not activated",
              "RMC inactive: %s, state %s" % (op["result"], R.state()))
        check(R.delta(j0, "PowerOff") == 1, repr(R.jobs()))

        # ---- faults: 503 on partition reads, job failures; everything still finishes ----
        st.set_faults({"seed": rng.randrange(1, 2**31), "rules": [
            {"method": "GET", "path": "/rest/api/uom/LogicalPartition/*/quick*",
             "kind": "http_503", "rate": 0.3},
            {"method": "PUT", "path": "/rest/api/uom/LogicalPartition/*/do/*",
             "kind": "vios_busy", "rate": 0.2}],
            "job_failure_rates": {"PowerOn": 0.3, "PowerOff": 0.3}})
        for typ, params, want in (("power_on", None, "running"),
                                  ("power_on", None, "running"),
                                  ("reboot", {"reboot_type": "SOFT"}, "running"),
                                  ("reboot", {"reboot_type": "HARD"}, "running"),
                                  ("power_off", {"timeout": 30}, "not activated"),
                                  ("power_off", {"timeout": 30}, "not activated"),
                                  ("resume_state_on_host_boot", {"power_state_before": 1},
                                   "running"),
                                  ("power_off", {"timeout": 0}, "not activated")):
            R.run(typ, params, timeout=180)
            check(R.state() == want, "%s under faults: state %s" % (typ, R.state()))
        st.set_faults({"rules": []})
        log("%s mode: jobs sent %s, cancels %d" % (mode, R.jobs(), R.cancels()))


def main():
    rng, _ = stacklib.seed_rng("ops_power")
    modes = os.environ.get("PVM_OPS_MODES", "hmc novalink").split()
    for mode in modes:
        scenario(mode, rng)


if __name__ == "__main__":
    stacklib.run_main("ops_power", main)
