#!/usr/bin/python3
"""Daemon life cycle (issue 5): /healthz is 200 "ready" once started; with --paused the
operations stay queued until POST /v1/resume; SIGTERM lets a running step finish (its
outcome is recorded, nothing is left to reconcile) and the operation resumes after the
restart; SIGHUP with a changed powervm_log_level logs the change, and says which other
changed keys wait for a restart.

Environment: PVM_TEST_SEED, PVM_TEST_SCALE.
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import (SCALE, Stack, TestFailure, audit_counts, check, log,  # noqa: E402
                      lpar_uuid, new_uuid, run_main, seed_rng, wait_until)


def test():
    rng, seed = seed_rng("daemon_lifecycle")
    problems = []
    with Stack("lifecycle", job_ms=300, workers=2) as st:
        # /healthz when ready.
        r = st.api("GET", "/healthz")
        check(r.status == 200 and r.json == {"status": "ready", "paused": False},
              "/healthz: %r" % r)
        # --paused: queued until resume.
        st.kill_powervmd(signal.SIGTERM)
        st.start_powervmd(paused=True)
        r = st.api("GET", "/healthz")
        check(r.status == 200 and r.json.get("paused") is True, "paused /healthz: %r" % r)
        ids = []
        for _ in range(3):
            r = st.submit({"type": "test_steps", "instance_uuid": new_uuid(rng), "params": {}})
            check(r.status == 202, "submit while paused: %r" % r)
            ids.append(r.json["id"])
        # Observation window (not a wait for a condition): nothing may run while paused.
        end = time.monotonic() + 1.5 * SCALE
        polls = 0
        for _ in range(1000):
            states = {st.op(i)["state"] for i in ids}
            polls += 1
            if states != {"queued"}:
                problems.append("--paused: operations left queued: %s" % states)
                break
            if time.monotonic() > end:
                break
            time.sleep(0.1)
        r = st.api("POST", "/v1/resume")
        check(r.status == 200 and r.json == {"paused": False}, "resume: %r" % r)
        t0 = time.monotonic()
        ops = st.wait_terminal(ids, 60, "operations after resume")
        log("--paused: %d operations stayed queued over %d polls; after resume all %s in "
            "%.1f s" % (len(ids), polls, sorted({o["state"] for o in ops.values()}),
                        time.monotonic() - t0))
        if any(o["state"] != "succeeded" for o in ops.values()):
            problems.append("after resume: %s" % {i: o["state"] for i, o in ops.items()})

        # SIGTERM while a step runs: pvmsim holds the PowerOn submission for 2 s, so the
        # worker is inside the step when the signal comes.
        inst = new_uuid(rng)
        part = lpar_uuid(inst)
        st.set_faults({"rules": [{"method": "PUT", "kind": "latency", "latency_ms": 2000,
                                  "path": "/rest/api/uom/LogicalPartition/%s/do/PowerOn" % part}]})
        r = st.submit({"type": "test_steps", "instance_uuid": inst, "params": {}})
        check(r.status == 202, "submit: %r" % r)
        op_id = r.json["id"]

        def in_step():
            op = st.op(op_id)
            ent = (op["checkpoints"].get("power_on") or {}).get("power_on") or {}
            return op["state"] == "running" and ent.get("intent") and not ent.get("job_id")
        wait_until(in_step, 30, "op %d to be inside its power_on step" % op_id,
                   interval=0.01, max_interval=0.02)
        t_term = time.monotonic()
        pid = st.kill_powervmd(signal.SIGTERM, timeout=30)
        exit_s = time.monotonic() - t_term
        st.set_faults({"rules": []})
        text = st.powervmd_log()
        mine = [l for l in text.splitlines() if "[%d]" % pid in l]
        log("SIGTERM during a running step: powervmd exited after %.2f s" % exit_s)
        if not any("SIGTERM received" in l for l in mine):
            problems.append("no 'SIGTERM received' line")
        if not any("stopped cleanly" in l for l in mine):
            problems.append("powervmd did not stop cleanly: %s" % mine[-3:])
        if exit_s < 1.0:
            problems.append("powervmd exited %.2f s after SIGTERM: the step (held 2 s by "
                            "pvmsim) cannot have finished" % exit_s)
        st.start_powervmd()
        op = st.op(op_id)
        ent = (op["checkpoints"].get("power_on") or {}).get("power_on") or {}
        if not ent.get("job_id"):
            problems.append("the running step's outcome (JobID) was not recorded before exit: "
                            "%s" % op["checkpoints"])
        op = st.wait_terminal([op_id], 60, "the operation after the restart")[op_id]
        c = audit_counts(st.audit()).get(part, {"jobs": {}})
        text = st.powervmd_log()
        unsettled = [l for l in text.splitlines()
                     if "op=%d " % op_id in l and "intent without a recorded outcome" in l]
        log("after the restart: op %d %s; PowerOn jobs %d; intents left to reconcile %d" % (
            op_id, op["state"], c["jobs"].get("PowerOn", 0), len(unsettled)))
        if op["state"] != "succeeded" or c["jobs"].get("PowerOn") != 1 or unsettled:
            problems.append("SIGTERM: op %s, PowerOn jobs %s, unsettled intents %s" % (
                op["state"], c["jobs"], unsettled))

        # SIGHUP: log level, and a key that needs a restart.
        conf = st.env["POWERVMD_CONFIG"]
        with open(conf) as fh:
            orig = fh.read()
        try:
            changed = re.sub(r'powervm_log_level = "\w+";', 'powervm_log_level = "debug";', orig)
            changed = re.sub(r"powervm_workers = \d+;", "powervm_workers = 3;", changed)
            changed = re.sub(r"powervm_retry_max_ms = \d+;", "powervm_retry_max_ms = 3000;",
                             changed)
            check(changed != orig, "the stack's config has no log level to change")
            with open(conf, "w") as fh:
                fh.write(changed)
            os.kill(st.powervmd_pid(), signal.SIGHUP)
            wait_until(lambda: "SIGHUP: powervm_log_level is now debug" in st.powervmd_log(),
                       10, "the log level change in the log")
            wait_until(lambda: "SIGHUP: back-off 200..3000 ms" in st.powervmd_log(), 10,
                       "the new back-off limits applied")
            wait_until(lambda: re.search(r"not reloadable, taking effect at the next restart: "
                                         r"powervm_workers$", st.powervmd_log(), re.M), 10,
                       "the note naming the key that needs a restart")
            check(st.healthy(), "powervmd not healthy after SIGHUP")
            log("SIGHUP: log level change logged; workers change reported as needing a "
                "restart")
        finally:
            with open(conf, "w") as fh:
                fh.write(orig)
        if problems:
            raise TestFailure("seed %d:\n  %s" % (seed, "\n  ".join(problems)))


if __name__ == "__main__":
    run_main("daemon_lifecycle", test)
