#!/usr/bin/python3
"""Functional tests of powervmctl (src/ctl/), run by ctest (tests/ctl.cmake).

    ctl_test.py journal     every command against a journal of known contents (written by
                            ctl_fixture), powervmd not running
    ctl_test.py daemon      every command against a running stack (scripts/stack: pvmsim and
                            powervmd with test operations), then with the stack stopped
    ctl_test.py watch_pty   `queue watch` in a pseudo-terminal: the progress bar, and its exit
                            when the operation ends

Environment: PVM_BUILD_DIR (the build directory: bin/powervmctl, bin/ctl_fixture,
bin/powervmd, bin/pvmsim), PVM_SOURCE_DIR, PVM_TEST_SCALE (multiplies every deadline).
Every wait is a deadline on a condition; every process started is stopped in a cleanup.
"""
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest
import uuid

SRC = os.environ.get("PVM_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PVM_BUILD_DIR") or os.path.join(SRC, "build")
SCALE = float(os.environ.get("PVM_TEST_SCALE") or "1")
CTL = os.path.join(BUILD, "bin", "powervmctl")
FIXTURE = os.path.join(BUILD, "bin", "ctl_fixture")
STACK = os.path.join(SRC, "scripts", "stack")

INST_A = "11111111-1111-4111-8111-111111111111"
INST_B = "22222222-2222-4222-8222-222222222222"
INST_C = "33333333-3333-4333-8333-333333333333"

# Exit statuses (powervmctl --help).
OK, ERROR, USAGE, NO_DAEMON, NOT_FOUND, CONFLICT, OP_FAILED = 0, 1, 2, 3, 4, 5, 6


def ctl_env(extra=None):
    env = dict(os.environ)
    env.pop("POWERVMD_CONFIG", None)
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


def ctl(*args, conf=None, timeout=60, env=None, user=None, stdin=None):
    """Runs powervmctl; returns the CompletedProcess (text)."""
    cmd = [CTL] + (["--config", conf] if conf else []) + list(args)
    pre = None
    if user is not None:
        def pre():
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SCALE,
                          env=ctl_env(env), preexec_fn=pre, input=stdin)


def ctl_json(*args, conf=None, expect=OK):
    p = ctl("--json", *args, conf=conf)
    if p.returncode != expect:
        raise AssertionError("powervmctl %s: exit %d, expected %d\nstdout: %s\nstderr: %s" %
                             (" ".join(args), p.returncode, expect, p.stdout, p.stderr))
    return json.loads(p.stdout)


def wait_until(pred, timeout, what):
    """Polls pred until it returns a true value or the (scaled) deadline passes."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def api(sock, method, path, body=None, timeout=30):
    """One HTTP/1.1 request to powervmd over its Unix socket: (status, JSON or None)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SCALE)
    try:
        s.connect(sock)
        data = json.dumps(body).encode() if body is not None else b""
        head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path)
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += "Content-Length: %d\r\n\r\n" % len(data)
        s.sendall(head.encode() + data)
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    finally:
        s.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", payload
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        payload = out
    return status, (json.loads(payload) if payload.strip() else None)


class PtyProc:
    """A process whose stdin, stdout and stderr are a pseudo-terminal of cols columns."""

    def __init__(self, args, env, cols=120):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
        self.p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                  start_new_session=True, close_fds=True)
        os.close(slave)
        self.master = master
        self.out = b""
        self.eof = False

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is closed
            data = b""
        if data:
            self.out += data
        else:
            self.eof = True

    def read_until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout * SCALE
        while not pred(self.out):
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                raise AssertionError("pty: no %s; %s; output so far: %r" %
                                     (what, "ended" if self.eof else "timed out", self.out))
            self._read(min(left, 0.5))
        return self.out

    def wait(self, timeout):
        """Reads until the end of output, then returns the exit status."""
        deadline = time.monotonic() + timeout * SCALE
        while not self.eof and time.monotonic() < deadline:
            self._read(min(0.5, max(0.0, deadline - time.monotonic())))
        if not self.eof:
            raise AssertionError("pty: the process did not end; output so far: %r" % self.out)
        return self.p.wait(timeout=max(1.0, deadline - time.monotonic()))

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


