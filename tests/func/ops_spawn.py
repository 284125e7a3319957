#!/usr/bin/python3
"""ops_spawn: the spawn and destroy operations through the real stack (API, journal,
workers, client) against pvmsim, in HMC mode and in NovaLink mode (scripts/stack --mode).

What is checked, from pvmsim's own state (/sim/state) rather than from powervmd's answers:
- spawn: the partition running, the boot disk b_<hex> holding the image (its SHA-256 is the
  cached file's), the config drive media holding the ISO, both mapped to the partition; the
  ISO spool file gone; a second spawn adopts and creates nothing;
- destroy: nothing of the instance left (partition, disk, media, mapping, web File); again:
  success with nothing there;
- refusals (400 naming the field): bad flavor, unknown or bad powervm: extra specs, min >
  desired, disk formats other than raw;
- failures end undone: no cached image, no config drive ISO;
- the network gate: a signal opens it; a fatal timeout fails the spawn and cleans it; a
  non-fatal one powers on anyway;
- faults: VIOS busy, 412 storms on volume group and VIOS POSTs, PowerOn job failures: each
  spawn ends succeeded, or failed with nothing left;
- crash: powervmd SIGKILLed many times at random moments during spawns and destroys of
  several instances; at the end each instance is fully spawned or fully gone and pvmsim
  holds no orphan partition, disk, media, mapping or File.
Images and config drive ISOs go through the API (PUT /v1/images/{id}, PUT
/v1/config-drives/{uuid}); with ssp the image becomes an image LU of the pool.
"""
import hashlib
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402
from stacklib import check, log, lpar_uuid, wait_until  # noqa: E402

JOB_MS = 300


class ModeStack(stacklib.Stack):
    def __init__(self, name, mode, **kw):
        super().__init__(name, mode=mode, **kw)

    def up(self):
        super().up()
        self.state_dir = os.path.join(self.dir, "state-1")

    # ---- data through the API: the image cache and the config drive spool ----
    def put_image(self, image_id, data):
        r = stacklib.Stack.put_image(self, image_id, data, algo="sha256", wait=120)
        check(r.status in (200, 201), "PUT /v1/images/%s: %r" % (image_id, r))
        return hashlib.sha256(data).hexdigest()

    def spool_path(self, uuid):
        return os.path.join(self.state_dir, "config-drives", uuid + ".iso")

    def put_iso(self, uuid, data):
        r = self.api("PUT", "/v1/config-drives/" + uuid, data,
                     {"Content-Type": "application/octet-stream"})
        check(r.status in (200, 201), "PUT /v1/config-drives/%s: %r" % (uuid, r))
        return hashlib.sha256(data).hexdigest()


def names(uuid):
    h = uuid.replace("-", "").lower()
    return {"lpar": lpar_uuid(uuid), "vdisk": "b_" + h[:13], "media": "cfg_%s.iso" % h[:29]}


class Sim:
    """What pvmsim holds, read once from /sim/state."""

    def __init__(self, st):
        s = st.sim_state()
        self.objs = s["objects"]
        self.lpars = {o["uuid"].upper(): o["props"] for o in self.objs
                      if o["kind"] == "LogicalPartition"}
        self.vdisks, self.media, self.maps, self.files = {}, {}, [], []
        for o in self.objs:
            p = o["props"]
            if o["kind"] == "VolumeGroup":
                for d in p.get("vdisks") or []:
                    self.vdisks[d["name"]] = d
                for m in (p.get("media_repository") or {}).get("media") or []:
                    self.media[m["name"]] = m
            elif o["kind"] == "VirtualIOServer":
                for m in p.get("scsi_mappings") or []:
                    self.maps.append(m)
            elif o["kind"] == "File":
                self.files.append(p)

    def mapped(self, lpar, name):
        return [m for m in self.maps if m.get("lpar", "").upper() == lpar and
                (m.get("storage") or {}).get("name") == name]

    def state(self, uuid):
        """'full', 'gone', or a description of what is half there."""
        n = names(uuid)
        have = {"partition": n["lpar"] in self.lpars, "vdisk": n["vdisk"] in self.vdisks,
                "media": n["media"] in self.media,
                "mappings": [m for m in self.maps if m.get("lpar", "").upper() == n["lpar"]],
                "files": [f for f in self.files if f.get("name") in (n["vdisk"], n["media"])]}
        if not any(have.values()):
            return "gone", have
        return "some", have


