#!/usr/bin/python3
"""images: the image cache and config-drive endpoints (PUT/GET/DELETE /v1/images/{id},
/v1/config-drives/{uuid}) through the real stack, with both disk drivers.

localdisk: uploads with each digest algorithm (one chunked), a wrong digest and bad
headers (400 naming the header, nothing kept), a re-PUT (200, nothing rewritten), another
digest for a cached id (409), a concurrent PUT of one id (409), a large image streamed with
bounded memory, list and delete; config drives and their size limit.

ssp (HMC mode, two powervmd: one per managed system, sharing pvmsim's pool ssp1): the
bytes that land in the image LU (pvmsim's /sim/state: contents sha256 and size), a wrong
digest (no LU), a re-PUT (no second upload in pvmsim's audit), each algorithm, the two
daemons uploading one image at once (one image LU, no marker, both PUTs succeed, one
upload), a stale marker of a dead uploader (made directly in pvmsim) removed after
powervm_image_marker_timeout_s, 5xx/412 storms on the LU and File paths, a SIGKILL of
powervmd mid-upload (the operation resumes; one complete image, no marker), and DELETE
(409 while a linked clone uses the image).
"""
import hashlib
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402
from stacklib import check, log, wait_until  # noqa: E402

MARKER_TIMEOUT_S = 8
MIB = 1024 * 1024


def blob(rng, n):
    return rng.getrandbits(8 * n).to_bytes(n, "little")


def files_in(d):
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------- localdisk ----

