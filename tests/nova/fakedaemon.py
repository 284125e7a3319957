"""fakedaemon: a scripted stand-in for powervmd's API on a Unix socket, in-process, for the
shim's unit tests (the tests against the real daemon are in test_shim_stack.py).

FakeDaemon(handler): handler(req) -> (status, body) where req has method, path, query,
headers, body (bytes, chunked bodies decoded) and json; body is a dict (sent as JSON),
bytes, or None. A handler returning DROP closes the connection without an answer.
Every request is recorded in .requests.
"""
import http.server
import json
import os
import socket
import tempfile
import threading
import urllib.parse

DROP = object()


class Request:
    def __init__(self, method, path, headers, body):
        u = urllib.parse.urlsplit(path)
        self.method = method
        self.path = u.path
        self.query = dict(urllib.parse.parse_qsl(u.query))
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body and headers.get(
                "Content-Type", "").startswith("application/json") else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%s %s>" % (self.method, self.path)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def address_string(self):
        return "unix"

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip(), 16)
                if n == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self):
        req = Request(self.command, self.path, dict(self.headers.items()), self._body())
        self.server.requests.append(req)
        out = self.server.handler(req)
        if out is DROP:
            self.close_connection = True
            return
        status, body = out
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode() + b"\n"
        else:
            data = body or b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class FakeDaemon:
    """Serves on its own accept loop (not socketserver's serve_forever, whose poll()
    selector is not green under eventlet): every wait here is on a socket, so it works
    with and without monkey-patching."""

    def __init__(self, handler):
        self.handler = handler
        self.requests = []
        self.dir = tempfile.mkdtemp(prefix="pvm-fake-")
        self.sock = os.path.join(self.dir, "api.sock")
        self._listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listen.bind(self.sock)
        self._listen.listen(64)
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stopped:
            try:
                conn, _ = self._listen.accept()
            except OSError:
                return
            if self._stopped:
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            _Handler(conn, "unix", self)
        except Exception:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self._stopped = True
        try:  # wake the accept loop
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.sock)
            s.close()
        except OSError:
            pass
        self._thread.join(5)
        self._listen.close()
        try:
            os.unlink(self.sock)
        except OSError:
            pass
        os.rmdir(self.dir)

    def of(self, method, path_prefix):
        return [r for r in self.requests if r.method == method and
                r.path.startswith(path_prefix)]