def check_spawned(st, uuid, img_sha, iso_sha=None):
    n = names(uuid)
    s = Sim(st)
    check(s.lpars.get(n["lpar"], {}).get("state") == "running",
          "partition %s: %s" % (n["lpar"], s.lpars.get(n["lpar"])))
    d = s.vdisks.get(n["vdisk"])
    check(d and (d.get("contents") or {}).get("sha256") == img_sha,
          "boot disk %s: %s (image sha256 %s)" % (n["vdisk"], d, img_sha))
    m = s.mapped(n["lpar"], n["vdisk"])
    check(len(m) == 1 and not m[0].get("orphan"), "disk mapping: %s" % m)
    if iso_sha:
        md = s.media.get(n["media"])
        check(md and (md.get("contents") or {}).get("sha256") == iso_sha,
              "config drive media %s: %s" % (n["media"], md))
        m = s.mapped(n["lpar"], n["media"])
        check(len(m) == 1 and not m[0].get("orphan"), "media mapping: %s" % m)
        check(not os.path.exists(st.spool_path(uuid)), "the ISO spool file is left")
    else:
        check(n["media"] not in s.media, "media without config drive")
    check(len([x for x in s.maps if x.get("lpar", "").upper() == n["lpar"]]) ==
          (2 if iso_sha else 1), "mappings of the partition: %s" % s.maps)
    check(not [f for f in s.files if f.get("name") in (n["vdisk"], n["media"])],
          "web Files left: %s" % s.files)


def check_gone(st, uuid, what="instance"):
    state, have = Sim(st).state(uuid)
    check(state == "gone", "%s %s is not gone: %s" % (what, uuid, have))


def spawn_body(uuid, image_id, config_drive=False, extra_specs=None, **params):
    p = {"instance": {"uuid": uuid, "name": "instance-%s" % uuid[:8]},
         "flavor": {"name": "m1.tiny", "memory_mb": 512, "vcpus": 1, "root_gb": 1,
                    "extra_specs": extra_specs or {}},
         "image_meta": {"id": image_id, "disk_format": "raw", "name": "test"},
         "network_info": [], "block_device_info": None, "config_drive": config_drive}
    p.update(params)
    return {"type": "spawn", "instance_uuid": uuid, "params": p}


def destroy_body(uuid, **params):
    p = {"instance": {"uuid": uuid}, "network_info": []}
    p.update(params)
    return {"type": "destroy", "instance_uuid": uuid, "params": p}


def run(st, body, expect="succeeded", timeout=90):
    r = st.submit(body)
    check(r.status == 202, "submit %s: %r" % (body["type"], r))
    op = st.wait_terminal([r.json["id"]], timeout, body["type"])[r.json["id"]]
    check(op["state"] == expect, "%s ended %s (%s, %s): %s" % (
        body["type"], op["state"], op["error_code"], op["error"], op.get("history")))
    return op


def creates(st, lpar):
    return stacklib.audit_counts(st.audit()).get(lpar, {}).get("created", 0)


