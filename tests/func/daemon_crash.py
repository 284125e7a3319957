#!/usr/bin/python3
"""Crash-safe resumption (issue 5, Proofs): a mix of test_steps operations (plain, delete at
end, gated then signalled, gated then cancelled, failing on purpose at each step, two
operations in a row on one instance) while powervmd is SIGKILLed at random moments and
started again with the same configuration, 20+ times in bounded time.

Afterwards: every acknowledged operation is terminal in the state its params call for;
none is lost or duplicated (one id per idempotency key, resubmitting returns it); every
effect on pvmsim happened once (its audit log: one successful create per partition, the
PowerOn/PowerOff jobs the plan calls for, any extra one explained by a logged "intent
without a recorded outcome ... sent again" line); pvmsim's final state matches; and every
intent left without an outcome by a kill was reconciled and logged.

The kill window that matters most (after the server took a request, before the journal
recorded its outcome) lasts only milliseconds; to make random kills land in it, pvmsim delays
a share of job submissions and partition creates (a latency fault is applied before the
request is processed, and pvmsim still processes a request whose client died meanwhile, as a
real HMC does with a request in flight): a kill then leaves an intent whose request reaches
the server while, or after, the restarted daemon reconciles. Then three kills are placed
exactly in that window (targeted()). PVM_CRASH_WINDOW=0 turns both off (plain random kills
only).

Environment: PVM_TEST_SEED (replay), PVM_CRASH_KILLS (default 24), PVM_CRASH_WINDOW
(default 1), PVM_TEST_SCALE.
"""
import http.client
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import (SCALE, Stack, TestFailure, audit_counts, check, log, lpar_uuid,  # noqa: E402,F401
                      new_uuid, run_main, seed_rng, wait_until)

KILLS = int(os.environ.get("PVM_CRASH_KILLS") or 24)
WINDOW = os.environ.get("PVM_CRASH_WINDOW", "1") != "0"
STEPS = ["create_partition", "gate", "power_on", "power_off", "finish"]
DAEMON_ERRORS = (OSError, http.client.HTTPException)


def expectations(kind, fail_at=None):
    """(final state, partition exists at the end, PowerOn jobs, PowerOff jobs, creates)."""
    if kind in ("plain", "gate"):
        return "succeeded", True, 1, 1, 1
    if kind in ("delete", "gate_delete"):
        return "succeeded", False, 1, 1, 1
    if kind == "gate_cancel":
        return "cancelled", False, 0, 0, None  # created or not, depending on timing
    if kind == "fail":
        jobs = 1 if fail_at in ("power_off", "finish") else 0
        return "failed", False, jobs, jobs, 0 if fail_at == "create_partition" else 1
    raise ValueError(kind)


def make_plans(rng):
    plans = []  # each: one operation

    def add(kind, params, inst=None, fail_at=None, group=None):
        inst = inst or new_uuid(rng)
        p = dict(params)
        if rng.random() < 0.5:
            p["memory_mb"] = rng.choice([256, 512, 1024])
        if rng.random() < 0.3:
            p["vcpus"] = rng.choice([1, 2])
        state, exists, on, off, created = expectations(kind, fail_at)
        plans.append({"kind": kind, "instance": inst, "params": p, "fail_at": fail_at,
                      "key": "crash-%s-%d" % (inst[:8], len(plans)), "expect": state,
                      "exists": exists, "on": on, "off": off, "created": created,
                      "group": group, "id": None, "acked": None, "resubmitted": 0})
        return inst
    for _ in range(6):
        add("plain", {})
    for _ in range(6):
        add("delete", {"delete_at_end": True})
    for _ in range(4):
        add("gate", {"gate": True})
    for _ in range(2):
        add("gate_delete", {"gate": True, "delete_at_end": True})
    for _ in range(3):
        add("gate_cancel", {"gate": True})
    for step in STEPS:
        add("fail", {"fail_at": step}, fail_at=step)
    # Two operations in a row on one instance: the second waits for the first
    # (per-instance order), finds the partition there, power-cycles it and deletes it.
    for g in range(3):
        inst = add("plain", {}, group=g)
        add("delete", {"delete_at_end": True}, inst=inst, group=g)
    return plans


def body_of(p):
    return {"type": "test_steps", "instance_uuid": p["instance"], "idempotency_key": p["key"],
            "request_id": "req-crash-" + p["key"], "params": p["params"]}


