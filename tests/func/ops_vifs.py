#!/usr/bin/python3
"""ops_vifs: the network interface operations (attach_interface, detach_interface, plug_vifs,
unplug_vifs) and the network steps of spawn and destroy (through the test type test_vifs),
through the real stack (API, journal, workers, client) against pvmsim, in HMC mode and in
NovaLink mode (scripts/stack --mode).

pvmsim's state proves the adapters (MAC, PVID, virtual switch, partition) and its audit log
proves every create, delete and custom event (PUT uom/Event with nova-powervm's JSON detail)
and their order. Each operation is run again to show it finds its work done; the same request
twice is one operation; bad params are refused with a 400 naming the field; a missing
partition fails attach_interface and plug_vifs (instance_not_found) and is success for
detach_interface and unplug_vifs. Faults: 5xx and VIOS busy on the adapter and event paths
and 412 storms on adapter deletes, retried to success. Crashes: powervmd SIGKILLed while an
adapter create is held by pvmsim, and while a plug event is: after the restart the operation
succeeds with exactly one adapter of that MAC, its plug event sent after the create; and while
the RMC management adapter's create is held (the server picks its MAC, so only the intent
guard prevents a second one): exactly one adapter on MGMTSWITCH after the restart.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402
from stacklib import check, log, lpar_uuid, wait_until  # noqa: E402

JOB_MS = 300
EVENT_PREFIX = "event CUSTOM_CLIENT_EVENT "


class ModeStack(stacklib.Stack):
    def __init__(self, name, mode, **kw):
        super().__init__(name, **kw)
        self.mode = mode

    def up(self):
        out = self._stack("up", self.dir, "--job-ms", str(self.job_ms), "--workers",
                          str(self.workers), "--mode", self.mode)
        for line in out.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                self.env[k] = v.strip("'")
        self.sock = self.env["POWERVMD_SOCKET"]
        self.sim_url = self.env["PVMSIM_URL"]
        self.note_pids()
        log("stack up (%s mode) in %s" % (self.mode, self.dir))


def new_mac(rng):
    return "fa:16:3e:%02x:%02x:%02x" % (rng.getrandbits(8), rng.getrandbits(8),
                                         rng.getrandbits(8))


def pvm_mac(mac):
    return mac.replace(":", "").upper()


def vif(mac, vlan, vswitch=None, meta_vlan=False, typ="pvm_sea", port="p"):
    v = {"id": "%s-%s" % (port, pvm_mac(mac)[-6:]), "address": mac, "type": typ,
         "vnic_type": "normal", "devname": "tap" + pvm_mac(mac)[-6:].lower()}
    if meta_vlan:
        v["network"] = {"id": "net-1", "label": "private", "meta": {"vlan": str(vlan)}}
        v["details"] = {}
    else:
        v["details"] = {"vlan": vlan}
    if vswitch:
        v["details"]["vswitch"] = vswitch
    return v


class Runner:
    def __init__(self, st, uuid):
        self.st = st
        self.uuid = uuid
        self.lpar = lpar_uuid(uuid)
        self.n = 0

    def body(self, typ, params, key=None):
        self.n += 1
        p = {} if typ.startswith("test_") else {"instance": {"uuid": self.uuid,
                                                          "name": "instance-" + self.uuid[:8]}}
        p.update(params)
        return {"type": typ, "instance_uuid": self.uuid, "params": p,
                "idempotency_key": key or "k-%s-%d-%s" % (typ, self.n, self.uuid),
                "request_id": "req-ops-vifs-%d" % self.n}

    def run(self, typ, params, expect="succeeded", timeout=60, key=None):
        r = self.st.submit(self.body(typ, params, key))
        check(r.status == 202, "submit %s: %r" % (typ, r))
        op = self.st.wait_terminal([r.json["id"]], timeout, typ)[r.json["id"]]
        check(op["state"] == expect, "%s ended %s, not %s (%s): %s" % (
            typ, op["state"], expect, op["error"], op.get("history")))
        return op

    def refused(self, typ, params, field):
        r = self.st.submit(self.body(typ, params))
        check(r.status == 400 and r.error().get("field") == field,
              "%s %s: expected 400 naming %s, got %r" % (typ, params, field, r))

    # ---- pvmsim's view ----
    def adapters(self):
        """{MAC: props (+ uuid, switch name)} of this partition's client network adapters."""
        objs = self.st.sim_state()["objects"]
        sw = {o["uuid"]: (o["props"]["name"], o["parent"]) for o in objs
              if o["kind"] == "VirtualSwitch"}
        out = {}
        for o in objs:
            if o["kind"] == "ClientNetworkAdapter" and o["parent"].upper() == self.lpar:
                p = dict(o["props"], uuid=o["uuid"])
                p["switch"], p["switch_ms"] = sw.get(p["vswitch"], (None, None))
                out[p["mac"]] = p
        return out


