#!/usr/bin/python3
"""scrub: the start-up scrub (powervm_scrub) through the real stack: powervmd (API, journal,
scrubber, libcurl client) against pvmsim over real sockets.

Orphans and look-alikes are seeded in pvmsim over its REST API (volume group and VIOS
POSTs, partition PUT and DELETE, logical unit PUT), partitions of instances through
test_steps operations. Then powervmd restarts with powervm_scrub = dry-run (nothing may
change; the findings are in the log, /metrics and GET /v1/scrub), nova's list arrives
(POST /v1/reconcile: a second pass that may judge disks and media), and powervmd restarts
with powervm_scrub = on: exactly the orphans go (mappings at start-up, disks and media once
nova's list is known), every look-alike stays: a live instance's disk and mapping, objects
not named as ours, a shared storage pool LU named boot_..., the same orphans on the OTHER
managed system's VIOS, a disk of an instance nova still knows, and the objects of an
instance whose operation waits at its gate. NovaLink mode: one smaller case.
"""
import http.client
import os
import re
import signal
import sys
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402
from stacklib import check, log, lpar_uuid, wait_until  # noqa: E402

UOM = "http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/"
WEB = "http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"
MS1 = "sim-8408-E8E-SN10678CV"
MS2 = "sim-9009-42A-SN21F64EV"
KINDS = ("mapping", "vdisk", "media")