def targeted(st, rng, problems):
    """Kills placed exactly in the window: the intent is in the journal (visible in the
    operation's checkpoints), the request is held by pvmsim (latency 1 s), the daemon dies
    and is back before pvmsim processes it. Each case names what a correct engine does."""
    cases = [
        # (name, params, fault path suffix, condition on the op, expected state, step key)
        ("forward job resent", {}, "do/PowerOn", ("power_on", "power_on"), "succeeded"),
        ("undo job resent", {"fail_at": "power_off"}, "do/PowerOff", ("power_on", "undo_off"),
         "failed"),
        ("create resent", {"delete_at_end": True}, None, ("create_partition", "create"),
         "succeeded"),
    ]
    for name, params, suffix, where, expect in cases:
        inst = new_uuid(rng)
        part = lpar_uuid(inst)
        path = ("/rest/api/uom/LogicalPartition/%s/%s" % (part, suffix) if suffix
                else "/rest/api/uom/ManagedSystem/*/LogicalPartition")
        st.set_faults({"rules": [{"method": "PUT", "path": path, "kind": "latency",
                                  "latency_ms": 1000}]})
        body = {"type": "test_steps", "instance_uuid": inst, "idempotency_key": "window-" + inst,
                "params": params}
        r = st.submit(body)
        check(r.status == 202, "submit %s: %r" % (name, r))
        op_id = r.json["id"]

        def in_window():
            op = st.op(op_id)
            ent = (op["checkpoints"].get(where[0]) or {}).get(where[1]) or {}
            if suffix is None:  # a create: its intent (send guard) is committed
                return bool(ent.get("sent_at"))
            return ent.get("intent") and not ent.get("job_id")
        wait_until(in_window, 30, "op %d (%s) to send its request" % (op_id, name),
                   interval=0.005, max_interval=0.01)
        t_kill = time.monotonic()
        st.kill_powervmd()
        st.start_powervmd()
        back = time.monotonic() - t_kill
        op = st.wait_terminal([op_id], 60, name)[op_id]
        st.set_faults({"rules": []})
        c = audit_counts(st.audit()).get(part, {"created": 0, "jobs": {}, "deleted": 0,
                                                "create_refused": 0})
        text = st.powervmd_log()
        lines = [l for l in text.splitlines() if "instance=%s" % inst in l and
                 ("intent without a recorded outcome" in l or "duplicate create" in l or
                  "an earlier request got no answer" in l)]
        log("window case '%s' (op %d): killed, back in %.2f s; ended %s; creates %d (refused "
            "%d), jobs %s, deletes %d; logged: %s" % (
                name, op_id, back, op["state"], c["created"], c["create_refused"], c["jobs"],
                c["deleted"], [l.split("] ", 1)[-1][:200] for l in lines]))
        if op["state"] != expect or (expect == "failed" and
                                     "on purpose" not in (op.get("error") or "")):
            problems.append("window case '%s': op %d ended %s (expected %s): %s" % (
                name, op_id, op["state"], expect, op.get("error")))
        if c["created"] != 1:
            problems.append("window case '%s': %d creates" % (name, c["created"]))
        if not lines:
            problems.append("window case '%s': the intent was not reconciled and logged" % name)
        parts = st.partitions()
        gone = expect == "failed" or params.get("delete_at_end")
        if gone and part in parts:
            problems.append("window case '%s': partition %s left %s" % (name, part, parts[part]))


