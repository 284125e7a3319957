#!/usr/bin/python3
"""The lifecycle part of scripts/demo: pvmsim (HMC mode, two managed systems) and one
powervmd per system, driven through powervmd's API as nova's shim drives it.

It uploads a small raw image, spawns several instances (progress shown), kills powervmd
with SIGKILL in the middle of the spawns and starts it again, lists the instances with
their states, power-cycles and reboots them, destroys them, and prints a summary table
(operation timings from the journal, pvmsim's audit counts), then stops everything.

Standard library only; run by scripts/demo after the build (PVM_BUILD_DIR).
"""
import hashlib
import json
import re
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "func"))
import stacklib  # noqa: E402

N_INSTANCES = int(os.environ.get("DEMO_INSTANCES", "4"))


def out(msg=""):
    print(msg, flush=True)


def bar(pct, width=30):
    n = int(width * max(0, min(100, pct)) / 100)
    return "[" + "#" * n + "." * (width - n) + "] %3d%%" % pct


def wait_all(st, ids, what):
    """Waits for the operations, drawing one progress line per operation."""
    t0 = time.monotonic()
    shown = {}
    while True:
        done = True
        lines = []
        for i in ids:
            o = st.op(i)
            pct = 100 if o["state"] == "succeeded" else (o.get("progress") or 0)
            lines.append("  op %-3d %-10s %s %s" % (i, o["type"], bar(pct), o["state"]))
            if o["state"] not in stacklib.TERMINAL:
                done = False
        if lines != shown.get("last"):
            if sys.stdout.isatty() and "last" in shown:
                sys.stdout.write("\x1b[%dA" % len(lines))
            if sys.stdout.isatty() or done:
                out("\n".join(lines))
            shown["last"] = lines
        if done:
            break
        if time.monotonic() - t0 > 300:
            raise SystemExit("demo: %s did not finish in 300 s" % what)
        time.sleep(0.25)
    bad = [i for i in ids if st.op(i)["state"] != "succeeded"]
    if bad:
        for i in bad:
            o = st.op(i)
            out("op %d %s: %s" % (i, o["state"], o.get("error")))
        raise SystemExit("demo: %s: %d operation(s) did not succeed" % (what, len(bad)))
    return time.monotonic() - t0


def submit(st, typ, inst, params, key):
    body = {"type": typ, "instance_uuid": inst, "idempotency_key": key,
            "request_id": "req-demo-" + key, "params": params}
    r = st.submit(body)
    if r.status not in (200, 202):
        raise SystemExit("demo: submit %s: %r" % (typ, r))
    return r.json["id"]


def instances_table(st):
    r = st.api("GET", "/v1/instances")
    out("  %-38s %-20s %-16s %s" % ("partition uuid", "partition name", "partition state", "nova"))
    for i in sorted(r.json["instances"], key=lambda x: x.get("name", "")):
        out("  %-38s %-20s %-16s %s" % (i.get("uuid"), i.get("name"), i.get("state"),
                                        i.get("power_state_name", i.get("power_state"))))


