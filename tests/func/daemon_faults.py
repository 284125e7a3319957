#!/usr/bin/python3
"""Faults (issue 5, Proofs): with pvmsim injecting VIOS busy, 503, connection resets,
latency and session expiry, every operation still finishes as its params say, every effect
happens once (duplicates explained by logged reconciles), and the retries show in /metrics
(powervmd_step_retries_total, powervmd_retries_total, powervmd_powervm_retries_total,
powervmd_powervm_logons_total > 1 for the expired sessions).

Environment: PVM_TEST_SEED (also the fault seed), PVM_TEST_SCALE.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import (Stack, TestFailure, audit_counts, check, log, lpar_uuid,  # noqa: E402
                      metric_sum, new_uuid, run_main, seed_rng)

N_OPS = 16
# A session dies after this many requests. Far below it (25) the client's single re-logon
# per request is not enough with 4 workers sharing the session (see the report).
EXPIRY = int(os.environ.get("PVM_FAULTS_SESSION_REQUESTS") or 100)


def test():
    rng, seed = seed_rng("daemon_faults")
    with Stack("faults", job_ms=300, workers=4) as st:
        faults = {
            "seed": seed,
            "rules": [
                {"method": "GET", "path": "/rest/api/uom/LogicalPartition/*/quick/*",
                 "kind": "vios_busy", "rate": 0.15},
                {"method": "PUT", "path": "/rest/api/uom/LogicalPartition/*/do/*",
                 "kind": "http_503", "rate": 0.2},
                {"method": "PUT", "path": "/rest/api/uom/LogicalPartition/*/do/*",
                 "kind": "reset", "rate": 0.1},
                {"method": "PUT", "path": "/rest/api/uom/ManagedSystem/*/LogicalPartition",
                 "kind": "http_503", "rate": 0.2},
                {"method": "GET", "path": "/rest/api/uom/jobs/*", "kind": "reset",
                 "rate": 0.1},
                {"method": "GET", "path": "/rest/api/uom/jobs/*", "kind": "latency",
                 "latency_ms": 300, "rate": 0.3},
                {"method": "DELETE", "path": "/rest/api/uom/LogicalPartition/*",
                 "kind": "http_503", "rate": 0.3},
            ],
            "session_expiry_requests": EXPIRY,
        }
        st.set_faults(faults)
        m0 = st.metrics()
        t0 = time.monotonic()
        plans = []
        for k in range(N_OPS):
            inst = new_uuid(rng)
            params = {"delete_at_end": k % 2 == 1}
            if k % 4 == 3:  # the way back under faults too: undo of power_on and create
                params = {"fail_at": rng.choice(["power_off", "finish"])}
            r = st.submit({"type": "test_steps", "instance_uuid": inst,
                           "idempotency_key": "faults-%s" % inst, "params": params})
            check(r.status == 202, "submit: %r" % r)
            plans.append((r.json["id"], inst, params))
        ops = st.wait_terminal([p[0] for p in plans], 240, "operations under faults")
        dur = time.monotonic() - t0
        m = st.metrics()
        audit = st.audit()
        st.set_faults({"rules": []})
        faulted = {}
        for e in audit:
            mm = re.match(r"fault (\w+)", e.get("outcome", ""))
            if mm:
                faulted[mm.group(1)] = faulted.get(mm.group(1), 0) + 1
        step_retries = metric_sum(m, "powervmd_step_retries_total")
        retries = metric_sum(m, "powervmd_retries_total")
        pvm_retries = metric_sum(m, "powervmd_powervm_retries_total")
        r401 = metric_sum(m, "powervmd_powervm_retries_total", 'reason="401"')
        logons = metric_sum(m, "powervmd_powervm_logons_total")
        requests = metric_sum(m, "powervmd_powervm_requests_total") - metric_sum(
            m0, "powervmd_powervm_requests_total")
        attempts = sum(o["attempts"] for o in ops.values())
        sessions = sum(1 for e in audit if e.get("path") == "/rest/api/web/Logon")
        log("%d operations finished in %.1f s: %s" % (
            len(ops), dur, sorted({o["state"] for o in ops.values()})))
        log("faults served by pvmsim: %s; logons seen by pvmsim %d" % (faulted, sessions))
        log("metrics: powervmd_step_retries_total %g, powervmd_retries_total %g, "
            "powervmd_powervm_retries_total %g (401: %g), powervmd_powervm_logons_total %g, "
            "PowerVM requests %g; attempts recorded on the operations %d" % (
                step_retries, retries, pvm_retries, r401, logons, requests, attempts))
        problems = []
        for op_id, inst, params in plans:
            o = ops[op_id]
            want = "failed" if "fail_at" in params else "succeeded"
            if o["state"] != want:
                problems.append("op %d ended %s (expected %s): %s" % (
                    op_id, o["state"], want, o.get("error")))
        if step_retries < 1 or retries < 1:
            problems.append("no step retries in /metrics")
        if step_retries != retries:
            problems.append("powervmd_step_retries_total %g != powervmd_retries_total %g" % (
                step_retries, retries))
        if logons < 2 or r401 < 1:
            problems.append("session expiry did not show: logons %g, 401 retries %g" % (
                logons, r401))
        for kind in ("vios_busy", "http_503", "reset", "latency"):
            if not any(k.startswith(kind) or kind in k for k in faulted):
                log("note: no %s fault was served (kinds served: %s)" % (kind, faulted))
        text = st.powervmd_log()
        again = {}
        for mm in re.finditer(r"instance=(\S+).*job (\w+) (?:had an intent without a recorded "
                              r"outcome|vanished from the server); (?:reconcile found its "
                              r"effect absent|undo requests)", text):
            k = (lpar_uuid(mm.group(1)), mm.group(2))
            again[k] = again.get(k, 0) + 1
        counts = audit_counts(audit)
        parts = st.partitions()
        for op_id, inst, params in plans:
            part = lpar_uuid(inst)
            c = counts.get(part, {"created": 0, "jobs": {}, "deleted": 0})
            if c["created"] != 1:
                problems.append("%s: %d creates" % (part, c["created"]))
            for job in ("PowerOn", "PowerOff"):
                got = c["jobs"].get(job, 0)
                if not 1 <= got <= 1 + again.get((part, job), 0):
                    problems.append("%s: %d %s jobs (resends logged %d)" % (
                        part, got, job, again.get((part, job), 0)))
            want = None if params.get("delete_at_end", True) else "not activated"
            if parts.get(part) != want:
                problems.append("%s: state %s, expected %s" % (part, parts.get(part), want))
        log("intents without outcome sent again after a reset: %d" % sum(again.values()))
        if problems:
            raise TestFailure("seed %d:\n  %s" % (seed, "\n  ".join(problems)))


if __name__ == "__main__":
    run_main("daemon_faults", test)