def refusals(st, uuid, image_id):
    bad = [
        ({"flavor": {"memory_mb": 512, "vcpus": 0, "root_gb": 1}}, "params.flavor.vcpus"),
        ({"flavor": {"memory_mb": "512", "vcpus": 1}}, "params.flavor.memory_mb"),
        ({"image_meta": {"id": image_id, "disk_format": "qcow2"}},
         "params.image_meta.disk_format"),
        ({"image_meta": {"id": "../etc"}}, "params.image_meta.id"),
        ({"network_plugged_timeout": -1}, "params.network_plugged_timeout"),
        ({"colour": "red"}, "params.colour"),
    ]
    specs = [
        ({"powervm:frobnicate": "1"}, "powervm:frobnicate"),
        ({"powervm:shared_weight": "300"}, "powervm:shared_weight"),
        ({"powervm:min_mem": "1024"}, "powervm:min_mem"),
        ({"powervm:max_vcpu": "0"}, "powervm:max_vcpu"),
        ({"powervm:proc_units": "2.0"}, "powervm:proc_units"),
        ({"powervm:proc_units": "0.123"}, "powervm:proc_units"),
        ({"powervm:dedicated_proc": "maybe"}, "powervm:dedicated_proc"),
        ({"powervm:dedicated_proc": "true", "powervm:proc_units": "0.5"},
         "powervm:proc_units"),
        ({"powervm:uncapped": "false", "powervm:shared_weight": "10"},
         "powervm:shared_weight"),
        ({"powervm:processor_compatibility": "POWER42"}, "powervm:processor_compatibility"),
        ({"powervm:availability_priority": "-1"}, "powervm:availability_priority"),
        ({"powervm:srr_capability": "sometimes"}, "powervm:srr_capability"),
    ]
    for params, field in bad:
        b = spawn_body(uuid, image_id)
        for k, v in params.items():
            if isinstance(v, dict) and isinstance(b["params"].get(k), dict):
                b["params"][k] = v
            else:
                b["params"][k] = v
        r = st.submit(b)
        check(r.status == 400 and r.error().get("field") == field,
              "%s: want 400 naming %s, got %r" % (params, field, r))
    for es, key in specs:
        r = st.submit(spawn_body(uuid, image_id, extra_specs=es))
        want = "params.flavor.extra_specs." + key
        check(r.status == 400 and r.error().get("field") == want,
              "%s: want 400 naming %s, got %r" % (es, want, r))
    r = st.submit(destroy_body(uuid, destroy_disks="yes"))
    check(r.status == 400 and r.error().get("field") == "params.destroy_disks", repr(r))
    log("refusals: %d params, %d extra specs" % (len(bad), len(specs)))