class ScrubStack(stacklib.Stack):
    def __init__(self, name, mode, **kw):
        super().__init__(name, **kw)
        self.mode = mode
        self.token = None

    def up(self):
        out = self._stack("up", self.dir, "--job-ms", str(self.job_ms), "--workers",
                          str(self.workers), "--mode", self.mode, "--scrub", "off")
        for line in out.splitlines():
            m = re.match(r"export (\w+)='(.*)'$", line)
            if m:
                self.env[m.group(1)] = m.group(2)
        self.sock = self.env["POWERVMD_SOCKET"]
        self.sim_url = self.env["PVMSIM_URL"]
        self.note_pids()
        log("stack up (%s mode, scrub off) in %s" % (self.mode, self.dir))

    # ---- powervmd ----
    def restart_with_scrub(self, mode, paused=False):
        conf = self.env["POWERVMD_CONFIG"]
        with open(conf) as fh:
            lines = [l for l in fh if not l.startswith("powervm_scrub")]
        lines.append('powervm_scrub = "%s";\n' % mode)
        with open(conf, "w") as fh:
            fh.writelines(lines)
        self.kill_powervmd(signal.SIGTERM)
        self.start_powervmd(paused=paused)
        rep = self.scrub_report()
        check(rep["mode"] == mode and rep["passes"] == 1 and
              rep["last"]["trigger"] == "start-up", "after the restart: %s" % rep)
        return rep["last"]

    def scrub_report(self):
        r = self.api("GET", "/v1/scrub")
        check(r.status == 200, "GET /v1/scrub: %r" % r)
        return r.json

    def reconcile(self, nova):
        before = self.scrub_report()["passes"]
        r = self.api("POST", "/v1/reconcile", {"instances": nova})
        check(r.status == 200, "reconcile: %r" % r)
        rep = wait_until(lambda: (lambda j: j if j["passes"] == before + 1 and
                                  not j["running"] and not j["pending"] else None)(
            self.scrub_report()), 30, "the scrub pass after nova's list")
        check(rep["last"]["trigger"] == "reconcile" and rep["last"]["nova_list_known"],
              repr(rep["last"]))
        return rep["last"], r.json

    def run_op(self, body, want="succeeded", timeout=60):
        r = self.submit(body)
        check(r.status == 202, "submit: %r" % r)
        if want is None:
            return r.json["id"]
        op = self.wait_terminal([r.json["id"]], timeout)[r.json["id"]]
        check(op["state"] == want, "operation %s: %s" % (op["state"], op.get("error")))
        return r.json["id"]

    # ---- pvmsim over its REST API ----
    def rest(self, method, path, body=None, ctype=None, ok=(200, 204)):
        u = urllib.parse.urlparse(self.sim_url)
        h = {"Accept": "application/atom+xml"}
        if self.token:
            h["X-API-Session"] = self.token
        if ctype:
            h["Content-Type"] = ctype
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30 * stacklib.SCALE)
        try:
            conn.request(method, "/rest/api/" + path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        check(r.status in ok, "%s %s: %d %s" % (method, path, r.status, data[-600:]))
        return data

    def logon(self):
        body = ('<LogonRequest xmlns="%s" schemaVersion="V1_0"><UserID>hscroot</UserID>'
                '<Password>abc123</Password></LogonRequest>' % WEB)
        data = self.rest("PUT", "web/Logon", body,
                         "application/vnd.ibm.powervm.web+xml; type=LogonRequest")
        self.token = ET.fromstring(data).find("{%s}X-API-Session" % WEB).text

    def objs(self, kind, parent=None):
        return [o for o in self.sim_state()["objects"] if o["kind"] == kind and
                (parent is None or o["parent"].upper() == parent.upper())]

    def ms(self, name):
        return [o for o in self.objs("ManagedSystem") if o["props"]["name"] == name][0]

    def vios(self, ms):
        return self.objs("VirtualIOServer", ms["uuid"])[0]

    def vg(self, vios):
        return [o for o in self.objs("VolumeGroup", vios["uuid"])
                if o["props"]["name"] == "rootvg"][0]

    def vg_add(self, vios, disks=(), media=()):
        vg = self.vg(vios)
        p = vg["props"]
        xd = "".join("<VirtualDisk><DiskCapacity>%g</DiskCapacity><DiskLabel>%s</DiskLabel>"
                     "<DiskName>%s</DiskName></VirtualDisk>" % (
                         d["capacity_gb"], escape(d.get("label", "None")), escape(d["name"]))
                     for d in p.get("vdisks", []))
        xd += "".join("<VirtualDisk><DiskCapacity>1</DiskCapacity><DiskLabel>None</DiskLabel>"
                      "<DiskName>%s</DiskName></VirtualDisk>" % escape(n) for n in disks)
        repo = p["media_repository"]
        xm = "".join("<VirtualOpticalMedia><MediaName>%s</MediaName><MountType>%s</MountType>"
                     "<Size>%g</Size></VirtualOpticalMedia>" % (
                         escape(m["name"]), m.get("mount_type", "rw"), m.get("size_gb", 0))
                     for m in repo.get("media", []))
        xm += "".join("<VirtualOpticalMedia><MediaName>%s</MediaName><MountType>ro</MountType>"
                      "<Size>0.001</Size></VirtualOpticalMedia>" % escape(n) for n in media)
        body = ('<VolumeGroup xmlns="%s" schemaVersion="V1_0"><VirtualDisks>%s</VirtualDisks>'
                '<MediaRepositories><VirtualMediaRepository><OpticalMedia>%s</OpticalMedia>'
                '<RepositoryName>%s</RepositoryName></VirtualMediaRepository>'
                '</MediaRepositories></VolumeGroup>' % (UOM, xd, xm, escape(repo["name"])))
        self.rest("POST", "uom/VirtualIOServer/%s/VolumeGroup/%s" % (vios["uuid"], vg["uuid"]),
                  body, "application/vnd.ibm.powervm.uom+xml; type=VolumeGroup")

    @staticmethod
    def _mapping_xml(ms_uuid, lpar, kind, name, udid, sslot):
        el = {"vdisk": ("VirtualDisk", "DiskName"), "vopt": ("VirtualOpticalMedia", "MediaName"),
              "lu": ("LogicalUnit", "UnitName"), "pv": ("PhysicalVolume", "VolumeName")}
        x = ('<VirtualSCSIMapping><AssociatedLogicalPartition href="/rest/api/uom/'
             'ManagedSystem/%s/LogicalPartition/%s" rel="related"/>' % (ms_uuid, lpar))
        if sslot is not None:
            x += ("<ServerAdapter><VirtualSlotNumber>%d</VirtualSlotNumber></ServerAdapter>"
                  % sslot)
        if kind:
            e, n = el[kind]
            x += "<Storage><%s><%s>%s</%s>" % (e, n, escape(name), n)
            if udid:
                x += "<UniqueDeviceID>%s</UniqueDeviceID>" % udid
            x += "</%s></Storage>" % e
        return x + "</VirtualSCSIMapping>"

    def map_add(self, ms, vios, new):
        """new: [(partition uuid, kind or None, name, udid)]: appended to the VIOS's mappings."""
        vios = [v for v in self.objs("VirtualIOServer") if v["uuid"] == vios["uuid"]][0]
        xs = ""
        for m in vios["props"].get("scsi_mappings", []):
            st = m.get("storage") or {}
            xs += self._mapping_xml(ms["uuid"], m["lpar"], st.get("kind"), st.get("name"),
                                    st.get("udid"), m.get("server_slot"))
        for lpar, kind, name, udid in new:
            xs += self._mapping_xml(ms["uuid"], lpar, kind, name, udid, None)
        body = ('<VirtualIOServer xmlns="%s" schemaVersion="V1_0"><VirtualSCSIMappings>%s'
                '</VirtualSCSIMappings></VirtualIOServer>' % (UOM, xs))
        self.rest("POST", "uom/VirtualIOServer/%s" % vios["uuid"], body,
                  "application/vnd.ibm.powervm.uom+xml; type=VirtualIOServer")

    def lpar_create(self, ms, name, uuid):
        body = ('<LogicalPartition xmlns="%s" schemaVersion="V1_0"><Metadata><Atom><AtomID>%s'
                '</AtomID></Atom></Metadata><PartitionMemoryConfiguration><DesiredMemory>512'
                '</DesiredMemory><MaximumMemory>512</MaximumMemory><MinimumMemory>512'
                '</MinimumMemory></PartitionMemoryConfiguration><PartitionName>%s'
                '</PartitionName><PartitionProcessorConfiguration><HasDedicatedProcessors>false'
                '</HasDedicatedProcessors><SharedProcessorConfiguration><DesiredProcessingUnits>'
                '0.1</DesiredProcessingUnits><DesiredVirtualProcessors>1'
                '</DesiredVirtualProcessors><MaximumProcessingUnits>0.1'
                '</MaximumProcessingUnits><MaximumVirtualProcessors>1</MaximumVirtualProcessors>'
                '<MinimumProcessingUnits>0.1</MinimumProcessingUnits><MinimumVirtualProcessors>1'
                '</MinimumVirtualProcessors></SharedProcessorConfiguration><SharingMode>uncapped'
                '</SharingMode></PartitionProcessorConfiguration><PartitionType>AIX/Linux'
                '</PartitionType></LogicalPartition>' % (UOM, uuid, name))
        self.rest("PUT", "uom/ManagedSystem/%s/LogicalPartition" % ms["uuid"], body,
                  "application/vnd.ibm.powervm.uom+xml; type=LogicalPartition")

    def lpar_delete(self, uuid):
        self.rest("DELETE", "uom/LogicalPartition/%s" % uuid)

    def lu_create(self, ms, name):
        ssp = self.objs("SharedStoragePool", ms["uuid"])[0]
        tier = self.objs("Tier", ssp["uuid"])[0]
        body = ('<LogicalUnit xmlns="%s" schemaVersion="V1_0"><ThinDevice>true</ThinDevice>'
                '<UnitCapacity>1</UnitCapacity><LogicalUnitType>VirtualIO_Disk'
                '</LogicalUnitType><UnitName>%s</UnitName></LogicalUnit>' % (UOM, name))
        self.rest("PUT", "uom/Tier/%s/LogicalUnit" % tier["uuid"], body,
                  "application/vnd.ibm.powervm.uom+xml; type=LogicalUnit")
        lu = [o for o in self.objs("LogicalUnit") if o["props"]["name"] == name][0]
        return lu["props"]["udid"]

    # ---- what pvmsim holds ----
    def storage(self):
        """Every VIOS's disks, media and mappings, and the pools' LUs, as comparable sets."""
        out = set()
        st = self.sim_state()["objects"]
        names = {o["uuid"].upper(): o["props"].get("name") for o in st}
        for o in st:
            if o["kind"] == "VolumeGroup":
                where = "%s/%s" % (names.get(o["parent"].upper()), o["props"]["name"])
                ms = [v["parent"] for v in st if v["uuid"].upper() == o["parent"].upper()][0]
                for d in o["props"].get("vdisks", []):
                    out.add(("vdisk", names[ms.upper()] if ms else "", where, d["name"]))
                for m in (o["props"].get("media_repository") or {}).get("media", []):
                    out.add(("media", names[ms.upper()], where, m["name"]))
            elif o["kind"] == "VirtualIOServer":
                for m in o["props"].get("scsi_mappings", []):
                    s = m.get("storage") or {}
                    out.add(("mapping", names[o["parent"].upper()], o["props"]["name"],
                             "%s %s:%s" % (m["lpar"].upper(), s.get("kind"), s.get("name"))))
            elif o["kind"] == "LogicalUnit":
                out.add(("lu", "", "", o["props"]["name"]))
        return out


def hexof(u):
    return u.replace("-", "")


def metric_by_kind(st, name):
    m = st.metrics()
    return {k: m.get((name, 'kind="%s"' % k), 0) for k in KINDS}


def check_counts(rep, key, want, what):
    check(rep[key] == want, "%s: %s %s, want %s (findings %s)" % (
        what, key, rep[key], want, rep["findings"]))


def check_log(st, pattern, what):
    check(re.search(pattern, st.powervmd_log()), "log: no line for %s (/%s/)" % (what, pattern))


def test_steps(st, uuid, gate=False, want="succeeded"):
    return st.run_op({"type": "test_steps", "instance_uuid": uuid,
                      "params": {"gate": gate}}, want=want)


def scenario_hmc(rng):
    with ScrubStack("scrub-hmc", "hmc", job_ms=200, workers=4) as st:
        st.logon()
        ms1, ms2 = st.ms(MS1), st.ms(MS2)
        v1, v2 = st.vios(ms1), st.vios(ms2)
        L, D, Z, N, O = (stacklib.new_uuid(rng) for _ in range(5))
        log("instances: live %s, dead %s, in flight %s, nova-known %s, orphan %s" % (
            L, D, Z, N, O))
        b = {k: "b_" + hexof(u)[:13] for k, u in (("L", L), ("D", D), ("Z", Z), ("N", N),
                                                    ("O", O))}
        cfg = {k: "cfg_%s.iso" % hexof(u)[:29] for k, u in (("L", L), ("Z", Z), ("O", O))}
        boot_x = "boot_" + hexof(stacklib.new_uuid(rng))

        # partitions: L lives, D's and Z's are deleted behind powervmd's back after mapping
        test_steps(st, L)
        test_steps(st, D)
        zop = test_steps(st, Z, gate=True, want=None)
        wait_until(lambda: st.op(zop)["state"] == "waiting", 30, "test_steps at its gate")
        st.vg_add(v1, disks=[b["L"], b["D"], b["Z"], b["N"], b["O"], "datadisk1",
                             "b_zzzzzzzzzzzzz"],
                  media=[cfg["L"], cfg["Z"], cfg["O"], "notours.iso"])
        lu_udid = st.lu_create(ms1, boot_x)
        st.map_add(ms1, v1, [(lpar_uuid(L), "vdisk", b["L"], None),
                             (lpar_uuid(L), None, None, None),
                             (lpar_uuid(D), "vdisk", b["D"], None),
                             (lpar_uuid(D), "lu", boot_x, lu_udid),
                             (lpar_uuid(Z), "vdisk", b["Z"], None),
                             (lpar_uuid(Z), "vopt", cfg["Z"], None)])
        st.lpar_delete(lpar_uuid(D))
        st.lpar_delete(lpar_uuid(Z))
        # the same orphans on the other managed system's VIOS (also named vios1)
        p2, p3 = stacklib.new_uuid(rng).upper(), stacklib.new_uuid(rng).upper()
        st.lpar_create(ms2, "other-ms-1", p2)
        st.lpar_create(ms2, "other-ms-2", p3)
        st.vg_add(v2, disks=[b["D"], b["O"]], media=[cfg["O"]])
        st.map_add(ms2, v2, [(p2, "vdisk", b["D"], None), (p3, None, None, None)])
        st.lpar_delete(p2)
        before = st.storage()
        log("seeded: %d objects" % len(before))

        orphan_maps = {
            ("mapping", MS1, "vios1", "%s None:None" % lpar_uuid(L)),
            ("mapping", MS1, "vios1", "%s vdisk:%s" % (lpar_uuid(D), b["D"])),
            ("mapping", MS1, "vios1", "%s lu:%s" % (lpar_uuid(D), boot_x)),
        }
        orphan_objs = {("vdisk", MS1, "vios1/rootvg", b["D"]),
                       ("vdisk", MS1, "vios1/rootvg", b["O"]),
                       ("media", MS1, "vios1/rootvg", cfg["O"])}
        check(orphan_maps | orphan_objs <= before, "seeding: %s" % sorted(
            (orphan_maps | orphan_objs) - before))

        # ---- dry-run: findings, nothing removed ----
        rep = st.restart_with_scrub("dry-run")
        check_counts(rep, "found", {"mapping": 3, "vdisk": 3, "media": 1}, "dry-run start-up")
        check_counts(rep, "in_flight", {"mapping": 2, "vdisk": 1, "media": 1}, "dry-run")
        check_counts(rep, "removed", {"mapping": 0, "vdisk": 0, "media": 0}, "dry-run")
        check(rep["deferred"] == 4 and rep["errors"] == 0 and rep["vios"] == 1, repr(rep))
        check(st.storage() == before, "dry-run changed pvmsim: gone %s, new %s" % (
            sorted(before - st.storage()), sorted(st.storage() - before)))
        fnames = {(f["kind"], f["name"], f["verdict"]) for f in rep["findings"]}
        for want in (("vdisk", b["D"], "deferred"), ("vdisk", b["N"], "deferred"),
                     ("vdisk", b["O"], "deferred"), ("media", cfg["O"], "deferred"),
                     ("vdisk", b["Z"], "in_flight"), ("media", cfg["Z"], "in_flight")):
            check(want in fnames, "dry-run finding %s missing: %s" % (want, fnames))
        check(not any(f["name"] in (b["L"], cfg["L"], "datadisk1", "b_zzzzzzzzzzzzz",
                                   "notours.iso", boot_x) for f in rep["findings"]),
              "a look-alike was reported: %s" % rep["findings"])
        check_log(st, r"scrub: would remove vSCSI mapping vhost\d+ on vios1 \(partition %s, "
                  r"storage virtual disk %s\)" % (lpar_uuid(D), b["D"]), "the dead mapping")
        check_log(st, r"scrub: would remove virtual disk %s of instance prefix %s on "
                  r"vios1/rootvg" % (b["O"], hexof(O)[:13]), "the orphan disk")
        check_log(st, r"scrub: keeping virtual disk %s .*operation in flight" % b["Z"],
                  "the disk in flight")
        check(metric_by_kind(st, "powervmd_scrub_found_total") ==
              {"mapping": 3, "vdisk": 3, "media": 1}, "found metric")
        check(sum(metric_by_kind(st, "powervmd_scrub_removed_total").values()) == 0,
              "removed metric in dry-run")
        m = st.metrics()
        check(m.get(("powervmd_scrub_runs_total", "")) == 1 and
              m.get(("powervmd_scrub_last_run_timestamp_seconds", ""), 0) > 0, "runs metric")

        # nova's list: N known, Z in flight (spawning), L known; D and O unknown
        nova = [{"uuid": L, "vm_state": "active", "task_state": None},
                {"uuid": N, "vm_state": "error", "task_state": None},
                {"uuid": Z, "vm_state": "building", "task_state": "spawning"}]
        rep, rec = st.reconcile(nova)
        check(zop in rec["kept"] and not rec["cancelled"], "reconcile: %s" % rec)
        check_counts(rep, "found", {"mapping": 3, "vdisk": 2, "media": 1}, "dry-run, nova")
        check(rep["deferred"] == 0 and rep["nova_instances"] == 3, repr(rep))
        check(st.storage() == before, "dry-run after nova's list changed pvmsim")
        check({f["name"] for f in rep["findings"] if f["action"] == "would remove"} ==
              {b["D"], b["O"], cfg["O"]} | {f["name"] for f in rep["findings"]
                                            if f["kind"] == "mapping" and
                                            f["verdict"] == "orphan"}, repr(rep["findings"]))
        check(st.op(zop)["state"] == "waiting", "the gated operation moved")

        # ---- on: mappings at start-up, disks and media after nova's list ----
        rep = st.restart_with_scrub("on")
        check_counts(rep, "removed", {"mapping": 3, "vdisk": 0, "media": 0}, "on, start-up")
        check(rep["deferred"] == 4 and rep["errors"] == 0, repr(rep))
        after = st.storage()
        check(before - after == orphan_maps and not after - before,
              "start-up removals: gone %s, new %s" % (sorted(before - after),
                                                       sorted(after - before)))
        check_log(st, r"scrub: removed vSCSI mapping vhost\d+ on vios1 \(partition %s, "
                  r"storage logical unit %s\)" % (lpar_uuid(D), boot_x), "the LU mapping")
        check(metric_by_kind(st, "powervmd_scrub_removed_total") ==
              {"mapping": 3, "vdisk": 0, "media": 0}, "removed metric at start-up")

        rep, _ = st.reconcile(nova)
        check_counts(rep, "removed", {"mapping": 0, "vdisk": 2, "media": 1}, "on, nova")
        check(rep["errors"] == 0, repr(rep))
        after = st.storage()
        check(before - after == orphan_maps | orphan_objs and not after - before,
              "removals: gone %s, new %s" % (sorted(before - after), sorted(after - before)))
        check(("lu", "", "", boot_x) in after, "the SSP LU was deleted")
        check_log(st, r"scrub: removed media %s of instance prefix %s on vios1/rootvg" % (
            re.escape(cfg["O"]), hexof(O)[:29]), "the media removal")
        check(metric_by_kind(st, "powervmd_scrub_removed_total") ==
              {"mapping": 3, "vdisk": 2, "media": 1}, "removed metric")
        # idempotent: another pass finds nothing but what is in flight
        rep, _ = st.reconcile(nova)
        check_counts(rep, "found", {"mapping": 0, "vdisk": 0, "media": 0}, "second pass")
        check_counts(rep, "in_flight", {"mapping": 2, "vdisk": 1, "media": 1}, "second pass")
        check(st.storage() == after, "a second pass changed pvmsim")
        check(st.op(zop)["state"] == "waiting", "the gated operation moved")
        # once the operation is gone, its objects are orphans too
        r = st.api("POST", "/v1/operations/%d/cancel" % zop)
        check(r.status == 200, "cancel: %r" % r)
        st.wait_terminal([zop], 60)
        rep, _ = st.reconcile([n for n in nova if n["uuid"] != Z])
        check_counts(rep, "removed", {"mapping": 2, "vdisk": 1, "media": 1}, "after the cancel")
        gone = before - st.storage()
        check({x[3] for x in gone if x[0] != "mapping"} == {b["D"], b["O"], cfg["O"], b["Z"],
                                                             cfg["Z"]}, "gone: %s" % gone)
        check(not any(x[1] == MS2 for x in gone), "the other managed system was touched")


def scenario_novalink(rng):
    with ScrubStack("scrub-nl", "novalink", job_ms=200, workers=2) as st:
        st.logon()
        ms = st.ms(MS1)
        v = st.vios(ms)
        L, D, O = (stacklib.new_uuid(rng) for _ in range(3))
        bl, bd, co = "b_" + hexof(L)[:13], "b_" + hexof(D)[:13], "cfg_%s.iso" % hexof(O)[:29]
        test_steps(st, L)
        test_steps(st, D)
        st.vg_add(v, disks=[bl, bd], media=[co])
        st.map_add(ms, v, [(lpar_uuid(L), "vdisk", bl, None), (lpar_uuid(D), "vdisk", bd, None),
                           (lpar_uuid(D), None, None, None)])
        st.lpar_delete(lpar_uuid(D))
        before = st.storage()
        # paused: the start-up pass of mode on only reports
        rep = st.restart_with_scrub("on", paused=True)
        check(rep["held"] is True, "not held while paused: %s" % rep)
        check_counts(rep, "found", {"mapping": 2, "vdisk": 1, "media": 1}, "novalink paused")
        check_counts(rep, "removed", {"mapping": 0, "vdisk": 0, "media": 0}, "novalink paused")
        check(st.storage() == before, "a paused powervmd's scrub changed pvmsim")
        check_log(st, r"scrub: powervmd is paused: this pass only reports", "the hold")
        check(st.api("POST", "/v1/resume").status == 200, "resume")
        # a read that fails ends the pass with nothing changed, counted, never fatal
        st.set_faults({"rules": [{"method": "GET", "kind": "http_500",
                                  "path": "/rest/api/uom/VirtualIOServer/*/VolumeGroup"}]})
        rep, _ = st.reconcile([{"uuid": L, "vm_state": "active", "task_state": None}])
        st.set_faults({"rules": []})
        check(rep["errors"] == 1 and "volume groups" in rep["error_messages"][0] and
              sum(rep["removed"].values()) == 0, "failed read: %s" % rep)
        check(st.storage() == before and st.healthy(), "after a failed scrub read")
        check(st.metrics().get(("powervmd_scrub_errors_total", "")) == 1, "errors metric")
        check_log(st, r"error scrub: reading the volume groups of vios1", "the failed read")
        rep, _ = st.reconcile([{"uuid": L, "vm_state": "active", "task_state": None}])
        check(rep["held"] is False, repr(rep))
        check_counts(rep, "removed", {"mapping": 2, "vdisk": 1, "media": 1}, "novalink nova")
        gone = before - st.storage()
        check({x[3] for x in gone if x[0] != "mapping"} == {bd, co} and
              len([x for x in gone if x[0] == "mapping"]) == 2 and
              not st.storage() - before, "novalink: gone %s" % sorted(gone))
        check(("vdisk", MS1, "vios1/rootvg", bl) in st.storage(), "the live disk went")


def main():
    rng, _ = stacklib.seed_rng("scrub")
    modes = os.environ.get("PVM_SCRUB_MODES", "hmc novalink").split()
    if "hmc" in modes:
        scenario_hmc(rng)
    if "novalink" in modes:
        scenario_novalink(rng)


if __name__ == "__main__":
    stacklib.run_main("scrub", main)