def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_localdisk(rng):
    with stacklib.Stack("images-local", workers=2) as st:
        imgdir = os.path.join(st.dir, "state-1", "images")
        datas = {}
        for i, algo in enumerate(("md5", "sha256", "sha512")):
            iid = "img-%s" % algo
            data = blob(rng, rng.randrange(1, 3 * MIB))
            r = st.put_image(iid, data, algo, chunked=(i == 1))
            check(r.status == 201, "PUT %s: %r" % (iid, r))
            j = r.json
            check(j["sha256"] == hashlib.sha256(data).hexdigest() and j["size"] == len(data)
                  and j["os_hash_algo"] == algo and j["state"] == "ready"
                  and j["driver"] == "localdisk", "metadata of %s: %r" % (iid, j))
            with open(os.path.join(imgdir, iid + ".raw"), "rb") as f:
                check(f.read() == data, "%s: the cached file differs from the upload" % iid)
            g = st.api("GET", "/v1/images/" + iid)
            check(g.status == 200 and g.json["sha256"] == j["sha256"], "GET %s: %r" % (iid, g))
            datas[iid] = data
        log("localdisk: three images uploaded (md5, sha256 chunked, sha512)")

        # wrong digest, bad headers, bad id: 400 naming the field, nothing kept
        data = blob(rng, 300000)
        cases = [
            ("img-bad", {"os_hash_algo": "sha256", "os_hash_value": "0" * 64},
             "os_hash_value", "digest_mismatch"),
            ("img-bad", {"os_hash_algo": "crc32", "os_hash_value": "00"}, "os_hash_algo",
             "invalid"),
            ("img-bad", {"os_hash_algo": "md5"}, "os_hash_value", "invalid"),
            ("img-bad", {"os_hash_value": "ab" * 16}, "os_hash_algo", "invalid"),
            ("img-bad", {"os_hash_algo": "md5", "os_hash_value": "xyz"}, "os_hash_value",
             "invalid"),
            (".hidden", {}, "image_id", "invalid"),
        ]
        for iid, h, field, code in cases:
            r = st.put_stream("/v1/images/" + iid, stacklib.chunks_of(data), len(data), h)
            check(r.status == 400 and r.error().get("field") == field
                  and r.error().get("code") == code, "PUT %s %s: %r" % (iid, h, r))
        check(st.api("GET", "/v1/images/img-bad").status == 404, "img-bad was kept")
        check(not [f for f in files_in(imgdir) if "bad" in f or ".part-" in f],
              "files left behind: %s" % files_in(imgdir))
        # without headers: accepted, the digest only recorded
        r = st.put_image("img-nohash", data)
        check(r.status == 201 and r.json["os_hash_algo"] is None
              and r.json["sha256"] == hashlib.sha256(data).hexdigest(), "no headers: %r" % r)
        log("localdisk: bad digests and headers refused naming the field; none accepted")

        # re-PUT: 200, the file untouched; another digest for the id: 409
        before = os.stat(os.path.join(imgdir, "img-md5.raw")).st_mtime_ns
        r = st.put_image("img-md5", datas["img-md5"], "md5")
        check(r.status == 200 and r.json.get("existing") is True, "re-PUT: %r" % r)
        check(os.stat(os.path.join(imgdir, "img-md5.raw")).st_mtime_ns == before,
              "re-PUT rewrote the cached file")
        r = st.put_image("img-md5", data, "md5")
        check(r.status == 409, "PUT of other bytes for a cached id: %r" % r)

        # a concurrent PUT of one id: 409 while the first streams; the first completes
        slow = blob(rng, 2 * MIB)
        gate = threading.Event()
        res = {}

        def pieces():
            yield slow[:MIB]
            gate.wait(30 * stacklib.SCALE)
            yield slow[MIB:]

        def first():
            res["r"] = st.put_stream("/v1/images/img-conc", pieces(), len(slow),
                                     {"os_hash_algo": "sha256",
                                      "os_hash_value": hashlib.sha256(slow).hexdigest()})
        t = threading.Thread(target=first)
        t.start()
        try:
            wait_until(lambda: any(".part-" in f for f in files_in(imgdir)), 10,
                       "the first upload to start")
            r2 = st.put_image("img-conc", slow, "sha256")
            check(r2.status == 409, "concurrent PUT: %r" % r2)
        finally:
            gate.set()
            t.join(60 * stacklib.SCALE)
        check(res.get("r") is not None and res["r"].status == 201, "first PUT: %r" % res)
        log("localdisk: re-PUT 200 without rewriting, other digest 409, concurrent PUT 409")

        # a large image streams with bounded memory
        pid = st.powervmd_pid()
        hwm0 = vm_hwm_kb(pid)
        big_n = 96 * MIB
        piece = blob(rng, MIB)
        hsh = hashlib.sha256()
        for _ in range(96):
            hsh.update(piece)
        r = st.put_stream("/v1/images/img-big", (piece for _ in range(96)), big_n,
                          {"os_hash_algo": "sha256", "os_hash_value": hsh.hexdigest()},
                          timeout=120)
        check(r.status == 201 and r.json["size"] == big_n, "big PUT: %r" % r)
        grew = vm_hwm_kb(pid) - hwm0
        log("localdisk: 96 MiB streamed; powervmd's peak RSS grew by %d KiB" % grew)
        check(grew < 24 * 1024, "peak RSS grew by %d KiB for a 96 MiB upload" % grew)

        # list and delete
        r = st.api("GET", "/v1/images")
        ids = sorted(i["id"] for i in r.json["images"])
        check(ids == sorted(["img-md5", "img-sha256", "img-sha512", "img-nohash",
                             "img-conc", "img-big"]), "list: %s" % ids)
        r = st.api("DELETE", "/v1/images/img-big")
        check(r.status == 200, "DELETE: %r" % r)
        check(st.api("GET", "/v1/images/img-big").status == 404, "deleted image still shown")
        check(not [f for f in files_in(imgdir) if f.startswith("img-big")],
              "deleted image files left: %s" % files_in(imgdir))
        check(st.api("DELETE", "/v1/images/img-big").status == 404, "second DELETE")

        # config drives
        uuid = stacklib.new_uuid(rng)
        iso = blob(rng, MIB + 17)
        url = "/v1/config-drives/" + uuid
        r = st.put_stream(url, stacklib.chunks_of(iso), len(iso))
        check(r.status == 201 and r.json["size"] == len(iso)
              and r.json["sha256"] == hashlib.sha256(iso).hexdigest(), "cdrive PUT: %r" % r)
        path = os.path.join(st.dir, "state-1", "config-drives", uuid + ".iso")
        with open(path, "rb") as f:
            check(f.read() == iso, "config drive bytes differ")
        r = st.api("GET", url)
        check(r.status == 200 and r.json["size"] == len(iso), "cdrive GET: %r" % r)
        r = st.api("DELETE", url)
        check(r.status == 200 and not os.path.exists(path), "cdrive DELETE: %r" % r)
        check(st.api("GET", url).status == 404, "cdrive GET after DELETE")
        limit = 64 * MIB
        r = st.put_stream(url, iter([b"x" * 1024]), limit + 1)  # refused before the body
        check(r.status == 413, "cdrive Content-Length over the limit: %r" % r)
        over = b"\0" * MIB
        r = st.put_stream(url, (over for _ in range(65)), None, timeout=120)  # chunked
        check(r.status == 413 and r.error().get("code") == "too_large",
              "cdrive chunked over the limit: %r" % r)
        check(not os.path.exists(path) and not [
            f for f in files_in(os.path.dirname(path)) if ".part-" in f],
            "an over-limit config drive left files: %s" % files_in(os.path.dirname(path)))
        r = st.put_stream(url, iter([b"y" * 100]), 100)
        check(r.status == 201, "cdrive PUT after refusals: %r" % r)
        check(st.put_stream("/v1/config-drives/not-a-uuid", iter([b"x"]), 1).status == 404,
              "cdrive with a bad uuid")
        log("localdisk: config drive PUT/GET/DELETE; 64 MiB limit (413) both ways")