def scenario(mode, rng):
    with ModeStack("ops-spawn-" + mode, mode, job_ms=JOB_MS, workers=4) as st:
        img = "img-%d" % rng.randrange(1 << 30)
        img_sha = st.put_image(img, os.urandom(1536 * 1024 + rng.randrange(4096)))
        u1 = stacklib.new_uuid(rng)
        base = set(Sim(st).lpars)  # the NovaLink management partition, in novalink mode
        refusals(st, u1, img)

        # ---- spawn with a config drive and extra specs, twice; destroy, twice ----
        iso_sha = st.put_iso(u1, os.urandom(65536))
        es = {"powervm:min_mem": "256", "powervm:max_mem": "1024", "powervm:max_vcpu": "4",
              "powervm:proc_units": "0.2", "powervm:uncapped": "true",
              "powervm:shared_weight": "100", "powervm:availability_priority": "200",
              "powervm:processor_compatibility": "power8", "powervm:srr_capability": "true",
              "hw:cpu_policy": "shared"}
        t0 = time.monotonic()
        op = run(st, spawn_body(u1, img, config_drive=True, extra_specs=es))
        log("spawn with config drive: %.2f s" % (time.monotonic() - t0))
        res = op["result"]
        check(res["state"] == "running" and res["power_state"] == 1 and
              res["partition_uuid"] == lpar_uuid(u1) and
              res["boot_disk"]["name"] == names(u1)["vdisk"] and
              res["config_drive"] == names(u1)["media"], repr(res))
        check_spawned(st, u1, img_sha, iso_sha)
        lp = Sim(st).lpars[lpar_uuid(u1)]
        check(lp.get("min_mem") == 256 and lp.get("max_mem") == 1024 and
              lp.get("max_vcpus") == 4 and abs(lp.get("desired_units", 0) - 0.2) < 1e-9 and
              lp.get("weight") == 100 and lp.get("avail_priority") == 200 and
              lp.get("compat_mode") == "POWER8" and lp.get("srr") is True,
              "partition shape: %s" % lp)
        op = run(st, spawn_body(u1, img, config_drive=True, extra_specs=es))
        check(op["result"]["adopted_partition"] is True and creates(st, lpar_uuid(u1)) == 1,
              "second spawn: %s, creates %d" % (op["result"], creates(st, lpar_uuid(u1))))
        check_spawned(st, u1, img_sha, iso_sha)
        # params naming another instance: refused, and the existing instance is left alone
        b = spawn_body(u1, img)
        b["params"]["instance"]["uuid"] = stacklib.new_uuid(rng)
        r = st.submit(b)
        check(r.status == 400 and r.error().get("field") == "params.instance.uuid", repr(r))
        check_spawned(st, u1, img_sha, iso_sha)
        t0 = time.monotonic()
        op = run(st, destroy_body(u1))
        log("destroy: %.2f s" % (time.monotonic() - t0))
        check(op["result"]["partition_existed"] is True, repr(op["result"]))
        check_gone(st, u1)
        op = run(st, destroy_body(u1))
        check(op["result"]["partition_existed"] is False, repr(op["result"]))

        # ---- destroy_disks false keeps the disk; a later destroy removes it ----
        u2 = stacklib.new_uuid(rng)
        run(st, spawn_body(u2, img))
        check_spawned(st, u2, img_sha)
        run(st, destroy_body(u2, destroy_disks=False))
        s = Sim(st)
        check(lpar_uuid(u2) not in s.lpars and names(u2)["vdisk"] in s.vdisks and
              not s.mapped(lpar_uuid(u2), names(u2)["vdisk"]), "destroy_disks false")
        run(st, destroy_body(u2))
        check_gone(st, u2)

        # ---- failures end undone ----
        u3 = stacklib.new_uuid(rng)
        op = run(st, spawn_body(u3, "not-cached"), expect="failed")
        check(op["error_code"] == "image_not_cached" and "PUT /v1/images/not-cached" in
              op["error"], "%s %s" % (op["error_code"], op["error"]))
        check_gone(st, u3, "failed spawn")
        op = run(st, spawn_body(u3, img, config_drive=True), expect="failed")
        check(op["error_code"] == "config_drive_missing" and "/v1/config-drives/" in
              op["error"], "%s %s" % (op["error_code"], op["error"]))
        check_gone(st, u3, "failed spawn")

        # ---- the network gate ----
        vif = [{"id": "vif-1", "address": "fa:16:3e:00:00:01", "type": "pvm_sea",
                "details": {"vlan": 10}}]
        u4 = stacklib.new_uuid(rng)
        r = st.submit(spawn_body(u4, img, network_info=vif, network_plugged_timeout=300,
                                 network_plugged_fatal=True))
        check(r.status == 202, repr(r))
        oid = r.json["id"]
        wait_until(lambda: "started" in (st.op(oid)["checkpoints"].get("network_gate") or {}),
                   30, "the spawn to wait at the gate")
        check(Sim(st).lpars[lpar_uuid(u4)]["state"] == "not activated", "on before the gate")
        r = st.api("POST", "/v1/operations/%d/signal" % oid,
                   {"name": "network_plugged", "value": True})
        check(r.status == 200, repr(r))
        op = st.wait_terminal([oid], 60, "gated spawn")[oid]
        check(op["state"] == "succeeded" and op["result"]["network_plugged"] == "signalled",
              repr(op["result"]))
        check_spawned(st, u4, img_sha)
        run(st, destroy_body(u4, network_info=vif))
        check_gone(st, u4)
        # the partition deleted behind powervmd's back while the spawn waits at the gate
        # (its mappings stay on the VIOS without their client side): the spawn fails at
        # power-on and its undo removes the orphaned mappings, the media and the disk
        st.put_iso(u4, os.urandom(4096))
        r = st.submit(spawn_body(u4, img, config_drive=True, network_info=vif,
                                 network_plugged_timeout=300))
        oid = r.json["id"]
        wait_until(lambda: "started" in (st.op(oid)["checkpoints"].get("network_gate") or {}),
                   30, "the spawn to wait at the gate")
        token = logon(st)
        status, body = rest(st, "DELETE", "/rest/api/uom/LogicalPartition/%s" % lpar_uuid(u4),
                            token=token)
        check(status == 204, "out-of-band delete: %d %s" % (status, body[:200]))
        check([m for m in Sim(st).maps if m.get("orphan")], "no orphaned mapping to clean")
        st.api("POST", "/v1/operations/%d/signal" % oid, {"name": "network_plugged",
                                                          "value": True})
        op = st.wait_terminal([oid], 60, "spawn of a vanished partition")[oid]
        check(op["state"] == "failed" and op["error_code"] == "instance_not_found", repr(op))
        check_gone(st, u4, "spawn whose partition vanished")
        # cancelled at the gate: undone, ends cancelled
        r = st.submit(spawn_body(u4, img, network_info=vif, network_plugged_timeout=300))
        oid = r.json["id"]
        wait_until(lambda: "started" in (st.op(oid)["checkpoints"].get("network_gate") or {}),
                   30, "the spawn to wait at the gate")
        check(st.api("POST", "/v1/operations/%d/cancel" % oid).status == 200, "cancel")
        op = st.wait_terminal([oid], 60, "cancelled spawn")[oid]
        check(op["state"] == "cancelled", repr(op))
        check_gone(st, u4, "cancelled spawn")
        u5 = stacklib.new_uuid(rng)
        t0 = time.monotonic()
        op = run(st, spawn_body(u5, img, network_info=vif, network_plugged_timeout=1.5,
                                network_plugged_fatal=True), expect="failed")
        check(op["error_code"] == "vif_plug_timeout" and time.monotonic() - t0 >= 1.5,
              "%s %s" % (op["error_code"], op["error"]))
        check_gone(st, u5, "timed-out spawn")
        op = run(st, spawn_body(u5, img, network_info=vif, network_plugged_timeout=1,
                                network_plugged_fatal=False))
        check(op["result"]["network_plugged"] == "timed_out", repr(op["result"]))
        check_spawned(st, u5, img_sha)
        run(st, destroy_body(u5))
        check_gone(st, u5)

        # ---- faults: VIOS busy, 412 storms, PowerOn job failures ----
        seed = rng.randrange(1, 2**31)
        st.set_faults({"seed": seed, "rules": [
            {"method": "*", "path": "/rest/api/uom/VirtualIOServer*", "kind": "vios_busy",
             "rate": 0.25},
            {"method": "POST", "path": "/rest/api/uom/VirtualIOServer/*/VolumeGroup/*",
             "kind": "412", "first": 14},
            {"method": "POST", "path": "/rest/api/uom/VirtualIOServer/*", "kind": "412",
             "first": 4},
            {"method": "PUT", "path": "/rest/api/web/File*", "kind": "http_503", "rate": 0.2}],
            "job_failure_rates": {"PowerOn": 0.4, "PowerOff": 0.3}})
        us = [stacklib.new_uuid(rng) for _ in range(3)]
        isos = {u: st.put_iso(u, os.urandom(4096)) for u in us}
        ids = {}
        for u in us:
            r = st.submit(spawn_body(u, img, config_drive=True))
            check(r.status == 202, repr(r))
            ids[u] = r.json["id"]
        ops = st.wait_terminal(ids.values(), 240, "spawns under faults")
        outcomes = {}
        for u, i in ids.items():
            outcomes[u] = ops[i]["state"]
            if ops[i]["state"] == "succeeded":
                check_spawned(st, u, img_sha, isos[u])
            else:
                check(ops[i]["state"] == "failed", repr(ops[i]))
                check_gone(st, u, "spawn failed under faults")
        faults = {}
        for e in st.audit():
            if e.get("outcome", "").startswith("fault"):
                faults[e["outcome"]] = faults.get(e["outcome"], 0) + 1
        check(faults.get("fault 412", 0) >= 4 and faults.get("fault vios_busy", 0) > 0,
              "the faults did not hit: %s" % faults)
        log("spawns under faults (seed %d): %s; faults %s" % (
            seed, sorted(outcomes.values()), faults))
        ids = {}
        for u in us:
            r = st.submit(destroy_body(u))
            ids[u] = r.json["id"]
        ops = st.wait_terminal(ids.values(), 240, "destroys under faults")
        for u, i in ids.items():
            check(ops[i]["state"] == "succeeded", "destroy under faults: %r" % ops[i])
            check_gone(st, u, "destroyed under faults")
        st.set_faults({"rules": []})
        check(set(Sim(st).lpars) == base, "partitions left: %s" % (set(Sim(st).lpars) - base))
        check(not Sim(st).vdisks and not Sim(st).media and not Sim(st).maps and
              not Sim(st).files, "storage left")