def events(st, action=None, mac=None):
    """The custom events pvmsim took: [(seq, detail dict, object)]."""
    out = []
    for e in st.audit():
        if e.get("method") != "PUT" or e.get("path") != "/rest/api/uom/Event" or \
                not 200 <= e.get("status", 0) < 300:
            continue
        d = json.loads(e["outcome"][len(EVENT_PREFIX):])
        if (action is None or d["action"] == action) and (mac is None or d["mac"] == mac):
            out.append((e["seq"], d, e["object"]))
    return out


def cna_audit(st, what, mac):
    """Seqs of successful adapter creates ('created') or deletes ('deleted') of mac."""
    return [e["seq"] for e in st.audit()
            if 200 <= e.get("status", 0) < 300 and
            e.get("outcome", "").startswith("%s CNA %s" % (what, mac))]


def check_events(st, R, action, mac, typ="pvm_sea"):
    ev = events(st, action, mac)
    check(ev, "no %s event for %s" % (action, mac))
    for _, d, _obj in ev:
        check(d == {"provider": "NOVA_PVM_VIF", "action": action, "mac": mac, "type": typ},
              "event detail %s" % d)
    return ev


def scenario(mode, rng):
    with ModeStack("ops-vifs-" + mode, mode, job_ms=JOB_MS, workers=4) as st:
        ms_uuid = st.api("GET", "/v1/host").json["uuid"]
        uuid = stacklib.new_uuid(rng)
        R = Runner(st, uuid)
        op = R.run("test_steps", {})  # the partition (created, on, off)
        check(R.lpar in st.partitions(), "no partition")

        m1, m2, m3 = new_mac(rng), new_mac(rng), new_mac(rng)
        M1, M2, M3 = pvm_mac(m1), pvm_mac(m2), pvm_mac(m3)
        v1 = vif(m1, 100)
        v2 = vif(m2.upper().replace(":", "-"), 200, vswitch="ETHERNET0(Default)",
                 meta_vlan=True)

        # ---- validation through the API ----
        R.refused("attach_interface", {"vif": dict(v1, address="fa:16:3e:00:00")},
                  "params.vif.address")
        R.refused("attach_interface", {"vif": dict(v1, address="01:00:5e:00:00:01")},
                  "params.vif.address")
        R.refused("attach_interface", {"vif": dict(v1, type="ovs")}, "params.vif.type")
        R.refused("attach_interface", {"vif": dict(v1, details={"vlan": 4095})},
                  "params.vif.details.vlan")
        R.refused("attach_interface", {"vif": dict(v1, details={})}, "params.vif.details.vlan")
        R.refused("attach_interface", {}, "params.vif")
        R.refused("detach_interface", {"vif": v1, "network_info": []}, "params.network_info")
        R.refused("plug_vifs", {}, "params.network_info")
        R.refused("plug_vifs", {"network_info": [v1, dict(v2, address=m1)]},
                  "params.network_info[1].address")
        R.refused("unplug_vifs", {"network_info": [v1, dict(v2, type="bridge")]},
                  "params.network_info[1].type")
        R.refused("test_vifs", {"network_info": [v1], "fail": "yes"}, "params.fail")
        r = st.submit({"type": "attach_interface", "params": {"vif": v1, "instance": {
            "uuid": uuid}}})
        check(r.status == 400 and r.error().get("field") == "instance_uuid", repr(r))
        check(R.adapters() == {} and not events(st), "validation left traces")

        # ---- attach two interfaces ----
        op = R.run("attach_interface", {"vif": v1})
        res = op["result"]
        check(res["partition_uuid"] == R.lpar and res["mac"] == M1 and res["created"] is True,
              repr(res))
        check(res["adapter"]["vlan"] == 100 and res["adapter"]["vswitch"] == "ETHERNET0(Default)"
              and res["adapter"]["plug_event_sent"] is True, repr(res))
        op = R.run("attach_interface", {"vif": v2})
        check(op["result"]["mac"] == M2 and op["result"]["adapter"]["vlan"] == 200, repr(op))
        A = R.adapters()
        check(sorted(A) == sorted([M1, M2]), "adapters %s" % sorted(A))
        for mac, vlan in ((M1, 100), (M2, 200)):
            check(A[mac]["pvid"] == vlan and A[mac]["switch"] == "ETHERNET0(Default)" and
                  A[mac]["switch_ms"] == ms_uuid, "adapter %s: %s" % (mac, A[mac]))
            ev = check_events(st, R, "plug", mac)
            check(len(ev) == 1 and ev[0][2] == A[mac]["uuid"], "plug events of %s: %s" % (
                mac, ev))
            check(cna_audit(st, "created", mac)[0] < ev[0][0], "event before the create")
        check(A[M1]["slot"] != A[M2]["slot"], "slots %s" % A)

        # ---- a MAC another partition's adapter has: refused by PowerVM, nothing left ----
        other = Runner(st, stacklib.new_uuid(rng))
        other.run("test_steps", {})
        op = other.run("attach_interface", {"vif": v1}, "failed")
        check("HSCL1B71" in op["error"] and M1 in op["error"], repr(op))
        check(other.adapters() == {} and len(cna_audit(st, "created", M1)) == 1,
              "MAC conflict left traces: %s" % other.adapters())

        # ---- the same request twice is one operation; attach again finds it ----
        body = R.body("attach_interface", {"vif": v1}, key="k-attach-twice-" + uuid)
        r1 = st.submit(body)
        r2 = st.submit(body)
        check(r1.status == 202 and r2.status == 200 and r2.json["id"] == r1.json["id"],
              "same request twice: %r %r" % (r1, r2))
        op = st.wait_terminal([r1.json["id"]], 60)[r1.json["id"]]
        check(op["state"] == "succeeded" and op["result"]["created"] is False and
              op["result"]["adapter"]["vswitch"] == "ETHERNET0(Default)", repr(op))
        check(len(cna_audit(st, "created", M1)) == 1 and len(R.adapters()) == 2,
              "attach of an attached interface created one")

        # ---- detach one, twice ----
        n_plug2 = len(events(st, "plug", M2))
        op = R.run("detach_interface", {"vif": v2})
        check(op["result"]["found"] is True and op["result"]["mac"] == M2, repr(op["result"]))
        check(sorted(R.adapters()) == [M1], "after detach: %s" % sorted(R.adapters()))
        ev = check_events(st, R, "unplug", M2)
        dels = cna_audit(st, "deleted", M2)
        check(len(ev) == 1 and len(dels) == 1 and ev[0][0] < dels[0],
              "unplug event %s, deletes %s" % (ev, dels))
        op = R.run("detach_interface", {"vif": v2})
        check(op["result"]["found"] is False and op["result"]["partition_found"] is True,
              repr(op["result"]))
        check(len(events(st, "unplug", M2)) == 1, "detach of an absent adapter sent an event")

        # ---- plug_vifs restores the deleted one; again: nothing ----
        n_plug1 = len(events(st, "plug", M1))
        op = R.run("plug_vifs", {"network_info": [v1, v2]})
        res = op["result"]
        check(res["created"] == 1 and [a["created"] for a in res["adapters"]] == [False, True],
              repr(res))
        A = R.adapters()
        check(sorted(A) == sorted([M1, M2]) and A[M2]["pvid"] == 200, "after plug_vifs %s" % A)
        check(len(events(st, "plug", M2)) == n_plug2 + 1 and
              len(events(st, "plug", M1)) == n_plug1, "plug_vifs events")
        op = R.run("plug_vifs", {"network_info": [v1, v2]})
        check(op["result"]["created"] == 0 and len(events(st, "plug")) == n_plug1 + n_plug2 + 1,
              "plug_vifs twice: %s" % op["result"])

        # an adapter found on another VLAN than asked is left as it is (and logged)
        op = R.run("plug_vifs", {"network_info": [vif(m1, 999)]})
        res = op["result"]["adapters"][0]
        check(op["result"]["created"] == 0 and res["vlan"] == 100 and
              R.adapters()[M1]["pvid"] == 100, "VLAN mismatch: %s" % op["result"])
        check("adapter %s exists with VLAN 100" % M1 in st.powervmd_log(), "mismatch not logged")

        # ---- unplug_vifs, twice ----
        n_unplug = len(events(st, "unplug"))
        op = R.run("unplug_vifs", {"network_info": [v1, v2]})
        check(sorted(op["result"]["removed"]) == sorted([M1, M2]) and
              op["result"]["absent"] == [], repr(op["result"]))
        check(R.adapters() == {}, "after unplug_vifs: %s" % R.adapters())
        check(len(events(st, "unplug")) == n_unplug + 2, "unplug events")
        op = R.run("unplug_vifs", {"network_info": [v1, v2]})
        check(op["result"]["removed"] == [] and sorted(op["result"]["absent"]) ==
              sorted([M1, M2]), repr(op["result"]))

        # ---- an unknown switch fails naming it, leaving nothing ----
        op = R.run("attach_interface", {"vif": vif(m3, 300, vswitch="NOSUCH")}, "failed")
        check("NOSUCH" in op["error"] and op["error_code"] == "vswitch_not_found", repr(op))
        check(R.adapters() == {} and not events(st, mac=M3), "unknown switch left traces")

        # ---- a missing partition ----
        other = Runner(st, stacklib.new_uuid(rng))
        check(other.lpar not in st.partitions(), "partition of a new instance")
        for typ, params in (("attach_interface", {"vif": v1}),
                            ("plug_vifs", {"network_info": [v1]})):
            op = other.run(typ, params, "failed")
            check(op["error_code"] == "instance_not_found" and other.lpar in op["error"],
                  "%s of a missing partition: %s %s" % (typ, op["error_code"], op["error"]))
        op = other.run("detach_interface", {"vif": v1})
        check(op["result"]["found"] is False and op["result"]["partition_found"] is False,
              repr(op["result"]))
        op = other.run("unplug_vifs", {"network_info": [v1, v2]})
        check(op["result"]["partition_found"] is False, repr(op["result"]))

        # ---- spawn's and destroy's steps (test_vifs) ----
        n_plug, n_unplug = len(events(st, "plug")), len(events(st, "unplug"))
        op = R.run("test_vifs", {"network_info": [v1, v2], "unplug": True})
        res = op["result"]
        A = R.adapters()
        mg = [a for a in A.values() if a["switch"] == "MGMTSWITCH"]
        check(sorted(A) == sorted([M1, M2, mg[0]["mac"]]) if mg else False,
              "spawn adapters %s" % A)
        check(mg[0]["pvid"] == 4094 and res["mgmt_adapter"]["mac"] == mg[0]["mac"] and
              res["mgmt_adapter"]["vlan"] == 4094, "management adapter %s / %s" % (mg, res))
        check(res["vifs"][M1]["created"] and res["vifs"][M2]["created"] and
              res["unplugged"] == {M1: True, M2: True}, repr(res))
        check(len(events(st, "plug")) == n_plug + 2 and
              len(events(st, "unplug")) == n_unplug + 2 and not events(st, mac=mg[0]["mac"]),
              "spawn/destroy events")
        # run again, failing at the end: the adapters are found, then the undo removes them
        op = R.run("test_vifs", {"network_info": [v1, v2], "fail": True}, "failed")
        check(R.adapters() == {}, "after the undo: %s" % R.adapters())
        check(len(cna_audit(st, "deleted", mg[0]["mac"])) == 1, "management adapter delete")

        # ---- faults on the adapter and event paths: retried to success ----
        seed = rng.randrange(1, 2**31)
        st.set_faults({"seed": seed, "rules": [
            {"method": "PUT", "path": "/rest/api/uom/LogicalPartition/*/ClientNetworkAdapter",
             "kind": "http_503", "rate": 0.4},
            {"method": "GET", "path": "/rest/api/uom/LogicalPartition/*/ClientNetworkAdapter",
             "kind": "http_500", "rate": 0.3},
            {"method": "PUT", "path": "/rest/api/uom/Event", "kind": "vios_busy", "rate": 0.3},
            {"method": "DELETE", "path": "/rest/api/uom/LogicalPartition/*/ClientNetworkAdapter/*",
             "kind": "412", "first": 2}]})
        a0 = len(st.audit())
        R.run("attach_interface", {"vif": v1}, timeout=120)
        R.run("attach_interface", {"vif": v2}, timeout=120)
        check(sorted(R.adapters()) == sorted([M1, M2]), "faults: attach")
        R.run("detach_interface", {"vif": v1}, timeout=120)
        check(sorted(R.adapters()) == [M2], "faults: detach")
        op = R.run("plug_vifs", {"network_info": [v1, v2]}, timeout=120)
        check(op["result"]["created"] == 1 and sorted(R.adapters()) == sorted([M1, M2]),
              "faults: plug_vifs %s" % op["result"])
        R.run("unplug_vifs", {"network_info": [v1, v2]}, timeout=120)
        check(R.adapters() == {}, "faults: unplug_vifs")
        st.set_faults({"rules": []})
        faults = [e for e in st.audit()[a0:] if e.get("outcome", "").startswith("fault")]
        f412 = [e for e in faults if e["method"] == "DELETE"]
        check(len(faults) >= 5 and len(f412) >= 2, "faults fired: %d (412: %d)" % (
            len(faults), len(f412)))
        log("%s mode: %d faults injected (seed %d), %d of them 412 on deletes" % (
            mode, len(faults), seed, len(f412)))

        # ---- SIGKILL while the create is held by pvmsim ----
        crash_create(st, R, rng)
        # ---- SIGKILL while the plug event is held ----
        crash_event(st, R, rng)

        # ---- SIGKILL while the management adapter's create is held (the server picks its
        # MAC, so only the intent guards against a second one) ----
        crash_mgmt(st, R)

        # ---- powervm_use_rmc_mgmt_vif = false: no management adapter ----
        with open(os.path.join(st.dir, "powervmd-1.conf"), "a") as fh:
            fh.write("powervm_use_rmc_mgmt_vif = false;\n")
        st.kill_powervmd()
        st.start_powervmd()
        op = R.run("test_vifs", {"network_info": [v1]})
        check(op["result"].get("mgmt_adapter") is None and
              [a["switch"] for a in R.adapters().values()] == ["ETHERNET0(Default)"],
              "use_rmc_mgmt_vif = false: %s" % R.adapters())


