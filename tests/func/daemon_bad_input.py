#!/usr/bin/python3
"""Bad input (issue 5, Proofs): malformed JSON, wrong types, unknown operation types,
oversized bodies (with Content-Length and chunked), a wrong Content-Type, wrong methods and
paths, bad query arguments, a request trickling in byte by byte, a stalled request cut at the
connection timeout, a peer whose uid is not allowed, a conflicting idempotency key: each gets
its clear error (status, JSON error code, the field of every 400) and the daemon keeps
serving everyone else: a good client submits and reads concurrently all along, and its
operations succeed.

Environment: PVM_TEST_SEED, PVM_TEST_SCALE.
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import (SCALE, Stack, TestFailure, check, log, new_uuid, run_main,  # noqa: E402
                      seed_rng, unix_request, wait_until)


def raw_request(path, data, timeout=10.0):
    """Sends data on a new connection and returns (status, json or None, raw text)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SCALE)
    try:
        s.connect(path)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (and closed) before the body was read: read the answer
        try:
            return read_response(s)
        except ConnectionResetError:
            return 0, None, "connection reset"
    finally:
        s.close()


def read_response(s):
    buf = b""
    for _ in range(10000):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep:
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if cl and len(body) >= int(cl[0].split(b":")[1]):
                break
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    try:
        j = json.loads(body)
    except ValueError:
        j = None
    return status, j, buf.decode(errors="replace")


class GoodClient(threading.Thread):
    """Submits valid operations and reads /healthz while the bad clients run."""

    def __init__(self, st, rng, max_ops=12, max_s=120):
        super().__init__(daemon=True)
        self.st, self.rng, self.max_ops, self.max_s = st, rng, max_ops, max_s
        self.ids, self.errors, self.latencies = [], [], []
        self.stop = threading.Event()

    def run(self):
        end = time.monotonic() + self.max_s * SCALE
        for i in range(100000):
            if self.stop.is_set() or time.monotonic() > end:
                break
            t0 = time.monotonic()
            try:
                if len(self.ids) < self.max_ops and i % 5 == 0:
                    r = self.st.submit({"type": "test_steps", "instance_uuid": new_uuid(self.rng),
                                        "idempotency_key": "good-%d" % i, "params": {}})
                    if r.status != 202:
                        self.errors.append("submit: %r" % r)
                    else:
                        self.ids.append(r.json["id"])
                else:
                    r = self.st.api("GET", "/healthz", timeout=5)
                    if r.status != 200:
                        self.errors.append("healthz: %r" % r)
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.errors.append("%s: %r" % (type(e).__name__, e))
            self.latencies.append(time.monotonic() - t0)
            self.stop.wait(0.02)