def use_ssp(st):
    st.kill_powervmd(signal.SIGTERM)
    with open(os.path.join(st.dir, "powervmd-1.conf"), "a") as f:
        f.write('powervm_disk_driver = "ssp";\n')
    st.start_powervmd()


def boot_lus(st):
    """{LU name: count} of the boot LUs (linked clones) in pvmsim."""
    c = {}
    for o in st.sim_state()["objects"]:
        if o["kind"] == "LogicalUnit" and o["props"]["name"].startswith("boot_"):
            c[o["props"]["name"]] = c.get(o["props"]["name"], 0) + 1
    return c


def crash(rng, kills=24, instances=4, driver="localdisk"):
    """SIGKILL powervmd at random moments while spawns, then destroys and more spawns, run."""
    with ModeStack("ops-spawn-crash", "hmc", job_ms=600, workers=4) as st:
        img = "crash-img"
        if driver == "ssp":
            use_ssp(st)
        img_sha = st.put_image(img, os.urandom(6 * 1024 * 1024))
        base = set(Sim(st).lpars)
        first = [stacklib.new_uuid(rng) for _ in range(instances)]
        second = [stacklib.new_uuid(rng) for _ in range(instances // 2)]
        cfg = {}
        for i, u in enumerate(first + second):
            if i % 2 == 0:
                cfg[u] = st.put_iso(u, os.urandom(20000))
        spawn_ids, destroy_ids = {}, {}

        def submit(body, key):
            r = st.submit(dict(body, idempotency_key=key))
            check(r.status in (200, 202), "submit: %r" % r)
            return r.json["id"]

        # slow storage answers spread the operations over the kills
        st.set_faults({"seed": rng.randrange(1, 2**31), "rules": [
            {"method": "*", "path": "/rest/api/uom/VirtualIOServer*", "kind": "latency",
             "latency_ms": 250, "rate": 0.3},
            {"method": "*", "path": "/rest/api/web/File*", "kind": "latency",
             "latency_ms": 250, "rate": 0.3}]})
        for u in first:
            spawn_ids[u] = submit(spawn_body(u, img, config_drive=u in cfg), "s-" + u)
        # two that must fail and be undone under the kills: no ISO for their config drive,
        # and a fatal network gate timeout (everything created by then)
        doomed = [stacklib.new_uuid(rng), stacklib.new_uuid(rng)]
        vif = [{"id": "v", "address": "fa:16:3e:00:00:02", "type": "pvm_sea",
                "details": {"vlan": 20}}]
        spawn_ids[doomed[0]] = submit(spawn_body(doomed[0], img, config_drive=True),
                                      "s-" + doomed[0])
        spawn_ids[doomed[1]] = submit(spawn_body(doomed[1], img, network_info=vif,
                                                 network_plugged_timeout=2,
                                                 network_plugged_fatal=True), "s-" + doomed[1])
        t0 = time.monotonic()
        active_kills = 0
        for k in range(kills):
            time.sleep(rng.uniform(0.05, 0.7))
            active_kills += any(st.op(i)["state"] not in stacklib.TERMINAL
                                for i in list(spawn_ids.values()) + list(destroy_ids.values()))
            st.kill_powervmd()
            st.start_powervmd()
            if k == kills // 3:  # destroys of half the first ones, spawns of new ones
                for u in first[: instances // 2]:
                    destroy_ids[u] = submit(destroy_body(u), "d-" + u)
                for u in second:
                    spawn_ids[u] = submit(spawn_body(u, img, config_drive=u in cfg), "s-" + u)
        log("crash: %d kills in %.1f s, %d of them with operations under way" % (
            kills, time.monotonic() - t0, active_kills))
        ops = st.wait_terminal(list(spawn_ids.values()) + list(destroy_ids.values()), 300,
                               "operations after the kills")
        recovered = [i for i, o in ops.items() if "recovered" in o["flags"]]
        check(kills == 0 or (active_kills >= kills // 2 and recovered),
              "the kills did not hit running operations (%d active, recovered %s)" % (
                  active_kills, recovered))
        summary = {}
        for u in doomed:
            check(ops[spawn_ids[u]]["state"] == "failed", "doomed spawn: %r" % ops[spawn_ids[u]])
            check_gone(st, u, "failed spawn")
        for u in first + second:
            sp = ops[spawn_ids[u]]
            if u in destroy_ids:
                check(ops[destroy_ids[u]]["state"] == "succeeded",
                      "destroy after kills: %r" % ops[destroy_ids[u]])
                check_gone(st, u, "destroyed instance")
                summary[u[:8]] = "destroyed"
            elif sp["state"] == "succeeded":
                if driver == "ssp":
                    sm = Sim(st)
                    h = u.replace("-", "").lower()
                    check(sm.lpars[lpar_uuid(u)]["state"] == "running" and
                          len(sm.mapped(lpar_uuid(u), "boot_" + h)) == 1 and
                          (u not in cfg or len(sm.mapped(lpar_uuid(u), names(u)["media"])) == 1),
                          "ssp instance after kills: %s" % (sm.state(u),))
                else:
                    check_spawned(st, u, img_sha, cfg.get(u))
                summary[u[:8]] = "spawned"
            else:
                check(sp["state"] == "failed", "spawn after kills: %r" % sp)
                check_gone(st, u, "failed spawn")
                summary[u[:8]] = "failed and cleaned"
        # no orphan anywhere: every object of pvmsim belongs to a spawned instance
        s = Sim(st)
        live = [u for u in summary if summary[u] == "spawned"]
        live_full = [u for u in first + second if u[:8] in live]
        want_lpars = {lpar_uuid(u) for u in live_full} | base
        check(set(s.lpars) == want_lpars, "partitions %s, want %s" % (set(s.lpars), want_lpars))
        want_disks = {names(u)["vdisk"] for u in live_full}
        if driver == "ssp":
            want_lus = {"boot_" + u.replace("-", "").lower(): 1 for u in live_full}
            check(boot_lus(st) == want_lus, "boot LUs %s, want %s" % (boot_lus(st), want_lus))
            want_disks = {"boot_" + u.replace("-", "").lower() for u in live_full}
        else:
            check(set(s.vdisks) == want_disks, "disks %s, want %s" % (set(s.vdisks),
                                                                     want_disks))
        want_media = {names(u)["media"] for u in live_full if u in cfg}
        check(set(s.media) == want_media, "media %s, want %s" % (set(s.media), want_media))
        check(len(s.maps) == len(want_disks) + len(want_media) and
              all(m.get("lpar", "").upper() in want_lpars - base and not m.get("orphan")
                  for m in s.maps), "mappings: %s" % s.maps)
        check(not s.files, "web Files left: %s" % s.files)
        # effects happened once: one partition create per instance, however many kills
        counts = stacklib.audit_counts(st.audit())
        for u in first + second + doomed:
            c = counts.get(lpar_uuid(u), {})
            check(c.get("created", 0) == 1, "partition of %s created %d times" % (
                u, c.get("created", 0)))
        log("crash: outcomes %s; %d of %d operations resumed after a kill" % (
            summary, len(recovered), len(ops)))


WEB = "http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"


def rest(st, method, path, body=None, ctype=None, token=None):
    """One PowerVM REST request to pvmsim (to change things behind powervmd's back)."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlparse(st.sim_url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = {"Accept": "application/atom+xml"}
    if ctype:
        h["Content-Type"] = ctype
    if token:
        h["X-API-Session"] = token
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def logon(st):
    status, body = rest(st, "PUT", "/rest/api/web/Logon",
                        '<LogonRequest xmlns="%s" schemaVersion="V1_0"><UserID>hscroot'
                        '</UserID><Password>abc123</Password></LogonRequest>' % WEB,
                        "application/vnd.ibm.powervm.web+xml; type=LogonRequest")
    check(status == 200, "logon: %d %s" % (status, body[:200]))
    return re.search(r"<X-API-Session[^>]*>([^<]+)<", body).group(1)


def ssp(rng):
    """powervm_disk_driver = ssp: the boot disk is a linked clone of the image LU."""
    with ModeStack("ops-spawn-ssp", "hmc", job_ms=JOB_MS, workers=4) as st:
        use_ssp(st)
        img = "ssp-img-%d" % rng.randrange(1 << 30)
        u = stacklib.new_uuid(rng)
        op = run(st, spawn_body(u, img), expect="failed")
        check(op["error_code"] == "image_not_cached", repr(op["error"]))
        st.put_image(img, os.urandom(2 * 1024 * 1024 + 17))
        img_udid = st.api("GET", "/v1/images/" + img).json["udid"]
        iso = st.put_iso(u, os.urandom(8192))
        op = run(st, spawn_body(u, img, config_drive=True))
        h = u.replace("-", "").lower()
        lus = [o for o in st.sim_state()["objects"] if o["kind"] == "LogicalUnit"]
        boot = [o["props"] for o in lus if o["props"]["name"] == "boot_" + h]
        check(len(boot) == 1 and boot[0].get("cloned_from") == img_udid and
              boot[0]["capacity_gb"] >= 1, "linked clone: %s" % boot)
        s = Sim(st)
        check(s.lpars[lpar_uuid(u)]["state"] == "running" and
              len(s.mapped(lpar_uuid(u), "boot_" + h)) == 1 and
              len(s.mapped(lpar_uuid(u), names(u)["media"])) == 1 and
              s.media[names(u)["media"]]["contents"]["sha256"] == iso,
              "ssp spawn: %s" % s.maps)
        check(op["result"]["boot_disk"]["kind"] == "lu", repr(op["result"]))
        run(st, destroy_body(u))
        lus = [o["props"]["name"] for o in st.sim_state()["objects"]
               if o["kind"] == "LogicalUnit"]
        check(lus == ["image_" + img], "logical units after destroy: %s" % lus)
        check_gone(st, u)
        log("ssp: linked clone spawned and destroyed; the image LU stays")


def main():
    rng, _ = stacklib.seed_rng("ops_spawn")
    for mode in os.environ.get("PVM_OPS_MODES", "hmc novalink").split():
        scenario(mode, rng)
    ssp(rng)
    kills = int(os.environ.get("PVM_SPAWN_KILLS", "24"))
    crash(rng, kills=kills)
    crash(rng, kills=kills // 2, driver="ssp")


if __name__ == "__main__":
    stacklib.run_main("ops_spawn", main)