class Stack:
    """scripts/stack up/down in a directory of its own."""

    def __init__(self, root):
        self.dir = os.path.join(root, "stack")
        self.env = {}

    def up(self):
        env = dict(os.environ, PVM_BUILD_DIR=BUILD)
        p = subprocess.run([STACK, "up", self.dir, "--job-ms", "200", "--workers", "2"],
                           capture_output=True, text=True, env=env, timeout=180 * SCALE)
        if p.returncode != 0:
            self.down()
            raise AssertionError("scripts/stack up failed:\n" + p.stdout + p.stderr)
        for line in p.stdout.splitlines():
            m = re.match(r"export (\w+)='(.*)'$", line)
            if m:
                self.env[m.group(1)] = m.group(2)
        return self

    def down(self):
        subprocess.run([STACK, "down", self.dir], capture_output=True, timeout=120 * SCALE,
                       env=dict(os.environ, PVM_BUILD_DIR=BUILD))

    @property
    def conf(self):
        return self.env["POWERVMD_CONFIG"]

    @property
    def sock(self):
        return self.env["POWERVMD_SOCKET"]


def example_op(root, name, **params):
    """docs/examples/test_steps.json with a fresh instance and key; params override."""
    with open(os.path.join(SRC, "docs", "examples", "test_steps.json")) as f:
        op = json.load(f)
    op["instance_uuid"] = str(uuid.uuid4())
    op["idempotency_key"] = "ctl-test-" + str(uuid.uuid4())
    op["params"]["partition_name"] = name[:31]
    op["params"].update(params)
    path = os.path.join(root, name + ".json")
    with open(path, "w") as f:
        json.dump(op, f)
    return path, op


def write_conf(path, state_dir, sock, extra=""):
    with open(path, "w") as f:
        f.write('powervm_endpoint = "https://127.0.0.1:1";\n'
                'powervm_state_dir = "%s";\npowervm_api_socket = "%s";\n%s' %
                (state_dir, sock, extra))


def make_fixture(root):
    state = os.path.join(root, "state")
    p = subprocess.run([FIXTURE, state], capture_output=True, text=True, timeout=60 * SCALE)
    if p.returncode != 0:
        raise AssertionError("ctl_fixture failed: " + p.stderr)
    conf = os.path.join(root, "ctl.conf")
    write_conf(conf, state, os.path.join(root, "nothing.sock"))
    return state, conf