# ---------------------------------------------------------------- ssp ----

class Rest:
    """A PowerVM REST session on pvmsim (for what the test makes behind powervmd's back)."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        body = ('<LogonRequest xmlns="http://www.ibm.com/xmlns/systems/power/firmware/web/'
                'mc/2012_10/" schemaVersion="V1_0"><UserID>hscroot</UserID>'
                '<Password>abc123</Password></LogonRequest>')
        st, txt = self.req("PUT", "/rest/api/web/Logon", body,
                           "application/vnd.ibm.powervm.web+xml; type=LogonRequest", False)
        check(st == 200, "logon to pvmsim: %d %s" % (st, txt[:300]))
        self.token = re.search(r"<X-API-Session[^>]*>([^<]+)<", txt).group(1)

    def req(self, method, path, body=None, ctype=None, auth=True):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30 * stacklib.SCALE)
        try:
            h = {"Accept": "application/atom+xml"}
            if ctype:
                h["Content-Type"] = ctype
            if auth:
                h["X-API-Session"] = self.token
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()

    def create_lu(self, tier, name, gb, cloned_from=None, lu_type="VirtualIO_Disk"):
        ns = "http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/"
        body = ('<LogicalUnit:LogicalUnit xmlns:LogicalUnit="%s" xmlns="%s" '
                'schemaVersion="V1_0"><Metadata><Atom/></Metadata>'
                '<ThinDevice>true</ThinDevice><UnitCapacity>%g</UnitCapacity>'
                '<LogicalUnitType>%s</LogicalUnitType>%s<UnitName>%s</UnitName>'
                '</LogicalUnit:LogicalUnit>' % (
                    ns, ns, gb, lu_type, "<ClonedFrom>%s</ClonedFrom>" % cloned_from
                    if cloned_from else "", name))
        st, txt = self.req("PUT", "/rest/api/uom/Tier/%s/LogicalUnit" % tier, body,
                           "application/vnd.ibm.powervm.uom+xml; type=LogicalUnit")
        check(st == 200, "creating LU %s in pvmsim: %d %s" % (name, st, txt[:300]))


def lus(st):
    return [o for o in st.sim_state()["objects"] if o["kind"] == "LogicalUnit"]


def image_lus(st, iid):
    return [o for o in lus(st) if o["props"]["name"] == "image_" + iid]


def markers(st, iid=None):
    return [o for o in lus(st) if re.match(r"^part[0-9A-F]{8}image_" + (
        re.escape(iid) + "$" if iid else ""), o["props"]["name"])]


def uploads_to(st, udid):
    return [e for e in st.audit() if 200 <= e.get("status", 0) < 300
            and re.match(r"uploaded \d+ bytes sha256 \w+ to %s$" % re.escape(udid),
                         e.get("outcome", ""))]


def check_complete(st, iid, data, what):
    """One image LU with the bytes of data, no marker left for it, one upload into it."""
    il = image_lus(st, iid)
    check(len(il) == 1, "%s: %d image LUs %s" % (what, len(il), [o["props"] for o in il]))
    p = il[0]["props"]
    c = p.get("contents") or {}
    check(c.get("sha256") == hashlib.sha256(data).hexdigest() and c.get("size") == len(data),
          "%s: LU contents %r, want %d bytes %s" % (what, c, len(data),
                                                    hashlib.sha256(data).hexdigest()))
    check(p["type"] == "VirtualIO_Image", "%s: LU type %s" % (what, p["type"]))
    check(not markers(st, iid), "%s: markers left %s" % (what, [
        o["props"]["name"] for o in markers(st, iid)]))
    ups = uploads_to(st, p["udid"])
    check(len(ups) == 1, "%s: %d uploads into the image LU" % (what, len(ups)))
    return p


def test_ssp(rng):
    conf = ['powervm_disk_driver = "ssp";',
            'powervm_image_marker_timeout_s = %d;' % MARKER_TIMEOUT_S]
    with stacklib.Stack("images-ssp", workers=2, daemons=2, conf=conf) as st:
        spool = os.path.join(st.dir, "state-1", "images")

        # upload, bytes checked in pvmsim; re-PUT without a second upload
        data = blob(rng, rng.randrange(MIB, 3 * MIB))
        r = st.put_image("img-a", data, "sha256", wait=60)
        check(r.status == 201 and r.json["state"] == "ready" and r.json["driver"] == "ssp"
              and r.json.get("udid"), "ssp PUT: %r" % r)
        p = check_complete(st, "img-a", data, "img-a")
        check(p["udid"] == r.json["udid"], "the metadata's UDID is not the LU's")
        check(p["capacity_gb"] == 1.0, "capacity %r" % p["capacity_gb"])
        check(files_in(spool) == ["img-a.json"], "spool left: %s" % files_in(spool))
        r = st.put_image("img-a", data, "sha256", wait=60)
        check(r.status == 200 and r.json.get("existing"), "ssp re-PUT: %r" % r)
        check_complete(st, "img-a", data, "img-a after re-PUT")
        log("ssp: upload landed (contents checked), re-PUT 200 with no second upload")

        # wrong digest: 400, no LU, no spool
        r = st.put_image("img-w", data, "sha512", value="ab" * 64, wait=60)
        check(r.status == 400 and r.error().get("field") == "os_hash_value", "wrong: %r" % r)
        check(not image_lus(st, "img-w") and not markers(st, "img-w"), "LU for a bad upload")
        check(not [f for f in files_in(spool) if f.startswith("img-w")], "spool of img-w")

        for algo in ("md5", "sha512"):
            d = blob(rng, rng.randrange(100000, MIB))
            r = st.put_image("img-" + algo, d, algo, wait=60)
            check(r.status == 201, "ssp PUT %s: %r" % (algo, r))
            check_complete(st, "img-" + algo, d, "img-" + algo)
        log("ssp: wrong digest refused with no LU; md5 and sha512 uploads complete")

        # two daemons (two managed systems, one pool) upload one image at once
        data2 = blob(rng, 4 * MIB)
        res = {}

        def put(n):
            res[n] = st.put_image("img-two", data2, "sha256", wait=90, n=n)
        ts = [threading.Thread(target=put, args=(n,)) for n in (1, 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120 * stacklib.SCALE)
        for n in (1, 2):
            check(res.get(n) is not None and res[n].status == 201,
                  "daemon %d PUT: %r" % (n, res.get(n)))
        p = check_complete(st, "img-two", data2, "two daemons")
        check(res[1].json["udid"] == res[2].json["udid"] == p["udid"],
              "the daemons disagree on the image: %s %s" % (res[1].json, res[2].json))
        log("ssp: two daemons at once: both 201, one image LU, one upload, no marker")

        # a stale marker of a dead uploader is removed after the timeout
        tier = [o["uuid"] for o in st.sim_state()["objects"] if o["kind"] == "Tier"][0]
        rest = Rest(st.sim_url)
        # a dead uploader left its marker and its unfinished image LU (no contents)
        rest.create_lu(tier, "partDEADBEEFimage_img-stale", 0.001)
        rest.create_lu(tier, "image_img-stale", 1, lu_type="VirtualIO_Image")
        data3 = blob(rng, 500000)
        t0 = time.monotonic()
        r = st.put_image("img-stale", data3, "sha256", wait=MARKER_TIMEOUT_S * 6)
        took = time.monotonic() - t0
        check(r.status == 201, "PUT behind a stale marker: %r" % r)
        check(took >= MARKER_TIMEOUT_S - 1, "the stale marker went after %.1f s only" % took)
        check_complete(st, "img-stale", data3, "stale marker")
        m = st.metrics()
        check(stacklib.metric_sum(m, "powervmd_image_stale_markers_removed_total") == 1,
              "stale marker metric: %r" % [(k, v) for k, v in m.items() if "stale" in k[0]])
        check("partDEADBEEFimage_img-stale" in st.powervmd_log(), "stale marker not logged")
        log("ssp: a dead uploader's marker was removed after %.1f s" % took)

        # storms of 5xx and 412 on the LU and File paths: still one complete image
        st.set_faults({"seed": rng.randrange(1, 2**31), "rules": [
            {"path": "/rest/api/uom/Tier/*/LogicalUnit*", "kind": "http_503", "rate": 0.3},
            {"method": "DELETE", "path": "/rest/api/uom/Tier/*/LogicalUnit/*", "kind": "412",
             "first": 3},
            {"path": "/rest/api/web/File*", "kind": "http_500", "rate": 0.3},
            {"method": "DELETE", "path": "/rest/api/web/File/*", "kind": "412", "first": 3},
        ]})
        data4 = blob(rng, 2 * MIB)
        r = st.put_image("img-faults", data4, "sha256", wait=150)
        st.set_faults({"rules": []})
        check(r.status in (201, 202), "PUT under faults: %r" % r)
        if r.status == 202:
            st.wait_terminal([r.json["operation"]], 120, "cache_image under faults")
        check_complete(st, "img-faults", data4, "faults")
        g = st.api("GET", "/v1/images/img-faults")
        check(g.json["state"] == "ready", "img-faults: %r" % g)
        faulted = [e for e in st.audit() if "fault" in e.get("outcome", "")]
        log("ssp: %d injected faults; one complete image" % len(faulted))

        # SIGKILL of powervmd mid-upload: resumed after restart, one complete image
        st.set_faults({"rules": [{"method": "PUT", "path": "/rest/api/web/File/contents/*",
                                  "kind": "latency", "latency_ms": 3000}]})
        data5 = blob(rng, 3 * MIB)
        res = {}

        def put5():
            try:
                res["r"] = st.put_image("img-kill", data5, "sha256", wait=60)
            except (OSError, http.client.HTTPException) as e:
                res["e"] = e
        t = threading.Thread(target=put5)
        t.start()
        wait_until(lambda: any("created file image_img-kill" in e.get("outcome", "")
                               for e in st.audit()), 30, "the upload File to be created")
        # the contents PUT follows at once (and pvmsim holds its answer 3 s): kill now
        st.kill_powervmd(signal.SIGKILL)
        t.join(30 * stacklib.SCALE)
        check("e" in res or (res.get("r") and res["r"].status >= 500),
              "the PUT survived the kill: %r" % res)
        st.set_faults({"rules": []})
        st.start_powervmd()
        wait_until(lambda: st.api("GET", "/v1/images/img-kill").json.get("state") == "ready",
                   90, "img-kill to be ready after the restart")
        il = image_lus(st, "img-kill")
        check(len(il) == 1 and not markers(st, "img-kill"), "after kill: %s" % [
            o["props"]["name"] for o in lus(st) if "img-kill" in o["props"]["name"]])
        c = il[0]["props"].get("contents") or {}
        check(c.get("sha256") == hashlib.sha256(data5).hexdigest(), "img-kill contents %r" % c)
        check("resumed after a restart" in st.powervmd_log(), "no resume logged")
        check(not [f for f in files_in(spool) if f.startswith("img-kill.raw")],
              "spool left after the resumed upload: %s" % files_in(spool))
        log("ssp: SIGKILL mid-upload: resumed, one complete image, no marker")

        # DELETE: refused while a linked clone uses the image, then done
        udid = image_lus(st, "img-md5")[0]["props"]["udid"]
        rest.create_lu(tier, "boot_clone_of_md5", 1, cloned_from=udid)
        r = st.api("DELETE", "/v1/images/img-md5?wait=60", timeout=90)
        check(r.status == 409 and r.error().get("code") == "in_use", "DELETE in use: %r" % r)
        check(image_lus(st, "img-md5"), "the used image LU was deleted")
        r = st.api("DELETE", "/v1/images/img-sha512?wait=60", timeout=90)
        check(r.status == 200 and r.json.get("deleted_lus") == 1, "DELETE: %r" % r)
        check(not image_lus(st, "img-sha512"), "LU still there after DELETE")
        check(st.api("GET", "/v1/images/img-sha512").status == 404, "metadata after DELETE")
        r = st.api("DELETE", "/v1/images/img-never?wait=60", timeout=90)
        check(r.status == 404, "DELETE of an image never cached: %r" % r)
        log("ssp: DELETE 409 while a linked clone exists; 200 otherwise")

        r = st.submit({"type": "cache_image", "params": {"image_id": "x"}})
        check(r.status == 400 and r.error().get("field") == "type",
              "internal type submitted by a caller: %r" % r)


def main():
    rng, _seed = stacklib.seed_rng("images")
    test_localdisk(rng)
    test_ssp(rng)


if __name__ == "__main__":
    stacklib.run_main("images", main)
