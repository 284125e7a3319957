#!/usr/bin/python3
"""HMC restart (issue 5, Proofs): pvmsim is restarted while PowerVM jobs run. It keeps its
partitions (in whatever state they reached, transitional ones included) and forgets its
jobs, so `GET jobs/ID` answers 404: the engine must notice the vanished job, settle the step
with its reconcile (logged), and every operation must still finish as its params say.

Four restarts: clean (SIGTERM) and crash (SIGKILL), with PowerOn jobs in flight, then with
PowerOff jobs in flight.
Environment: PVM_TEST_SEED, PVM_TEST_SCALE.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import (Stack, TestFailure, audit_counts, check, log, lpar_uuid,  # noqa: E402
                      metric_sum, new_uuid, run_main, seed_rng, wait_until)


def jobs_in_flight(st, ids, step_name):
    """Operations whose step step_name has a recorded JobID not yet done."""
    out = []
    for i in ids:
        op = st.op(i)
        if op["state"] not in ("waiting", "running"):
            continue
        for ent in (op["checkpoints"].get(step_name) or {}).values():
            if isinstance(ent, dict) and ent.get("job_id") and not ent.get("done"):
                out.append(i)
    return out


def test():
    rng, seed = seed_rng("daemon_hmc_restart")
    with Stack("hmcrestart", job_ms=2500, workers=4) as st:
        t0 = time.monotonic()
        plans = []
        problems = []
        # (signal, the step whose jobs are in flight at the restart)
        rounds = [(False, "power_on"), (True, "power_on"), (False, "power_off"),
                  (True, "power_off")]
        for round_, (kill, step) in enumerate(rounds):
            ids = []
            for k in range(6):
                inst = new_uuid(rng)
                params = {"delete_at_end": k % 2 == 1}
                r = st.submit({"type": "test_steps", "instance_uuid": inst,
                               "idempotency_key": "hmc-%s" % inst, "params": params})
                check(r.status == 202, "submit: %r" % r)
                ids.append(r.json["id"])
                plans.append((r.json["id"], inst, params))
            flying = wait_until(lambda: len(jobs_in_flight(st, ids, step)) >= 3 and
                                jobs_in_flight(st, ids, step), 60,
                                "at least 3 %s jobs in flight" % step, interval=0.05)
            jobs_before = len(st.sim_state().get("jobs") or [])
            ts = time.monotonic()
            st.restart_pvmsim(kill=kill)
            log("round %d: pvmsim restarted (%s) in %.2f s with %d %s jobs in flight "
                "(%d jobs known to pvmsim before, %d after); partitions: %s" % (
                    round_ + 1, "SIGKILL" if kill else "SIGTERM", time.monotonic() - ts,
                    len(flying), step, jobs_before, len(st.sim_state().get("jobs") or []),
                    sorted(st.partitions().values())))
            tr = time.monotonic()
            ops = st.wait_terminal(ids, 120, "operations after the pvmsim restart")
            log("round %d: all %d operations terminal %.1f s after the restart: %s" % (
                round_ + 1, len(ids), time.monotonic() - tr,
                sorted(o["state"] for o in ops.values())))
            bad = {i: (o["state"], o.get("error")) for i, o in ops.items()
                   if o["state"] != "succeeded"}
            if bad:
                problems.append("round %d (%s jobs in flight): operations did not succeed: "
                                "%s" % (round_ + 1, step, bad))
        text = st.powervmd_log()
        vanished = re.findall(r"job (\w+) (\S+) vanished from the server", text)
        settled = len(re.findall(r"reconcile found its effect present", text))
        again = {}
        for m in re.finditer(r"instance=(\S+).*job (\w+) (?:had an intent without a recorded "
                             r"outcome|vanished from the server); (?:reconcile found its "
                             r"effect absent|undo requests)", text):
            k = (lpar_uuid(m.group(1)), m.group(2))
            again[k] = again.get(k, 0) + 1
        m = st.metrics()
        reconciles = metric_sum(m, "powervmd_reconciles_total")
        logons = metric_sum(m, "powervmd_powervm_logons_total")
        log("vanished jobs logged %d, settled as done %d, sent again %d; "
            "powervmd_reconciles_total %g, logons %g; %.1f s" % (
                len(vanished), settled, sum(again.values()), reconciles, logons,
                time.monotonic() - t0))
        check(len(vanished) >= 2, "no vanished job was noticed: %s" % vanished)
        check(reconciles >= len(vanished), "reconciles %g < vanished jobs %d" % (
            reconciles, len(vanished)))
        check(logons >= 2, "powervmd did not log on again after the restart")
        counts = audit_counts(st.audit())
        parts = st.partitions()
        for op_id, inst, params in plans:
            if st.op(op_id)["state"] != "succeeded":
                continue  # reported above
            part = lpar_uuid(inst)
            c = counts.get(part, {"created": 0, "jobs": {}})
            if c["created"] != 1:
                problems.append("%s: %d creates" % (part, c["created"]))
            for job in ("PowerOn", "PowerOff"):
                got = c["jobs"].get(job, 0)
                if not 1 <= got <= 1 + again.get((part, job), 0):
                    problems.append("%s: %d %s jobs (resends logged %d)" % (
                        part, got, job, again.get((part, job), 0)))
            want = None if params["delete_at_end"] else "not activated"
            if parts.get(part) != want:
                problems.append("%s: state %s, expected %s" % (part, parts.get(part), want))
        if problems:
            raise TestFailure("seed %d:\n  %s" % (seed, "\n  ".join(problems)))


if __name__ == "__main__":
    run_main("daemon_hmc_restart", test)