class Journal(unittest.TestCase):
    """Every command against the fixture journal, powervmd not running."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="ctl-journal-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.state, cls.conf = make_fixture(cls.root)

    def run_ctl(self, *args, expect=OK, **kw):
        p = ctl(*args, conf=self.conf, **kw)
        self.assertEqual(p.returncode, expect, "powervmctl %s\nstdout: %s\nstderr: %s" %
                         (" ".join(args), p.stdout, p.stderr))
        for secret in ("hunter2", "tok-must-not-show"):
            self.assertNotIn(secret, p.stdout + p.stderr)
        return p

    def test_list_json(self):
        out = ctl_json("queue", "list", conf=self.conf)
        states = {o["id"]: o["state"] for o in out["operations"]}
        self.assertEqual(states, {1: "succeeded", 2: "failed", 3: "running", 4: "queued",
                                  5: "waiting", 6: "cancelled", 7: "queued"})
        self.assertEqual(out["damaged"], 0)
        self.assertEqual(out["daemon"], {"state": "stopped", "running": False, "paused": None})
        self.assertEqual(out["resume_on_start"], [3, 4, 5, 7])
        op5 = [o for o in out["operations"] if o["id"] == 5][0]
        self.assertEqual(op5["type"], "spawn")
        self.assertEqual(op5["instance_uuid"], INST_C)
        self.assertEqual(op5["progress"], 40)
        self.assertIn("has_secrets", op5["flags"])
        self.assertEqual(op5["params"]["auth_token"], "<redacted>")

    def test_list_filters(self):
        def ids(*args):
            return [o["id"] for o in ctl_json("queue", "list", *args, conf=self.conf)["operations"]]
        self.assertEqual(ids("--state", "queued"), [4, 7])
        self.assertEqual(ids("--instance", INST_B), [3, 4])
        self.assertEqual(ids("--instance", INST_B.upper()), [3, 4])
        self.assertEqual(ids("--type", "spawn"), [5, 6])
        self.assertEqual(ids("--limit", "2"), [1, 2])
        self.assertEqual(ids("--type=test_steps", "--state=failed"), [2])
        self.assertEqual(ids("--type", "nothing"), [])

    def test_list_text(self):
        p = self.run_ctl("queue", "list")
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ID  TYPE"), lines[0])
        col = lines[0].index("STATE")
        rows = lines[1:8]
        self.assertEqual(len(rows), 7)
        for r, st in zip(rows, ["succeeded", "failed", "running", "queued", "waiting",
                                "cancelled", "queued"]):
            self.assertEqual(r[col:].split()[0], st, r)
        self.assertIn("[HSCL9999] partition profile refused", rows[1])
        self.assertIn("When it starts, 4 operations resume: 2 queued, 1 running (returned to "
                      "the queue at their last checkpoint), 1 waiting", p.stdout)
        self.assertIn("powervmd --paused", p.stdout)
        p = self.run_ctl("queue", "list", "--type", "nothing")
        self.assertIn("No operation matches.", p.stdout)

    def test_show_json(self):
        op = ctl_json("queue", "show", "2", conf=self.conf)
        self.assertEqual((op["id"], op["state"], op["type"]), (2, "failed", "test_steps"))
        self.assertEqual(op["retries"], 3)
        self.assertEqual(op["error_code"], "HSCL9999")
        self.assertEqual(op["idempotency_key"], "fx-2")
        attempts = [h for h in op["history"] if h["event"] == "attempt failed"]
        self.assertEqual([h["code"] for h in attempts], ["HSCL1234", "HSCL1234", "HSCL9999"])
        self.assertIsNotNone(op["finished"])
        op = ctl_json("queue", "show", "5", conf=self.conf)
        self.assertEqual(op["flags"], ["has_secrets"])
        self.assertNotIn("admin_password", op["params"])
        self.assertEqual(op["params"]["flavor"], {"vcpus": 2, "memory_mb": 2048})
        self.assertEqual(op["checkpoints"]["create_partition"]["uuid"],
                         "5A1B2C3D-0000-4000-8000-000000000005")
        op = ctl_json("queue", "show", "1", conf=self.conf)
        self.assertEqual(op["result"], {"partition_uuid": "5A1B2C3D-0000-4000-8000-000000000001"})

    def test_show_text(self):
        p = self.run_ctl("queue", "show", "5")
        self.assertIn("Operation 5: spawn, waiting", p.stdout)
        self.assertIn("has_secrets", p.stdout)
        self.assertIn("kept encrypted in the journal, never shown", p.stdout)
        self.assertIn("[############------------------] 40%", p.stdout)
        self.assertIn('"auth_token": "<redacted>"', p.stdout)
        self.assertIn("resumes when it starts", p.stdout)
        p = self.run_ctl("queue", "show", "3")
        self.assertIn("returns to the queue at its last checkpoint", p.stdout)
        p = self.run_ctl("queue", "show", "2")
        self.assertRegex(p.stdout, r"Last error:\s+\[HSCL9999\] partition profile refused")
        self.assertRegex(p.stdout, r"attempt failed\s+HSCL1234\s+VIOS busy")
        self.assertNotIn("resumes when it starts", p.stdout)

    def test_stats(self):
        st = ctl_json("queue", "stats", conf=self.conf)
        self.assertEqual(st["total"], 7)
        self.assertEqual(st["by_state"], {"queued": 2, "running": 1, "waiting": 1,
                                          "reverting": 0, "succeeded": 1, "failed": 1,
                                          "cancelled": 1})
        ts = st["by_type"]["test_steps"]
        self.assertEqual((ts["succeeded"], ts["failed"], ts["queued"], ts["total"],
                          ts["retries"]), (1, 1, 1, 3, 3))
        self.assertEqual(st["by_type"]["spawn"]["total"], 2)
        self.assertEqual(st["retries"], {"total": 3, "active": 0})
        self.assertEqual(st["oldest_waiting"]["id"], 4)
        self.assertEqual(st["quarantined"], 0)
        self.assertEqual(st["resume_on_start"], [3, 4, 5, 7])
        self.assertGreater(st["journal"]["used_bytes"], 0)
        p = self.run_ctl("queue", "stats")
        self.assertRegex(p.stdout, r"\ball\s+2\s+1\s+1\s+0\s+1\s+1\s+1\s+7\s+3\n")
        self.assertIn("Oldest waiting:  operation 4 (power_off", p.stdout)
        self.assertIn("Retries:         3 in all, 0 on active operations", p.stdout)
        self.assertIn("powervmd:        not running", p.stdout)

    def test_not_found(self):
        p = self.run_ctl("queue", "show", "99", expect=NOT_FOUND)
        self.assertIn("no operation 99", p.stderr)
        self.run_ctl("queue", "watch", "99", expect=NOT_FOUND)

    def test_watch_finished(self):
        p = self.run_ctl("queue", "watch", "1")
        self.assertIn("operation 1 succeeded", p.stdout)
        p = self.run_ctl("queue", "watch", "2", expect=OP_FAILED)
        self.assertIn("operation 2 failed: [HSCL9999] partition profile refused", p.stdout)
        p = self.run_ctl("--json", "queue", "watch", "6", expect=OP_FAILED)
        self.assertEqual(json.loads(p.stdout.splitlines()[-1])["state"], "cancelled")

    def test_daemon_commands_refused(self):
        example = os.path.join(SRC, "docs", "examples", "test_steps.json")
        for args in (["host"], ["instances"], ["pause"], ["resume"], ["queue", "retry", "2"],
                     ["queue", "cancel", "4"], ["queue", "purge"],
                     ["queue", "purge", "--older-than", "7d"], ["submit", example]):
            p = self.run_ctl(*args, expect=NO_DAEMON)
            self.assertIn("powervmd is not running", p.stderr)
            self.assertIn("Start it", p.stderr)

    def test_usage(self):
        for args in (["queue", "list", "--state", "bogus"], ["queue", "show"],
                     ["queue", "show", "x"], ["queue", "show", "0"], ["bogus"],
                     ["queue", "bogus"], ["queue"], [], ["queue", "show", "1", "--limit", "3"],
                     ["queue", "list", "--instance", "not-a-uuid"],
                     ["queue", "list", "--limit", "0"], ["queue", "purge", "--older-than", "3x"],
                     ["queue", "list", "--frobnicate"], ["queue", "list", "--state"],
                     ["submit"], ["host", "extra"], ["queue", "stats", "1"]):
            p = ctl(*args, conf=self.conf)
            self.assertEqual(p.returncode, USAGE, "%s: %s %s" % (args, p.stdout, p.stderr))
            self.assertTrue(p.stderr.strip(), args)

    def test_help(self):
        p = self.run_ctl("--help")
        for word in ("queue list", "queue show ID", "queue stats", "queue watch ID", "host",
                     "instances", "queue retry ID", "queue cancel ID", "queue purge",
                     "submit FILE", "pause", "resume", "Exit status:", "--json"):
            self.assertIn(word, p.stdout)
        for cmd in (["queue", "list"], ["queue", "show"], ["queue", "stats"], ["queue", "watch"],
                    ["queue", "retry"], ["queue", "cancel"], ["queue", "purge"], ["submit"],
                    ["host"], ["instances"], ["pause"], ["resume"]):
            p = self.run_ctl(*cmd, "--help")
            self.assertIn("Usage: powervmctl [GLOBAL OPTIONS] " + " ".join(cmd), p.stdout)
            self.assertIn("Exit status:", p.stdout)
            p = self.run_ctl("help", *cmd)
            self.assertIn("Usage: powervmctl [GLOBAL OPTIONS] " + " ".join(cmd), p.stdout)
        self.assertIn("queue list", self.run_ctl("queue", "--help").stdout)

    def test_paths(self):
        # --state-dir and --socket without any configuration, and $POWERVMD_CONFIG.
        p = ctl("--json", "--state-dir", self.state, "--socket", "/nonexistent.sock", "queue",
                "list", "--limit", "1")
        self.assertEqual(p.returncode, OK, p.stderr)
        self.assertEqual(len(json.loads(p.stdout)["operations"]), 1)
        p = ctl("--json", "queue", "stats", env={"POWERVMD_CONFIG": self.conf})
        self.assertEqual(p.returncode, OK, p.stderr)
        p = ctl("queue", "list", conf=os.path.join(self.root, "missing.conf"))
        self.assertEqual(p.returncode, ERROR)
        self.assertIn("missing.conf", p.stderr)
        p = ctl("--state-dir", os.path.join(self.root, "nojournal"), "--socket", "/x.sock",
                "queue", "list")
        self.assertEqual(p.returncode, ERROR)
        self.assertIn("no journal in", p.stderr)

    def test_config_password_file_of_another_user(self):
        # pvm_config_load() refuses a password file not owned by the caller (it is
        # powervmd's); powervmctl still reads the keys it needs.
        pw = os.path.join(self.root, "password")
        with open(pw, "w") as f:
            f.write("secret\n")
        os.chmod(pw, 0o644)
        conf = os.path.join(self.root, "pw.conf")
        write_conf(conf, self.state, os.path.join(self.root, "nothing.sock"),
                   'powervm_user = "hscroot";\npowervm_password_file = "%s";\n' % pw)
        p = ctl("--json", "queue", "list", conf=conf)
        self.assertEqual(p.returncode, OK, p.stderr)
        self.assertEqual(len(json.loads(p.stdout)["operations"]), 7)
        bad = os.path.join(self.root, "bad.conf")
        write_conf(bad, "relative/dir", "/x.sock")
        p = ctl("queue", "list", conf=bad)
        self.assertEqual(p.returncode, ERROR)
        self.assertIn("powervm_state_dir", p.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to switch users")
    def test_permissions(self):
        # What docs/operations.md says: read on data.mdb, read+write on lock.mdb, x on the
        # directory. A copy of the journal, so the shared fixture keeps its modes.
        d = os.path.join(self.root, "perm")
        shutil.copytree(self.state, os.path.join(d, "state"))
        st = os.path.join(d, "state")
        conf = os.path.join(d, "ctl.conf")
        write_conf(conf, st, os.path.join(d, "nothing.sock"))
        for path, mode in ((self.root, 0o755), (d, 0o755), (st, 0o750), (conf, 0o644),
                           (os.path.join(st, "data.mdb"), 0o640),
                           (os.path.join(st, "lock.mdb"), 0o640)):
            os.chmod(path, mode)
        nobody, group = 65534, 65534
        os.chown(st, 0, group)
        os.chown(os.path.join(st, "data.mdb"), 0, group)
        os.chown(os.path.join(st, "lock.mdb"), 0, group)

        def as_nobody(*args):
            return ctl(*args, conf=conf, user=nobody)
        # group read on lock.mdb only: refused, and the message says what is needed.
        p = as_nobody("queue", "list")
        self.assertEqual(p.returncode, ERROR, p.stdout + p.stderr)
        self.assertIn("read+write on lock.mdb", p.stderr)
        os.chmod(os.path.join(st, "lock.mdb"), 0o660)
        p = as_nobody("--json", "queue", "list")
        self.assertEqual(p.returncode, OK, p.stderr)
        self.assertEqual(len(json.loads(p.stdout)["operations"]), 7)
        os.chmod(os.path.join(st, "data.mdb"), 0o600)
        p = as_nobody("queue", "list")
        self.assertEqual(p.returncode, ERROR)
        self.assertIn("read on data.mdb", p.stderr)


class Daemon(unittest.TestCase):
    """Every command against a running stack, then with the stack stopped."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="ctl-daemon-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.stack = Stack(cls.root)
        cls.addClassCleanup(cls.stack.down)
        cls.stack.up()
        cls.conf = cls.stack.conf

    def run_ctl(self, *args, expect=OK, **kw):
        p = ctl(*args, conf=self.conf, **kw)
        self.assertEqual(p.returncode, expect, "powervmctl %s\nstdout: %s\nstderr: %s" %
                         (" ".join(args), p.stdout, p.stderr))
        return p

    def submit(self, name, expect=OK, **params):
        path, op = example_op(self.root, name, **params)
        p = self.run_ctl("--json", "submit", path, expect=expect)
        return (json.loads(p.stdout)["id"] if expect == OK else None), path, op

    def state_of(self, op_id):
        return ctl_json("queue", "show", str(op_id), conf=self.conf)["state"]

    def test_01_host_instances(self):
        host = ctl_json("host", conf=self.conf)
        self.assertEqual(host["name"], "sim-8408-E8E-SN10678CV")
        self.assertIn("uuid", host)
        p = self.run_ctl("host")
        self.assertRegex(p.stdout, r"(?m)^name\s+sim-8408-E8E-SN10678CV$")
        inst = ctl_json("instances", conf=self.conf)
        self.assertIsInstance(inst["instances"], list)
        # A partition that stays: a test_steps operation without delete_at_end.
        op_id, _, op = self.submit("ctl-keep", delete_at_end=False)
        self.assertEqual(self.run_ctl("queue", "watch", str(op_id)).returncode, OK)
        names = [i["name"] for i in ctl_json("instances", conf=self.conf)["instances"]]
        self.assertIn("ctl-keep", names)
        p = self.run_ctl("instances")
        self.assertTrue(p.stdout.startswith("NAME"), p.stdout)
        self.assertRegex(p.stdout, r"(?m)^ctl-keep\s")

    def test_02_submit_watch_and_idempotency(self):
        path, op = example_op(self.root, "ctl-submit")
        p = self.run_ctl("submit", path, "--watch")
        m = re.search(r"submitted operation (\d+) \(queued\)", p.stdout)
        self.assertTrue(m, p.stdout)
        op_id = int(m.group(1))
        self.assertIn("operation %d succeeded" % op_id, p.stdout)
        self.assertNotIn("\r", p.stdout)  # not a terminal: one line per change
        # The same request again: the same operation.
        p = self.run_ctl("submit", path)
        self.assertIn("operation %d already holds this idempotency key" % op_id, p.stdout)
        again = json.loads(self.run_ctl("--json", "submit", path).stdout)
        self.assertEqual((again["id"], again.get("existing")), (op_id, True))
        # The same key with other params: a conflict.
        op["params"]["vcpus"] = 2
        with open(path, "w") as f:
            json.dump(op, f)
        p = self.run_ctl("submit", path, expect=CONFLICT)
        self.assertIn("already used by operation %d" % op_id, p.stderr)
        # Read from the journal while the daemon runs.
        lst = ctl_json("queue", "list", "--instance", op["instance_uuid"], conf=self.conf)
        self.assertEqual([o["id"] for o in lst["operations"]], [op_id])
        self.assertEqual(lst["daemon"], {"state": "running", "running": True, "paused": False})
        self.assertNotIn("resume_on_start", lst)
        shown = ctl_json("queue", "show", str(op_id), conf=self.conf)
        self.assertEqual((shown["state"], shown["progress"]), ("succeeded", 100))
        self.assertEqual(shown["params"]["partition_name"], "ctl-submit")

    def test_03_submit_refused(self):
        path, op = example_op(self.root, "ctl-badtype")
        op["type"] = "no_such_type"
        with open(path, "w") as f:
            json.dump(op, f)
        p = self.run_ctl("submit", path, expect=ERROR)
        self.assertIn("type", p.stderr)
        self.assertIn("unknown operation type", p.stderr)
        bad = os.path.join(self.root, "bad.json")
        with open(bad, "w") as f:
            f.write('{"type": "test_steps",\n "params": {')
        p = self.run_ctl("submit", bad, expect=ERROR)
        self.assertIn("bad.json:2:", p.stderr)
        p = self.run_ctl("submit", "-", stdin='["not an object"]', expect=ERROR)
        self.assertIn("must be a JSON object", p.stderr)

    def test_04_fail_and_retry(self):
        op_id, path, _ = self.submit("ctl-fail", fail_at="power_on")
        p = self.run_ctl("queue", "watch", str(op_id), expect=OP_FAILED)
        self.assertIn("operation %d failed" % op_id, p.stdout)
        self.assertIn("step power_on fails on purpose", p.stdout)
        shown = ctl_json("queue", "show", str(op_id), conf=self.conf)
        self.assertEqual(shown["state"], "failed")
        p = self.run_ctl("queue", "retry", str(op_id))
        self.assertIn("operation %d is queued again" % op_id, p.stdout)
        self.run_ctl("queue", "watch", str(op_id), expect=OP_FAILED)
        out = ctl_json("queue", "retry", str(op_id), conf=self.conf)
        self.assertEqual(out, {"id": op_id, "state": "queued"})
        self.run_ctl("queue", "watch", str(op_id), expect=OP_FAILED)
        hist = ctl_json("queue", "show", str(op_id), conf=self.conf)["history"]
        self.assertEqual(len([h for h in hist if h["event"] == "retried by operator"]), 2)
        # Retry of one that did not fail; of one that does not exist.
        ok_id, _, _ = self.submit("ctl-ok")
        self.run_ctl("queue", "watch", str(ok_id))
        p = self.run_ctl("queue", "retry", str(ok_id), expect=CONFLICT)
        self.assertIn("only a failed operation can be retried", p.stderr)
        self.run_ctl("queue", "retry", "999999", expect=NOT_FOUND)

    def test_05_pause_cancel_resume(self):
        self.assertEqual(ctl_json("pause", conf=self.conf), {"paused": True})
        try:
            p = self.run_ctl("pause")
            self.assertIn("powervmd paused", p.stdout)
            held, _, _ = self.submit("ctl-held")
            later, _, _ = self.submit("ctl-later")
            lst = ctl_json("queue", "list", "--state", "queued", conf=self.conf)
            self.assertEqual([o["id"] for o in lst["operations"]], [held, later])
            self.assertEqual(lst["daemon"]["paused"], True)
            p = self.run_ctl("queue", "list")
            self.assertIn("powervmd is paused", p.stdout)
            out = ctl_json("queue", "cancel", str(held), conf=self.conf)
            self.assertEqual((out["id"], out["state"]), (held, "cancelled"))
            p = self.run_ctl("queue", "cancel", str(held), expect=CONFLICT)
            self.assertIn("already finished (cancelled)", p.stderr)
            self.run_ctl("queue", "cancel", "999999", expect=NOT_FOUND)
            self.assertEqual(self.state_of(later), "queued")
        finally:
            p = self.run_ctl("resume")
        self.assertIn("powervmd resumed", p.stdout)
        self.assertEqual(ctl_json("resume", conf=self.conf), {"paused": False})
        self.run_ctl("queue", "watch", str(later))

    def test_06_cancel_active(self):
        op_id, _, _ = self.submit("ctl-gate", gate=True)
        wait_until(lambda: self.state_of(op_id) == "waiting", 60, "the gate")
        p = self.run_ctl("queue", "cancel", str(op_id))
        self.assertIn("cancel requested", p.stdout)
        p = self.run_ctl("queue", "watch", str(op_id), expect=OP_FAILED)
        self.assertIn("operation %d cancelled" % op_id, p.stdout)

    def test_07_purge(self):
        st = ctl_json("queue", "stats", conf=self.conf)
        finished = sum(st["by_state"][s] for s in ("succeeded", "failed", "cancelled"))
        self.assertGreater(finished, 0)
        out = ctl_json("queue", "purge", "--older-than", "7d", conf=self.conf)
        self.assertEqual(out, {"purged": 0})
        p = self.run_ctl("queue", "purge", "--older-than", "0s")
        self.assertIn("purged %d finished operations" % finished, p.stdout)
        st = ctl_json("queue", "stats", conf=self.conf)
        self.assertEqual(st["by_state"]["succeeded"] + st["by_state"]["failed"] +
                         st["by_state"]["cancelled"], 0)
        self.run_ctl("queue", "show", "1", expect=NOT_FOUND)
        self.assertEqual(ctl_json("queue", "purge", conf=self.conf), {"purged": 0})

    def test_08_stopped(self):
        op_id, _, _ = self.submit("ctl-parked", gate=True)
        wait_until(lambda: self.state_of(op_id) == "waiting", 60, "the gate")
        self.stack.down()
        lst = ctl_json("queue", "list", conf=self.conf)
        self.assertEqual(lst["daemon"]["state"], "stopped")
        self.assertIn(op_id, lst["resume_on_start"])
        p = self.run_ctl("queue", "list")
        self.assertIn("powervmd is not running. When it starts", p.stdout)
        p = self.run_ctl("queue", "show", str(op_id))
        self.assertIn("resumes when it starts", p.stdout)
        st = ctl_json("queue", "stats", conf=self.conf)
        self.assertIn(op_id, st["resume_on_start"])
        for args in (["host"], ["pause"], ["queue", "cancel", str(op_id)]):
            p = self.run_ctl(*args, expect=NO_DAEMON)
            self.assertIn("powervmd is not running", p.stderr)