def crash_create(st, R, rng):
    m = new_mac(rng)
    M = pvm_mac(m)
    st.set_faults({"rules": [{"method": "PUT", "kind": "latency", "latency_ms": 1500,
                              "path": "/rest/api/uom/LogicalPartition/%s/ClientNetworkAdapter"
                              % R.lpar}]})
    r = st.submit(R.body("attach_interface", {"vif": vif(m, 400)}))
    check(r.status == 202, repr(r))
    oid = r.json["id"]

    def sent():
        cp = (st.op(oid)["checkpoints"].get("attach") or {}).get("cna_" + M) or {}
        return cp.get("sent_at")
    wait_until(sent, 30, "the create's intent", interval=0.005, max_interval=0.01)
    st.kill_powervmd()
    st.start_powervmd()
    op = st.wait_terminal([oid], 60, "attach after the kill")[oid]
    st.set_faults({"rules": []})
    check(op["state"] == "succeeded" and op["result"]["created"] is True, repr(op))
    A = {k: v for k, v in R.adapters().items() if k == M}
    creates = cna_audit(st, "created", M)
    ev = events(st, "plug", M)
    check(len(A) == 1 and len(creates) == 1, "after the kill: adapters %s creates %s" % (
        A, creates))
    check(ev and ev[-1][0] > creates[0], "plug event %s after the create %s" % (ev, creates))
    text = st.powervmd_log()
    settled = [l for l in text.splitlines() if "instance=%s" % R.uuid in l and
               ("may still land" in l or "intent without a recorded outcome" in l or
                M in l)]
    check(settled, "the unanswered create was not reconciled in the log")
    log("crash during the create: one adapter %s, %d plug event(s); logged: %s" % (
        M, len(ev), [l.split(" req=", 1)[-1][:150] for l in settled]))
    R.run("detach_interface", {"vif": vif(m, 400)})


