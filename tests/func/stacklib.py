"""stacklib: shared helpers of the functional tests of powervmd (tests/func/daemon_*.py).

Standard library only. A Stack is one pvmsim + powervmd pair under a fresh directory,
started by scripts/stack (`up`, `kill-powervmd`, `start-powervmd`, `restart-pvmsim`,
`down`); the API is reached over the Unix socket with http.client, pvmsim over HTTP.

Rules the tests follow: every wait is a deadline on a condition (wait_until), scaled by
PVM_TEST_SCALE; every loop is bounded in count and time; random runs print their seed
(PVM_TEST_SEED replays one); the stack is always taken down (Stack is a context manager),
and its directory is kept (and named) when the test failed.
"""
import ctypes
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

SCALE = float(os.environ.get("PVM_TEST_SCALE") or 1) or 1.0
SRC = os.environ.get("PVM_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("PVM_BUILD_DIR") or os.path.join(SRC, "build"))
STACK = os.path.join(SRC, "scripts", "stack")

TERMINAL = ("succeeded", "failed", "cancelled")

# Daemons started by scripts/stack outlive the script: make this process their subreaper
# so that killed daemons can be reaped here (the container's init may not reap them).
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:  # pragma: no cover - not Linux
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def seed_rng(name):
    seed = os.environ.get("PVM_TEST_SEED")
    seed = int(seed) if seed else random.SystemRandom().randrange(1, 2**31)
    log("%s: seed %d (replay with PVM_TEST_SEED=%d)" % (name, seed, seed))
    return random.Random(seed), seed


def wait_until(cond, timeout, what, interval=0.05, max_interval=0.5):
    """Polls cond() until it returns a true value (returned) or timeout*SCALE seconds pass
    (TestFailure naming `what`). Bounded in time and in the number of polls."""
    end = time.monotonic() + timeout * SCALE
    delay = interval
    max_polls = int(timeout * SCALE / interval) + 10
    last_exc = None
    for _ in range(max_polls):
        try:
            v = cond()
            if v:
                return v
            last_exc = None
        except (OSError, http.client.HTTPException) as e:
            last_exc = e
        if time.monotonic() > end:
            break
        time.sleep(min(delay, max(0.0, end - time.monotonic()) + 0.001))
        delay = min(delay * 1.5, max_interval)
    raise TestFailure("timed out after %.1f s waiting for %s%s" % (
        timeout * SCALE, what, " (last error: %r)" % last_exc if last_exc else ""))


def lpar_uuid(instance_uuid):
    """The partition UUID powervmd derives from an instance UUID (src/pvm/build.c)."""
    u = instance_uuid.upper()
    d = int(u[0], 16) & 7
    return "0123456789ABCDEF"[d] + u[1:]


def new_uuid(rng):
    return "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                            rng.getrandbits(12),
                                            0x8000 | rng.getrandbits(14), rng.getrandbits(48))


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path, timeout=30.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def error(self):
        return (self.json or {}).get("error") or {}

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300].decode("utf-8", "replace"))


def unix_request(path, method, url, body=None, headers=None, timeout=30.0):
    """One request on a new connection. body: dict/list (sent as JSON), bytes or str."""
    h = {}
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    h.update(headers or {})
    conn = UnixHTTPConnection(path, timeout=timeout * SCALE)
    try:
        conn.request(method, url, body=body, headers=h)
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


def unix_put_stream(path, url, chunks, length=None, headers=None, timeout=60.0):
    """PUT of a raw body sent piece by piece from an iterable of bytes, never held whole:
    with Content-Length when length is given, else chunked transfer encoding. Returns
    the Response (the server answers once the whole body is in)."""
    conn = UnixHTTPConnection(path, timeout=timeout * SCALE)
    try:
        conn.putrequest("PUT", url, skip_accept_encoding=True)
        h = {"Content-Type": "application/octet-stream"}
        h.update(headers or {})
        if length is not None:
            h["Content-Length"] = str(length)
        else:
            h["Transfer-Encoding"] = "chunked"
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            for c in chunks:
                if not c:
                    continue
                conn.send(b"%x\r\n%s\r\n" % (len(c), c) if length is None else c)
            if length is None:
                conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered before the body (e.g. 413) and closed: read that answer
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


def chunks_of(data, size=65536):
    """data (bytes) as an iterator of pieces of at most size bytes."""
    return (data[i:i + size] for i in range(0, len(data), size))