def main():
    with stacklib.Stack("demo", job_ms=800, workers=8, daemons=None) as st:
        out("pvmsim (HMC mode) at %s; %d powervmd, one per managed system:" % (
            st.sim_url, len(st.socks)))
        for s in st.socks:
            h = stacklib.unix_request(s, "GET", "/v1/host").json
            out("  %s  %-24s %s vCPUs, %d MB" % (s, h["name"], h.get("vcpus"),
                                                h.get("memory_configurable_mb", 0)))

        out("\n== upload a raw image (checked against its SHA-256, as nova's os_hash) ==")
        data = bytes((i * 7 + (i >> 9)) & 0xFF for i in range(3 << 20))
        image_id = str(uuid.uuid4())
        t0 = time.monotonic()
        r = stacklib.unix_request(st.sock, "PUT", "/v1/images/" + image_id, body=data, headers={
            "Content-Type": "application/octet-stream", "os_hash_algo": "sha256",
            "os_hash_value": hashlib.sha256(data).hexdigest()}, timeout=120)
        if r.status not in (200, 201):
            raise SystemExit("demo: image upload: %r" % r)
        out("  image %s: %d bytes cached in %.2f s" % (image_id, len(data), time.monotonic() - t0))

        insts = [str(uuid.uuid4()) for _ in range(N_INSTANCES)]
        timings = {}
        out("\n== spawn %d instances (1 GB boot disk each, copied from the image) ==" % len(insts))
        t0 = time.monotonic()
        ids = []
        for k, inst in enumerate(insts):
            ids.append(submit(st, "spawn", inst, {
                "instance": {"uuid": inst, "name": "demo-%d" % (k + 1)},
                "flavor": {"name": "demo.small", "memory_mb": 2048, "vcpus": 2, "root_gb": 1,
                           "extra_specs": {"powervm:proc_units": "0.4"}},
                "image_meta": {"id": image_id, "disk_format": "raw", "size": len(data)},
                "network_info": []}, "spawn-%d" % k))
        # a crash in the middle: every acknowledged spawn resumes from its checkpoint
        stacklib.wait_until(lambda: any(st.op(i)["step"] >= 1 for i in ids), 60 * stacklib.SCALE,
                            "a spawn past its first step")
        out("  -- SIGKILL powervmd 1 in the middle of the spawns, then start it again --")
        st.kill_powervmd()
        st.start_powervmd()
        timings["spawn"] = wait_all(st, ids, "spawn")
        resumed = sum(1 for i in ids if "recovered" in st.op(i)["flags"])
        out("  %d of %d spawns were running when powervmd was killed and resumed from their "
            "last checkpoint" % (resumed, len(ids)))
        out("\n== instances ==")
        instances_table(st)

        for typ, params in (("power_off", {"timeout": 0}), ("power_on", {}),
                            ("reboot", {"reboot_type": "SOFT"})):
            out("\n== %s every instance ==" % typ)
            ids = [submit(st, typ, inst, dict(params, instance={"uuid": inst}),
                          "%s-%d" % (typ, k)) for k, inst in enumerate(insts)]
            timings[typ] = wait_all(st, ids, typ)
        out("")
        instances_table(st)

        out("\n== destroy every instance (disks deleted) ==")
        ids = [submit(st, "destroy", inst, {"instance": {"uuid": inst}, "destroy_disks": True},
                      "destroy-%d" % k) for k, inst in enumerate(insts)]
        timings["destroy"] = wait_all(st, ids, "destroy")

        out("\n== summary ==")
        ops = st.list_ops(limit=1000)
        by_type = {}
        for o in ops:
            if o.get("started") and o.get("finished"):
                d = (iso_ms(o["finished"]) - iso_ms(o["created"])) / 1000.0
                by_type.setdefault(o["type"], []).append((d, o["state"], o.get("retries", 0)))
        out("  %-10s %5s %10s %10s %9s %8s" % ("operation", "count", "median s", "max s",
                                              "succeeded", "retries"))
        for typ in ("spawn", "power_off", "power_on", "reboot", "destroy"):
            v = by_type.get(typ, [])
            if v:
                ds = [x[0] for x in v]
                out("  %-10s %5d %10.2f %10.2f %9d %8d" % (
                    typ, len(v), statistics.median(ds), max(ds),
                    sum(1 for x in v if x[1] == "succeeded"), sum(x[2] for x in v)))
        entries = json.loads(st.sim("GET", "/sim/audit").body)["entries"]

        def n(method, pattern):
            return sum(1 for e in entries if e["method"] == method and
                       re.search(pattern, e["path"]) and e["status"] < 300)
        counts = {
            "partitions created": n("PUT", r"/LogicalPartition$"),
            "partitions deleted": n("DELETE", r"/LogicalPartition/[0-9A-Fa-f-]{36}$"),
            "adapters created": n("PUT", r"/ClientNetworkAdapter$"),
            "VIOS mapping updates": n("POST", r"/VirtualIOServer/[0-9A-Fa-f-]{36}$"),
            "disk uploads": n("PUT", r"/web/File/contents/"),
            "PowerOn jobs": n("PUT", r"/do/PowerOn$"),
            "PowerOff jobs": n("PUT", r"/do/PowerOff$"),
        }
        out("  pvmsim audit: " + ", ".join("%s %d" % kv for kv in counts.items()))
        state = st.sim_state()
        left = [o for o in state["objects"] if o["kind"] == "LogicalPartition"
                and o["props"].get("name", "").startswith("demo-")]
        out("  partitions left in pvmsim: %d" % len(left))
        if left:
            raise SystemExit("demo: instances left behind")


def iso_ms(s):
    t = time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    frac = float("0" + s[19:].rstrip("Z")) if len(s) > 20 else 0.0
    return (time.mktime(t) - time.timezone) * 1000 + frac * 1000


if __name__ == "__main__":
    main()
    out("== demo done: everything stopped ==")