def crash_event(st, R, rng):
    m = new_mac(rng)
    M = pvm_mac(m)
    st.set_faults({"rules": [{"method": "PUT", "kind": "latency", "latency_ms": 1500,
                              "path": "/rest/api/uom/Event"}]})
    r = st.submit(R.body("attach_interface", {"vif": vif(m, 500)}))
    check(r.status == 202, repr(r))
    oid = r.json["id"]
    wait_until(lambda: cna_audit(st, "created", M), 30, "the create", interval=0.005,
               max_interval=0.01)
    st.kill_powervmd()
    st.start_powervmd()
    op = st.wait_terminal([oid], 60, "attach after the kill")[oid]
    check(op["state"] == "succeeded" and op["result"]["created"] is True, repr(op))
    creates = cna_audit(st, "created", M)
    ev = wait_until(lambda: events(st, "plug", M), 10, "the plug event")
    st.set_faults({"rules": []})
    check(len(creates) == 1 and M in R.adapters() and ev[-1][0] > creates[0],
          "after the kill: creates %s, events %s" % (creates, ev))
    # the restarted step found the adapter by its MAC, with the create's intent unsettled
    settled = [l for l in st.powervmd_log().splitlines() if "instance=%s" % R.uuid in l and
               "adapter %s: the create had an intent" % M in l]
    check(settled, "the restarted attach did not settle the create from the adapter")
    log("crash during the plug event: one adapter %s, %d plug event(s) (the held one lands "
        "too)" % (M, len(ev)))
    R.run("detach_interface", {"vif": vif(m, 500)})