def parse_metrics(text):
    """Prometheus text -> {(name, labels): value}; labels as the raw string ('' if none)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
        if m:
            out[(m.group(1), (m.group(2) or "")[1:-1])] = float(m.group(3))
    return out


def metric_sum(metrics, name, label_filter=""):
    return sum(v for (n, l), v in metrics.items() if n == name and label_filter in l)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class Stack:
    """One pvmsim + powervmd under a temporary directory. Use as a context manager.

    daemons: how many powervmd to start, one per managed system in inventory order (None:
    one per system, as `scripts/stack up` does by default); conf: extra powervmd.conf lines;
    mode: "hmc" or "novalink"; image: preload the stack's test image (its id in
    self.env["POWERVMD_TEST_IMAGE"]). self.socks lists every daemon's socket."""

    def __init__(self, name, job_ms=300, workers=4, daemons=1, conf=(), mode="hmc",
                 image=False):
        self.name = name
        self.job_ms = job_ms
        self.workers = workers
        self.daemons = daemons
        self.conf = list(conf)
        self.mode = mode
        self.image = image  # preload scripts/stack's test image (POWERVMD_TEST_IMAGE)
        self.dir = tempfile.mkdtemp(prefix="pvmf-%s-" % name[:10], dir="/tmp")
        self.env = {}
        self.pids = set()  # every daemon pid seen, reaped at the end
        self.failed = True

    def ndaemons(self):
        """How many powervmd the stack runs (known once it is up; 8 at most before)."""
        if getattr(self, "socks", None):
            return len(self.socks)
        return self.daemons or 8

    # ---- life cycle ----
    def _stack(self, *args, timeout=120):
        env = dict(os.environ, PVM_BUILD_DIR=BUILD)
        p = subprocess.run([STACK] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=timeout * SCALE)
        if p.returncode != 0:
            raise TestFailure("scripts/stack %s failed (%d): %s" % (
                " ".join(args), p.returncode, p.stderr.decode(errors="replace")[-2000:]))
        return p.stdout.decode()

    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.failed = False
        self.down()
        return False

    def up(self):
        t0 = time.monotonic()
        args = ["up", self.dir, "--job-ms", str(self.job_ms), "--workers",
                str(self.workers), "--mode", self.mode]
        if self.daemons:
            args += ["--daemons", str(self.daemons)]
        if not self.image:
            args.append("--no-image")
        for line in self.conf:
            args += ["--conf", line]
        out = self._stack(*args)
        for line in out.splitlines():
            m = re.match(r"export (\w+)='(.*)'$", line)
            if m:
                self.env[m.group(1)] = m.group(2)
        self.sock = self.env["POWERVMD_SOCKET"]
        self.socks = self.env["POWERVMD_SOCKETS"].split()
        self.sim_url = self.env["PVMSIM_URL"]
        self.note_pids()
        log("stack up in %s (%.2f s): %s, pvmsim %s" % (self.dir, time.monotonic() - t0,
                                                        self.sock, self.sim_url))

    def down(self):
        try:
            self._stack("down", self.dir, timeout=60)
        except Exception as e:  # keep going: the directory tells what happened
            log("stack down: %s" % e)
        for pid in list(self.pids):
            _reap(pid)
        if self.failed:
            log("stack directory kept for inspection: %s" % self.dir)
            for f in ["powervmd-%d.log" % n for n in range(1, self.ndaemons() + 1)] + [
                    "pvmsim.log"]:
                p = os.path.join(self.dir, f)
                if os.path.exists(p):
                    with open(p, errors="replace") as fh:
                        tail = fh.readlines()[-25:]
                    log("last lines of %s:\n%s" % (f, "".join(tail)))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def note_pids(self):
        for f in ["powervmd-%d.pid" % n for n in range(1, self.ndaemons() + 1)] + ["pvmsim.pid"]:
            try:
                with open(os.path.join(self.dir, f)) as fh:
                    self.pids.add(int(fh.read().strip()))
            except (OSError, ValueError):
                pass

    def powervmd_pid(self, n=1):
        with open(os.path.join(self.dir, "powervmd-%d.pid" % n)) as fh:
            return int(fh.read().strip())

    def kill_powervmd(self, sig=signal.SIGKILL, timeout=30, n=1):
        """Sends sig to powervmd n and waits (bounded) until it is gone."""
        pid = self.powervmd_pid(n)
        os.kill(pid, sig)
        wait_until(lambda: not _alive(pid), timeout, "powervmd %d to exit after %s" % (
            pid, signal.Signals(sig).name), interval=0.005, max_interval=0.05)
        _reap(pid)
        try:
            os.unlink(os.path.join(self.dir, "powervmd-%d.pid" % n))
        except FileNotFoundError:
            pass
        return pid

    def start_powervmd(self, paused=False, n=1):
        t0 = time.monotonic()
        self._stack("start-powervmd", self.dir, str(n), *(["--paused"] if paused else []))
        self.note_pids()
        return time.monotonic() - t0

    def restart_pvmsim(self, kill=False):
        self._stack("restart-pvmsim", self.dir, *(["--kill"] if kill else []))
        self.note_pids()

    def powervmd_log(self, n=1):
        with open(os.path.join(self.dir, "powervmd-%d.log" % n), errors="replace") as fh:
            return fh.read()

    # ---- the API ----
    def api(self, method, url, body=None, headers=None, timeout=30.0, n=1):
        return unix_request(self.sock_of(n), method, url, body, headers, timeout)

    def sock_of(self, n):
        return self.sock if n == 1 else self.socks[n - 1]

    def put_stream(self, url, chunks, length=None, headers=None, timeout=60.0, n=1):
        """A raw-body PUT streamed to powervmd n (unix_put_stream)."""
        return unix_put_stream(self.sock_of(n), url, chunks, length, headers, timeout)

    def put_image(self, image_id, data, algo=None, value=None, wait=None, n=1,
                  chunked=False, timeout=60.0):
        """PUT /v1/images/{id} of data (bytes), streamed in 64 KiB pieces, with the digest
        headers when algo is given (value: the right digest unless given)."""
        import hashlib
        h = {}
        if algo:
            h["os_hash_algo"] = algo
            h["os_hash_value"] = value or hashlib.new(algo, data).hexdigest()
        url = "/v1/images/%s" % image_id + ("?wait=%g" % wait if wait is not None else "")
        return self.put_stream(url, chunks_of(data), None if chunked else len(data), h,
                               timeout + (wait or 0), n)

    def submit(self, body):
        return self.api("POST", "/v1/operations", body)

    def op(self, op_id, wait=None):
        url = "/v1/operations/%d" % op_id + ("?wait=%g" % wait if wait else "")
        r = self.api("GET", url, timeout=(wait or 0) + 30)
        check(r.status == 200, "GET operation %d: %r" % (op_id, r))
        return r.json

    def list_ops(self, **filters):
        ops, after = [], None
        for _ in range(10000):
            q = dict(filters, limit=1000)
            if after is not None:
                q["after"] = after
            r = self.api("GET", "/v1/operations?" + urllib.parse.urlencode(q))
            check(r.status == 200, "list operations: %r" % r)
            ops += r.json["operations"]
            after = r.json["next_after"]
            if after is None:
                return ops
        raise TestFailure("list operations: too many pages")

    def metrics(self):
        r = self.api("GET", "/metrics")
        check(r.status == 200, "GET /metrics: %r" % r)
        return parse_metrics(r.body.decode())

    def healthy(self):
        try:
            return self.api("GET", "/healthz", timeout=2).status == 200
        except (OSError, http.client.HTTPException):
            return False

    def wait_terminal(self, ids, timeout, what="operations"):
        ids = list(ids)
        states = {}

        def all_done():
            for i in ids:
                if states.get(i) in TERMINAL:
                    continue
                states[i] = self.op(i)["state"]
            return all(states[i] in TERMINAL for i in ids)
        try:
            wait_until(all_done, timeout, "%d %s to finish" % (len(ids), what), interval=0.2)
        except TestFailure:
            pending = {i: states.get(i) for i in ids if states.get(i) not in TERMINAL}
            raise TestFailure("not finished after %.0f s: %s" % (timeout * SCALE, pending))
        return {i: self.op(i) for i in ids}

    # ---- pvmsim ----
    def sim(self, method, path, body=None, timeout=30.0):
        u = urllib.parse.urlparse(self.sim_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout * SCALE)
        try:
            h = {}
            if body is not None:
                body = json.dumps(body)
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            conn.close()

    def sim_state(self):
        r = self.sim("GET", "/sim/state")
        check(r.status == 200, "GET /sim/state: %r" % r)
        return r.json

    def partitions(self):
        """{PARTITION-UUID (upper case): state} of the client partitions in pvmsim."""
        return {o["uuid"].upper(): o["props"].get("state")
                for o in self.sim_state()["objects"] if o["kind"] == "LogicalPartition"}

    def set_faults(self, faults):
        r = self.sim("PUT", "/sim/faults", faults)
        check(r.status == 200, "PUT /sim/faults: %r" % r)

    def audit(self):
        """Every audit line pvmsim wrote (the file survives pvmsim restarts)."""
        out = []
        with open(os.path.join(self.dir, "sim", "audit.jsonl")) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
        return out