def test():
    rng, seed = seed_rng("daemon_crash")
    plans = make_plans(rng)
    # Submission schedule: the first third at once, the rest over the first 60% of the
    # kills; pairs in order (both in the same iteration, first one first).
    n_iter = KILLS
    sched = {}
    for i, p in enumerate(plans):
        if p["group"] is not None and plans[i - 1]["group"] == p["group"]:
            p["submit_at"] = plans[i - 1]["submit_at"]
        else:
            p["submit_at"] = 0 if rng.random() < 0.35 else rng.randrange(0, max(1, n_iter * 6 // 10))
        sched.setdefault(p["submit_at"], []).append(p)
    controls = []  # (iteration, plan, "go" | "cancel")
    for p in plans:
        if p["kind"] in ("gate", "gate_delete", "gate_cancel"):
            at = rng.randrange(p["submit_at"] + 1, n_iter + 2)
            controls.append([at, p, "cancel" if p["kind"] == "gate_cancel" else "go", False])
    log("%d operations on %d instances, %d kills planned" % (
        len(plans), len({p["instance"] for p in plans}), KILLS))

    with Stack("crash", job_ms=300, workers=4) as st:
        if WINDOW:
            st.set_faults({"seed": seed, "rules": [
                {"method": "PUT", "path": "/rest/api/uom/LogicalPartition/*/do/*",
                 "kind": "latency", "latency_ms": 300, "rate": 0.4},
                {"method": "PUT", "path": "/rest/api/uom/ManagedSystem/*/LogicalPartition",
                 "kind": "latency", "latency_ms": 300, "rate": 0.3}]})
            log("pvmsim delays 40% of job submissions and 30% of creates by 300 ms")
        t0 = time.monotonic()
        stats = {"kills": 0, "submit_errors": 0, "answers_lost": 0, "control_errors": 0,
                 "restart_s": [], "resubmits": 0}

        def do_submits(it):
            for p in [p for p in plans if p["submit_at"] <= it and p["id"] is None]:
                if p["group"] is not None:
                    prev = [q for q in plans if q["group"] == p["group"]][0]
                    if prev is not p and prev["id"] is None:
                        continue  # keep the order of a pair
                try:
                    r = st.submit(body_of(p))
                except DAEMON_ERRORS:
                    stats["submit_errors"] += 1
                    p["tried"] = True
                    return
                check(r.status in (200, 202), "submit %s: %r" % (p["key"], r))
                if r.status == 200:
                    check(r.json.get("existing") is True, "200 without existing: %r" % r)
                    check(p.get("tried"), "key %s known before its first submission" % p["key"])
                    stats["answers_lost"] += 1  # committed, but the answer was lost
                p["id"] = r.json["id"]
                p["acked"] = time.monotonic() - t0

        def do_controls(it):
            for c in controls:
                at, p, what, done = c
                if done or at > it or p["id"] is None:
                    continue
                try:
                    if what == "go":
                        r = st.api("POST", "/v1/operations/%d/signal" % p["id"],
                                   {"name": "go", "value": True})
                    else:
                        r = st.api("POST", "/v1/operations/%d/cancel" % p["id"])
                except DAEMON_ERRORS:
                    stats["control_errors"] += 1
                    return
                check(r.status == 200, "%s of %d: %r" % (what, p["id"], r))
                c[3] = True

        def do_resubmit():
            acked = [p for p in plans if p["id"] is not None]
            if not acked:
                return
            p = rng.choice(acked)
            try:
                r = st.submit(body_of(p))
            except DAEMON_ERRORS:
                return
            check(r.status == 200 and r.json["id"] == p["id"] and r.json["existing"] is True,
                  "resubmitting key %s (id %d) gave %r" % (p["key"], p["id"], r))
            stats["resubmits"] += 1

        loop_deadline = time.monotonic() + 240 * SCALE
        for it in range(n_iter):
            check(time.monotonic() < loop_deadline, "kill loop ran out of time at kill %d" % it)
            do_submits(it)
            do_controls(it)
            if rng.random() < 0.3:
                do_resubmit()
            # A random moment: often right after the start (recovery, claims, intents),
            # otherwise anywhere in a step or a job.
            r = rng.random()
            delay = rng.uniform(0, 0.08) if r < 0.35 else rng.uniform(0.08, 1.0)
            time.sleep(delay)
            st.kill_powervmd()
            stats["kills"] += 1
            stats["restart_s"].append(st.start_powervmd())
        loop_s = time.monotonic() - t0
        # Whatever is left: submissions and control requests, then let everything finish.
        for it in range(n_iter, n_iter + 3):
            do_submits(10**9)
            do_controls(10**9)
        check(all(p["id"] is not None for p in plans), "unsubmitted plans remain")
        check(all(c[3] for c in controls), "control requests not delivered")
        ops = st.wait_terminal([p["id"] for p in plans], 180, "operations after the kills")
        total_s = time.monotonic() - t0
        log("kills %d in %.1f s (restart %.2f s avg, %.2f max); all %d operations terminal "
            "%.1f s after the first submission" % (
                stats["kills"], loop_s, sum(stats["restart_s"]) / len(stats["restart_s"]),
                max(stats["restart_s"]), len(plans), total_s))
        log("submissions refused by a dead daemon %d, answers lost after commit %d, "
            "control retries %d, resubmissions checked %d" % (
                stats["submit_errors"], stats["answers_lost"], stats["control_errors"],
                stats["resubmits"]))

        problems = []
        # 1. Terminal, in the state the plan calls for.
        for p in plans:
            op = ops[p["id"]]
            if op["state"] != p["expect"]:
                problems.append("op %d (%s %s) ended %s, expected %s: %s" % (
                    p["id"], p["kind"], p["fail_at"] or "", op["state"], p["expect"],
                    op.get("error")))
            elif p["kind"] == "fail" and "on purpose" not in (op.get("error") or ""):
                problems.append("op %d failed for another reason: %s" % (p["id"], op["error"]))
        # 2. None lost or duplicated: one id per key, resubmission returns it.
        listed = st.list_ops()
        by_key = {}
        for o in listed:
            by_key.setdefault(o["idempotency_key"], []).append(o["id"])
        for p in plans:
            if by_key.get(p["key"]) != [p["id"]]:
                problems.append("key %s maps to %s, acknowledged id %d" % (
                    p["key"], by_key.get(p["key"]), p["id"]))
            r = st.submit(body_of(p))
            if not (r.status == 200 and r.json["id"] == p["id"] and r.json.get("existing")):
                problems.append("resubmitting %s gave %r" % (p["key"], r))
        if len(listed) != len(plans):
            problems.append("the journal holds %d operations, %d were submitted" % (
                len(listed), len(plans)))
        # 3. Effects once (audit log), explained duplicates (powervmd's log).
        text = st.powervmd_log()
        sent_again, settled = {}, {}
        for m in re.finditer(r"instance=(\S+).*step \w+(?: \(undo\))?: job (\w+) had an intent without "
                             r"a recorded outcome; (?:reconcile found its effect )?"
                             r"(absent|present|undo)",
                             text):
            d = sent_again if m.group(3) in ("absent", "undo") else settled
            k = (lpar_uuid(m.group(1)), m.group(2))
            d[k] = d.get(k, 0) + 1
        counts = audit_counts(st.audit())
        by_part = {}
        for p in plans:
            by_part.setdefault(lpar_uuid(p["instance"]), []).append(p)
        extra_jobs = 0
        for part, ps in by_part.items():
            c = counts.get(part, {"created": 0, "deleted": 0, "create_refused": 0, "jobs": {}})
            want_created = [q["created"] for q in ps]
            if None in want_created:  # a cancel: created at most once, deleted as often
                if c["created"] > 1 or c["deleted"] != c["created"]:
                    problems.append("partition %s (cancelled op): created %d, deleted %d" % (
                        part, c["created"], c["deleted"]))
            else:
                if c["created"] != max(want_created):
                    problems.append("partition %s: %d successful creates, expected %d" % (
                        part, c["created"], max(want_created)))
                want_del = 1 if (not ps[-1]["exists"] and max(want_created)) else 0
                if c["deleted"] != want_del:
                    problems.append("partition %s: %d deletes, expected %d" % (
                        part, c["deleted"], want_del))
            for job, field in (("PowerOn", "on"), ("PowerOff", "off")):
                want = sum(q[field] for q in ps)
                got = c["jobs"].get(job, 0)
                again = sent_again.get((part, job), 0)
                if got < want or got > want + again:
                    problems.append("partition %s: %d %s jobs, expected %d (+%d explained "
                                    "by 'sent again' lines) [%s]" % (
                                        part, got, job, want, again,
                                        ", ".join(q["kind"] for q in ps)))
                extra_jobs += max(0, got - want)
        # 4. Final state in pvmsim.
        parts = st.partitions()
        for part, ps in by_part.items():
            last = ps[-1]
            if last["exists"]:
                if parts.get(part) != "not activated":
                    problems.append("partition %s should exist, not activated: %s" % (
                        part, parts.get(part, "absent")))
            elif part in parts:
                problems.append("partition %s should be gone: %s" % (part, parts[part]))
        # 5. Every intent left without an outcome was reconciled and logged.
        intents = len(re.findall(r"had an intent without a recorded outcome", text))
        vanished = len(re.findall(r"vanished from the server", text))
        recovered = [int(x) for x in re.findall(r"(\d+) returned to the queue by recovery", text)]
        dup_creates = len(re.findall(r"a duplicate create was refused", text))
        refused = sum(c["create_refused"] for c in counts.values())
        # A refused duplicate is logged by the daemon that sent it, unless that one was
        # killed before the answer (its request was still in flight).
        if dup_creates > refused:
            problems.append("%d duplicate creates logged, pvmsim refused only %d" % (
                dup_creates, refused))
        job_refusals = sum(1 for e in st.audit() if e.get("status") == 409
                           and "/do/" in e.get("path", ""))
        for bad in ("cannot record the step's result", " error "):
            n = text.count(bad)
            if n:
                log("note: %d log lines contain %r" % (n, bad.strip()))
        log("recoveries %d (operations returned to the queue per start: max %d, total %d); "
            "intents without outcome reconciled %d (settled done %d, sent again %d); "
            "extra jobs accepted by pvmsim %d; duplicate jobs refused by pvmsim (409) %d; "
            "creates refused %d (logged as duplicates %d); vanished jobs %d" % (
                len(recovered) - 1, max(recovered or [0]), sum(recovered), intents,
                sum(settled.values()), sum(sent_again.values()), extra_jobs, job_refusals,
                refused, dup_creates, vanished))
        states = {}
        for p in plans:
            states[ops[p["id"]]["state"]] = states.get(ops[p["id"]]["state"], 0) + 1
        log("final states: %s" % states)
        if WINDOW:
            targeted(st, rng, problems)
        if problems:
            raise TestFailure("%d problem(s) (seed %d):\n  %s" % (
                len(problems), seed, "\n  ".join(problems)))


if __name__ == "__main__":
    run_main("daemon_crash", test)