def crash_mgmt(st, R):
    st.set_faults({"rules": [{"method": "PUT", "kind": "latency", "latency_ms": 1500,
                              "path": "/rest/api/uom/LogicalPartition/%s/ClientNetworkAdapter"
                              % R.lpar}]})
    r = st.submit(R.body("test_vifs", {"network_info": [], "mgmt": True}))
    check(r.status == 202, repr(r))
    oid = r.json["id"]

    def sent():
        cp = (st.op(oid)["checkpoints"].get("mgmt_vif") or {}).get("mgmt_cna") or {}
        return cp.get("sent_at")
    wait_until(sent, 30, "the management adapter's intent", interval=0.005,
               max_interval=0.01)
    st.kill_powervmd()
    st.start_powervmd()
    op = st.wait_terminal([oid], 60, "test_vifs after the kill")[oid]
    st.set_faults({"rules": []})
    check(op["state"] == "succeeded", repr(op))
    mg = [a for a in R.adapters().values() if a["switch"] == "MGMTSWITCH"]
    check(len(mg) == 1 and mg[0]["mac"] == op["result"]["mgmt_adapter"]["mac"] and
          mg[0]["pvid"] == 4094, "management adapters after the kill: %s" % mg)
    log("crash during the management adapter's create: one adapter %s" % mg[0]["mac"])
    # its undo removes it
    R.run("test_vifs", {"network_info": [], "mgmt": True, "fail": True}, "failed")
    check(R.adapters() == {}, "management adapter left: %s" % R.adapters())


def main():
    rng, _ = stacklib.seed_rng("ops_vifs")
    modes = os.environ.get("PVM_OPS_MODES", "hmc novalink").split()
    for mode in modes:
        scenario(mode, rng)


if __name__ == "__main__":
    stacklib.run_main("ops_vifs", main)