class WatchPty(unittest.TestCase):
    """queue watch in a pseudo-terminal."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="ctl-watch-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        os.mkdir(os.path.join(cls.root, "fixture"))
        cls.fx_state, cls.fx_conf = make_fixture(os.path.join(cls.root, "fixture"))
        cls.stack = Stack(cls.root)
        cls.addClassCleanup(cls.stack.down)
        cls.stack.up()

    def watch(self, *args, conf=None):
        proc = PtyProc([CTL, "--config", conf or self.stack.conf, "queue", "watch"] +
                       list(args), ctl_env())
        self.addCleanup(proc.close)
        return proc

    def submit_gate(self, name):
        path, _ = example_op(self.root, name, gate=True)
        p = ctl("--json", "submit", path, conf=self.stack.conf)
        self.assertEqual(p.returncode, OK, p.stderr)
        return json.loads(p.stdout)["id"]

    def signal_go(self, op_id):
        status, body = api(self.stack.sock, "POST", "/v1/operations/%d/signal" % op_id,
                           {"name": "go", "value": True})
        self.assertEqual(status, 200, body)

    def check_bar(self, out, op_id):
        text = out.decode(errors="replace")
        self.assertIn("\r", text)
        self.assertIn("\x1b[K", text)
        self.assertRegex(text, r"operation %d test_steps \[[#-]{30}\]" % op_id)
        seen = {int(x) for x in re.findall(r"\]\s+(\d+)%", text)}
        self.assertIn(100, seen)
        self.assertGreaterEqual(len(seen), 2, text)
        self.assertIn("operation %d succeeded" % op_id, text)

    def test_watch_through_daemon(self):
        op_id = self.submit_gate("ctl-pty-gate")
        w = self.watch(str(op_id))
        w.read_until(lambda o: b"waiting" in o, 60, "waiting at the gate")
        self.assertIsNone(w.p.poll())  # still watching
        self.signal_go(op_id)
        self.assertEqual(w.wait(60), OK)
        self.check_bar(w.out, op_id)

    def test_watch_from_journal(self):
        # A socket that does not exist: the watch reads the journal, which the daemon writes.
        op_id = self.submit_gate("ctl-pty-journal")
        conf = os.path.join(self.root, "journal-only.conf")
        write_conf(conf, os.path.join(self.stack.dir, "state-1"),
                   os.path.join(self.root, "nothing.sock"))
        w = self.watch(str(op_id), conf=conf)
        w.read_until(lambda o: b"waiting" in o, 60, "waiting at the gate")
        self.signal_go(op_id)
        self.assertEqual(w.wait(60), OK)
        self.check_bar(w.out, op_id)
        # The daemon holds the journal: not "not running".
        self.assertNotIn(b"not running", w.out)

    def test_watch_failed(self):
        path, _ = example_op(self.root, "ctl-pty-fail", fail_at="power_off")
        p = ctl("--json", "submit", path, conf=self.stack.conf)
        op_id = json.loads(p.stdout)["id"]
        w = self.watch(str(op_id))
        self.assertEqual(w.wait(60), OP_FAILED)
        self.assertIn(b"operation %d failed" % op_id, w.out)

    def test_watch_daemon_stopped_interrupt(self):
        # The fixture journal, nobody running: the watch says so, shows the bar, and stops
        # on Ctrl-C.
        w = self.watch("5", conf=self.fx_conf)
        w.read_until(lambda o: b"40%" in o and b"powervmd is not running" in o, 30,
                     "the bar and the notice")
        self.assertIn(b"[############------------------]", w.out)
        self.assertIsNone(w.p.poll())
        w.p.send_signal(signal.SIGINT)
        self.assertEqual(w.wait(30), 130)


def main():
    parts = {"journal": Journal, "daemon": Daemon, "watch_pty": WatchPty}
    names = sys.argv[1:] or list(parts)
    for n in names:
        if n not in parts:
            sys.exit("usage: ctl_test.py [%s]..." % "|".join(parts))
    for exe in (CTL, FIXTURE):
        if not os.access(exe, os.X_OK):
            sys.exit("ctl_test.py: %s is missing: build first" % exe)
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for n in names:
        suite.addTests(loader.loadTestsFromTestCase(parts[n]))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