def test():
    rng, seed = seed_rng("daemon_bad_input")
    with Stack("badinput", job_ms=200, workers=2) as st:
        sock = st.sock
        good = GoodClient(st, rng)
        good.start()
        # A stalled request (half a header) started first: the server must cut it.
        stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stalled.connect(sock)
        stalled.sendall(b"POST /v1/operations HTTP/1.1\r\nHost: x\r\nContent-Le")
        t_stalled = time.monotonic()
        problems = []
        results = []

        def expect(name, r, status, code=None, field=None):
            st_, j = (r.status, r.json) if hasattr(r, "status") else (r[0], r[1])
            err = (j or {}).get("error") or {}
            ok = st_ == status and (code is None or err.get("code") == code) and (
                field is None or err.get("field") == field)
            results.append(name)
            if not ok:
                problems.append("%s: got %s %s, expected %s %s field %s" % (
                    name, st_, json.dumps(j)[:300] if j else r, status, code, field))
            return j

        inst = new_uuid(rng)
        good_body = {"type": "test_steps", "instance_uuid": inst, "params": {}}

        def with_(**kw):
            b = json.loads(json.dumps(good_body))
            for k, v in kw.items():
                if k.startswith("p_"):
                    b["params"][k[2:]] = v
                else:
                    b[k] = v
            return b
        post = lambda body, **kw: unix_request(sock, "POST", "/v1/operations", body, **kw)  # noqa: E731
        # Malformed JSON and wrong shapes.
        expect("malformed JSON", post(b'{"type": "test_steps",', headers={
            "Content-Type": "application/json"}), 400, "invalid", "body")
        expect("JSON array body", post(b"[1, 2]", headers={"Content-Type": "application/json"}),
               400, "invalid", "body")
        expect("empty body", post(b"", headers={"Content-Type": "application/json"}),
               400, "invalid", "body")
        expect("duplicate keys", post(b'{"type":"test_steps","type":"x"}', headers={
            "Content-Type": "application/json"}), 400, "invalid", "body")
        # Wrong types, each named.
        expect("type not a string", post(with_(type=5)), 400, "invalid", "type")
        expect("type missing", post({"instance_uuid": inst}), 400, "invalid", "type")
        expect("instance_uuid a number", post(with_(instance_uuid=123)), 400, "invalid",
               "instance_uuid")
        expect("instance_uuid not a UUID", post(with_(instance_uuid="not-a-uuid")), 400,
               "invalid", "instance_uuid")
        expect("instance_uuid missing", post({"type": "test_steps", "params": {}}), 400,
               "invalid", "instance_uuid")
        expect("params a string", post(with_(params="x")), 400, "invalid", "params")
        expect("memory_mb a string", post(with_(p_memory_mb="big")), 400, "invalid",
               "params.memory_mb")
        expect("memory_mb too small", post(with_(p_memory_mb=1)), 400, "invalid",
               "params.memory_mb")
        expect("vcpus a float", post(with_(p_vcpus=1.5)), 400, "invalid", "params.vcpus")
        expect("gate a string", post(with_(p_gate="yes")), 400, "invalid", "params.gate")
        expect("fail_at unknown step", post(with_(p_fail_at="nowhere")), 400, "invalid",
               "params.fail_at")
        expect("partition_name too long", post(with_(p_partition_name="x" * 40)), 400,
               "invalid", "params.partition_name")
        expect("unknown param", post(with_(p_colour="red")), 400, "invalid", "params.colour")
        expect("unknown field", post(with_(colour="red")), 400, "invalid", "colour")
        expect("deadline_s negative", post(with_(deadline_s=-1)), 400, "invalid", "deadline_s")
        expect("deadline_s a string", post(with_(deadline_s="soon")), 400, "invalid",
               "deadline_s")
        expect("idempotency_key a number", post(with_(idempotency_key=7)), 400, "invalid",
               "idempotency_key")
        expect("idempotency_key too long", post(with_(idempotency_key="k" * 300)), 400,
               "invalid", "idempotency_key")
        expect("request_id with a newline", post(with_(request_id="a\nb")), 400, "invalid",
               "request_id")
        # Unknown operation types: the answer lists the known ones.
        j = expect("unknown type", post(with_(type="spawnx")), 400, "invalid", "type")
        if j and "test_steps" not in j["error"].get("message", ""):
            problems.append("unknown type: the message does not list test_steps: %s" % j)
        # Content type, size, method, path, query.
        def raw_post(body, ctype):
            return raw_request(sock, b"POST /v1/operations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                               b"%s\r\nContent-Length: %d\r\n\r\n%s" % (ctype, len(body), body))
        expect("text/plain body", raw_post(json.dumps(good_body).encode(), b"text/plain"),
               415, "unsupported_media_type")
        big = json.dumps(with_(p_partition_name="x" * (2 << 20))).encode()
        expect("oversized body (Content-Length)", raw_post(big, b"application/json"), 413,
               "too_large")
        chunked = (b"POST /v1/operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                   b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        piece = b"x" * 65536
        for _ in range(20):
            chunked += b"%x\r\n%s\r\n" % (len(piece), piece)
        chunked += b"0\r\n\r\n"
        expect("oversized body (chunked)", raw_request(sock, chunked), 413, "too_large")
        r = unix_request(sock, "DELETE", "/v1/operations")
        expect("DELETE /v1/operations", r, 405, "method_not_allowed")
        if "POST" not in r.headers.get("Allow", ""):
            problems.append("405 without a fitting Allow header: %s" % r.headers)
        expect("unknown path", unix_request(sock, "GET", "/v1/nothing"), 404, "not_found")
        expect("unknown operation id", unix_request(sock, "GET", "/v1/operations/987654321"),
               404, "not_found")
        expect("operation id not a number", unix_request(sock, "GET", "/v1/operations/abc"),
               404, "not_found")
        expect("bad state filter", unix_request(sock, "GET", "/v1/operations?state=bogus"),
               400, "invalid", "state")
        expect("bad limit", unix_request(sock, "GET", "/v1/operations?limit=0"), 400,
               "invalid", "limit")
        expect("unknown query argument", unix_request(sock, "GET", "/v1/operations?x=1"),
               400, "invalid", "x")
        expect("negative wait", unix_request(sock, "GET", "/v1/operations/1?wait=-1"), 400,
               "invalid", "wait")
        st_, _, text = raw_request(sock, b"GARBAGE\r\n\r\n")
        results.append("garbage request line")
        if not 400 <= st_ < 500 and st_ != 0:
            problems.append("garbage request line: %s" % text[:200])
        # Conflicting idempotency key; control requests with bad bodies.
        key = "conflict-%s" % inst
        r1 = post(with_(idempotency_key=key))
        check(r1.status == 202, "first submission with key: %r" % r1)
        op_id = r1.json["id"]
        r2 = post(with_(idempotency_key=key, p_memory_mb=1024))
        j = expect("same key, other params", r2, 409, "conflict")
        if j and j["error"].get("existing_id") != op_id:
            problems.append("409 does not name the existing id %d: %s" % (op_id, j))
        j = expect("same key, same params", post(with_(idempotency_key=key)), 200)
        if j and (j.get("id") != op_id or j.get("existing") is not True):
            problems.append("same key, same params: %s (id %d)" % (j, op_id))
        sig = "/v1/operations/%d/signal" % op_id
        expect("signal with a bad name", unix_request(sock, "POST", sig, {"name": "no way!",
                                                                         "value": 1}),
               400, "invalid", "name")
        expect("signal without value", unix_request(sock, "POST", sig, {"name": "go"}), 400,
               "invalid", "value")
        expect("retry of an operation that did not fail",
               unix_request(sock, "POST", "/v1/operations/%d/retry" % op_id), 409, "conflict")
        expect("reconcile with a bad uuid", unix_request(sock, "POST", "/v1/reconcile", {
            "instances": [{"uuid": "x", "vm_state": "active"}]}), 400, "invalid",
            "instances[0].uuid")
        # A request trickling in byte by byte (bounded: ~0.3 s per 10 bytes) while others
        # are served: the good client's latency is watched.
        body = json.dumps({"type": "test_steps", "instance_uuid": new_uuid(rng),
                           "idempotency_key": "trickle", "params": {}}).encode()
        req = (b"POST /v1/operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        ts = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ts.settimeout(20 * SCALE)
        ts.connect(sock)
        t0 = time.monotonic()
        n_lat = len(good.latencies)
        for i in range(len(req)):
            ts.sendall(req[i:i + 1])
            time.sleep(0.03)
        status, j, _ = read_response(ts)
        ts.close()
        trickle_s = time.monotonic() - t0
        lat = good.latencies[n_lat:]
        results.append("trickle")
        if status != 202:
            problems.append("trickled request: %s %s" % (status, j))
        log("trickled %d bytes in %.1f s -> %d; the good client made %d requests meanwhile "
            "(max latency %.3f s)" % (len(req), trickle_s, status, len(lat),
                                      max(lat or [0])))
        if len(lat) < 10 or max(lat or [9]) > 2 * SCALE:
            problems.append("the good client was held up during the trickle: %d requests, "
                            "max %.3f s" % (len(lat), max(lat or [0])))
        # A peer whose uid is not allowed: the socket made reachable for it in this test only.
        os.chmod(st.dir, 0o711)
        os.chmod(sock, 0o666)
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: become nobody, ask, report on the pipe
            code = 1
            try:
                os.close(rfd)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                res = raw_request(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                res2 = raw_request(sock, b"POST /v1/pause HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Length: 0\r\n\r\n")
                os.write(wfd, json.dumps([res[0], res[1], res2[0], res2[1]]).encode())
                code = 0
            except BaseException as e:  # noqa: BLE001
                os.write(wfd, json.dumps(["exception", repr(e)]).encode())
            finally:
                os._exit(code)
        os.close(wfd)
        out = b""
        for _ in range(1000):
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            out += chunk
        os.close(rfd)
        os.waitpid(pid, 0)
        os.chmod(sock, 0o660)
        os.chmod(st.dir, 0o700)
        res = json.loads(out or b'["no answer"]')
        results.append("uid 65534")
        if res[0] != 403 or ((res[1] or {}).get("error") or {}).get("code") != "forbidden" or \
                res[2] != 403:
            problems.append("uid 65534 was not refused with 403 forbidden: %s" % res)
        else:
            log("uid 65534: GET /healthz -> 403 %s; POST /v1/pause -> 403" % res[1])
        wait_until(lambda: "refused a connection from uid 65534" in st.powervmd_log(), 10,
                   "the refusal of uid 65534 in the log")
        health = st.api("GET", "/healthz").json
        if health.get("paused"):
            problems.append("the refused peer paused the engine")
        # The stalled request is cut at the connection timeout (30 s).
        stalled.settimeout(60 * SCALE)
        try:
            data = stalled.recv(65536)
        except socket.timeout:
            data = None
        cut_s = time.monotonic() - t_stalled
        stalled.close()
        results.append("stalled request")
        if data is None:
            problems.append("a stalled request was not cut within %.0f s" % cut_s)
        else:
            log("the stalled request was cut after %.1f s (%r)" % (cut_s, data[:40]))
        # The daemon kept serving: the good client's operations all succeed.
        good.stop.set()
        good.join(30 * SCALE)
        ops = st.wait_terminal(good.ids + [op_id], 120, "the good client's operations")
        bad_ops = {i: o["state"] for i, o in ops.items() if o["state"] != "succeeded"}
        log("%d bad-input checks; good client: %d requests, %d operations (%s), errors %d, "
            "max latency %.3f s" % (len(results), len(good.latencies), len(good.ids),
                                    "all succeeded" if not bad_ops else bad_ops,
                                    len(good.errors), max(good.latencies or [0])))
        if good.errors:
            problems.append("the good client saw errors: %s" % good.errors[:5])
        if bad_ops:
            problems.append("good operations did not succeed: %s" % bad_ops)
        if problems:
            raise TestFailure("%d of %d checks failed:\n  %s" % (
                len(problems), len(results), "\n  ".join(problems)))


if __name__ == "__main__":
    run_main("daemon_bad_input", test)
