#!/usr/bin/python3
"""daemon_host: GET /v1/host against pvmsim, in both disk drivers: the managed system's IP
address, the disk of the configured storage (volume group or shared storage pool: totals
from pvmsim's own state, a spawn's boot disk counted as used, DISK_GB in the inventory),
the CPU statistics and uptime from the pcm long-term monitor (switched on by powervmd,
counters that only grow, consistent with the elapsed time), and a missing volume group
named in the log without breaking the rest of /v1/host.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402
from stacklib import check, log, wait_until  # noqa: E402

MS = "sim-8408-E8E-SN10678CV"


def host(st):
    r = st.api("GET", "/v1/host")
    check(r.status == 200, "GET /v1/host: %r" % r)
    return r.json


def sim_objects(st, kind):
    return [o for o in st.sim_state()["objects"] if o["kind"] == kind]


def spawn(st, uuid, root_gb=3):
    body = {"type": "spawn", "instance_uuid": uuid, "idempotency_key": "host-" + uuid,
            "params": {"instance": {"uuid": uuid, "name": "host-test"},
                       "flavor": {"name": "t", "memory_mb": 512, "vcpus": 1,
                                  "root_gb": root_gb},
                       "image_meta": {"id": st.env["POWERVMD_TEST_IMAGE"], "disk_format": "raw"},
                       "network_info": []}}
    r = st.submit(body)
    check(r.status == 202, repr(r))
    op = st.wait_terminal([r.json["id"]], 120, "spawn")[r.json["id"]]
    check(op["state"] == "succeeded", "spawn: %s" % op.get("error"))


def cpu_and_uptime(st):
    h = host(st)
    ms = [o for o in sim_objects(st, "ManagedSystem") if o["props"]["name"] == MS][0]
    check(h["ip_address"] == ms["props"]["ip"], "ip_address %r" % h.get("ip_address"))
    # the sampler switched long-term monitoring on
    wait_until(lambda: "cpu_stats" in host(st), 30, "cpu_stats in /v1/host")
    a = host(st)
    c1, t1 = a["cpu_stats"], a["cpu_stats"]["sampled_at"]
    check(c1["frequency"] == 512, "frequency %r" % c1)
    for k in ("kernel", "user", "idle"):
        check(c1[k] > 0, "%s %r" % (k, c1))
    check(c1["iowait"] == 0, repr(c1))
    wait_until(lambda: host(st)["cpu_stats"]["sample_time"] != c1["sample_time"], 30,
               "a newer pcm sample")
    b = host(st)
    c2 = b["cpu_stats"]
    for k in ("kernel", "user", "idle"):
        check(c2[k] >= c1[k], "%s went back: %r then %r" % (k, c1, c2))
    # the counters cover 40 processing units: their growth is about 40 x the wall time
    grown_s = sum(c2[k] - c1[k] for k in ("kernel", "user", "idle")) / 1e9
    wall_s = (c2["sampled_at"] - t1) / 1000.0
    check(grown_s > 0 and grown_s <= 40 * (wall_s + 2.5),
          "CPU time grew %.1f s in %.1f s of wall time" % (grown_s, wall_s))
    check(b["uptime_s"] >= 1, "uptime %r" % b.get("uptime_s"))
    log("cpu_stats: %r; uptime %d s; ip %s" % (c2, b["uptime_s"], b["ip_address"]))


def localdisk(rng):
    with stacklib.Stack("host-local", image=True,
                        conf=["powervm_host_sample_s = 1;"]) as st:
        vg = [o for o in sim_objects(st, "VolumeGroup") if o["props"]["name"] == "rootvg"]
        wait_until(lambda: "disk" in host(st), 30, "disk in /v1/host")
        h = host(st)
        d = h["disk"]
        check(d["driver"] == "localdisk" and d["storage"] == "vios1/rootvg", repr(d))
        caps = sorted(int(o["props"]["capacity_gb"]) for o in vg)
        check(d["total_gb"] in caps, "total %r, the VGs %r" % (d, caps))
        inv = h["inventory"]["DISK_GB"]
        check(inv["total"] == d["total_gb"] and inv["reserved"] == d["used_gb"],
              "DISK_GB %r, disk %r" % (inv, d))
        check(h["local_gb"] == d["total_gb"] and h["local_gb_used"] == d["used_gb"], repr(h))
        used0, reserved0 = d["used_gb"], inv["reserved"]
        spawn(st, stacklib.new_uuid(rng), root_gb=3)
        wait_until(lambda: host(st)["disk"]["used_gb"] == used0 + 3, 30,
                   "the boot disk counted as used")
        h = host(st)
        check(h["inventory"]["DISK_GB"]["reserved"] == reserved0,
              "a boot disk is nova's use, not reserved: %r" % h["inventory"]["DISK_GB"])
        cpu_and_uptime(st)


def ssp_and_missing_vg(rng):
    with stacklib.Stack("host-ssp", conf=['powervm_disk_driver = "ssp";',
                                          "powervm_host_sample_s = 1;"]) as st:
        wait_until(lambda: "disk" in host(st), 30, "disk in /v1/host")
        d = host(st)["disk"]
        pool = [o for o in sim_objects(st, "SharedStoragePool")][0]["props"]
        check(d["driver"] == "ssp" and d["storage"] == pool["name"], repr(d))
        check(abs(d["total_gb"] - int(pool["capacity_gb"])) <= 1, "%r vs %r" % (d, pool))
    with stacklib.Stack("host-novg", conf=['powervm_volume_group_name = "datavg";',
                                           "powervm_host_sample_s = 1;"]) as st:
        wait_until(lambda: "no VIOS of this managed system has the volume group datavg"
                   in st.powervmd_log(), 30, "the missing volume group in the log")
        h = host(st)
        check("disk" not in h and "DISK_GB" not in h["inventory"], repr(h.get("disk")))
        check(h["vcpus"] == 400, "the rest of /v1/host still served: %r" % h.get("vcpus"))


def main():
    rng, _ = stacklib.seed_rng("daemon_host")
    localdisk(rng)
    ssp_and_missing_vg(rng)


if __name__ == "__main__":
    stacklib.run_main("daemon_host", main)