def audit_counts(entries):
    """Per partition UUID (upper case): successful creates, deletes, and jobs started by
    operation name, from pvmsim's audit lines."""
    c = {}

    def get(u):
        return c.setdefault(u.upper(), {"created": 0, "deleted": 0, "create_refused": 0,
                                        "jobs": {}})
    for e in entries:
        path, st, out = e.get("path", ""), e.get("status", 0), e.get("outcome", "")
        obj = e.get("object") or ""
        if e.get("method") == "PUT" and path.endswith("/LogicalPartition"):
            if 200 <= st < 300 and out == "created":
                get(obj)["created"] += 1
            elif st == 409:
                get(obj)["create_refused"] += 1
        elif e.get("method") == "DELETE" and "/LogicalPartition/" in path and 200 <= st < 300:
            get(path.rsplit("/", 1)[1])["deleted"] += 1
        m = re.match(r"job \S+ (\w+) started", out)
        if m and 200 <= st < 300:
            j = get(obj)["jobs"]
            j[m.group(1)] = j.get(m.group(1), 0) + 1
    return c


def run_main(name, fn):
    """Runs fn() and exits 0 on success, 1 with the reason on failure."""
    t0 = time.monotonic()
    try:
        fn()
    except Exception:
        traceback.print_exc()
        log("%s: FAILED after %.1f s" % (name, time.monotonic() - t0))
        sys.exit(1)
    log("%s: passed in %.1f s" % (name, time.monotonic() - t0))
    sys.exit(0)
