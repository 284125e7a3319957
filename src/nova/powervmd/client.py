"""client: powervmd's local API (docs/api.md) over its Unix socket.

HTTP/1.1 with http.client on an AF_UNIX socket made by the standard socket module: under
nova-compute, eventlet has monkey-patched that module, so every connect, send and receive
here is green and a long-poll never stalls the compute service. No C extension, no
blocking call of another kind. One connection per request: a Unix socket costs little,
and no connection is ever shared between green threads.

Errors: PowerVMDUnreachable when the socket cannot be reached or the answer does not come
(the caller decides whether to wait and try again); ApiError for an HTTP error answer,
with powervmd's error code, message and field.
"""
import http.client
import json
import socket
import time
import urllib.parse

TERMINAL = ("succeeded", "failed", "cancelled")


class PowerVMDUnreachable(Exception):
    """powervmd did not answer: socket missing, connection refused, timeout, cut answer."""

    def __init__(self, socket_path, reason):
        self.socket_path = socket_path
        self.reason = str(reason)
        super().__init__("powervmd is unreachable at %s: %s" % (socket_path, self.reason))


class ApiError(Exception):
    """An HTTP error answer of powervmd: status, and its {"error": {...}} object."""

    def __init__(self, status, code, message, field=None, body=None):
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.body = body or {}
        super().__init__("powervmd answered %d %s: %s%s" % (
            status, code, message, " (field %s)" % field if field else ""))


class OperationTimeout(Exception):
    """The shim stopped waiting for an operation that is still active in powervmd."""

    def __init__(self, op_id, state, waited):
        self.op_id = op_id
        self.state = state
        super().__init__("operation %s still %s after %.0f s" % (op_id, state, waited))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
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


def _decode(status, raw):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        if status < 300:
            raise ApiError(status, "bad_answer", "answer is not JSON: %r" % raw[:200])
        return None


def _raise_for(status, body):
    err = (body or {}).get("error") if isinstance(body, dict) else None
    err = err or {}
    raise ApiError(status, err.get("code") or "http_%d" % status,
                   err.get("message") or "HTTP %d" % status, err.get("field"), body)


class _Upload:
    """A PUT whose body is written chunk by chunk (file-like: write()), then finish()ed."""

    def __init__(self, client, conn, path, length):
        self._client = client
        self._conn = conn
        self._path = path
        self._length = length
        self.sent = 0

    def write(self, chunk):
        if not chunk:
            return
        if self._length is not None:
            if self.sent + len(chunk) > self._length:
                self.abort()
                raise ValueError("more than the announced %d bytes" % self._length)
            data = chunk
        else:
            data = b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n"
        try:
            self._conn.send(data)
        except (OSError, http.client.HTTPException) as e:
            self.abort()
            raise PowerVMDUnreachable(self._client.socket_path, e)
        self.sent += len(chunk)

    def abort(self):
        self._conn.close()

    def finish(self):
        """Ends the body and reads the answer: (status, JSON body). Error answers raise."""
        try:
            if self._length is None:
                self._conn.send(b"0\r\n\r\n")
            elif self.sent != self._length:
                self.abort()
                raise ValueError("%d bytes sent of the announced %d" % (self.sent,
                                                                       self._length))
            r = self._conn.getresponse()
            raw = r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            raise PowerVMDUnreachable(self._client.socket_path, e)
        finally:
            self._conn.close()
        body = _decode(status, raw)
        if status >= 400:
            _raise_for(status, body)
        return status, body


class Client:
    """powervmd's API. socket_path: powervm_api_socket; timeout: seconds per request
    (long-polls add their wait); long_poll: seconds of each GET ?wait=."""

    def __init__(self, socket_path, timeout=60.0, long_poll=60.0, sleep=None, clock=None):
        self.socket_path = socket_path
        self.timeout = float(timeout)
        self.long_poll = float(long_poll)
        # looked up at call time: eventlet's green sleep once nova-compute monkey-patched
        self._sleep = sleep or (lambda s: time.sleep(s))
        self._clock = clock or (lambda: time.monotonic())

    # ---- transport ----
    def request(self, method, path, body=None, headers=None, timeout=None, ok404=False):
        """One request; returns (status, decoded JSON or None). Error answers raise ApiError
        (404 returns (404, body) when ok404), no answer raises PowerVMDUnreachable."""
        h = {}
        data = None
        if body is not None:
            data = json.dumps(body, default=str).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn = _UnixConnection(self.socket_path, timeout or self.timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            raise PowerVMDUnreachable(self.socket_path, e)
        finally:
            conn.close()
        out = _decode(status, raw)
        if status == 404 and ok404:
            return status, out
        if status >= 400:
            _raise_for(status, out)
        return status, out

    def upload(self, path, headers=None, length=None):
        """Starts a streamed PUT of application/octet-stream: returns an object with
        write(chunk) and finish() -> (status, body). length None: chunked encoding."""
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            conn.putrequest("PUT", path, skip_accept_encoding=True)
            conn.putheader("Content-Type", "application/octet-stream")
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if length is None:
                conn.putheader("Transfer-Encoding", "chunked")
            else:
                conn.putheader("Content-Length", str(int(length)))
            conn.endheaders()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise PowerVMDUnreachable(self.socket_path, e)
        return _Upload(self, conn, path, length)

    # ---- reads ----
    def healthz(self):
        """(True, body) when powervmd is ready, (False, reason) otherwise. Never raises."""
        try:
            status, body = self.request("GET", "/healthz", timeout=min(self.timeout, 10.0))
            return True, body
        except PowerVMDUnreachable as e:
            return False, "powervmd is unreachable (%s)" % e.reason
        except ApiError as e:
            st = (e.body or {}).get("status") if isinstance(e.body, dict) else None
            return False, "powervmd is not ready (%s)" % (st or e.message)

    def host(self):
        return self.request("GET", "/v1/host")[1]

    def instances(self):
        return self.request("GET", "/v1/instances")[1]["instances"]

    def instance(self, instance_uuid):
        """The instance, or None when powervmd knows no such partition."""
        status, body = self.request("GET", "/v1/instances/%s" % instance_uuid, ok404=True)
        return None if status == 404 else body

    def events(self, after, wait=None, limit=None):
        q = {"after": int(after)}
        if wait:
            q["wait"] = "%g" % wait
        if limit:
            q["limit"] = int(limit)
        return self.request("GET", "/v1/events?" + urllib.parse.urlencode(q),
                            timeout=self.timeout + (wait or 0))[1]

    def image_cached(self, image_id):
        status, _ = self.request("GET", "/v1/images/%s" % urllib.parse.quote(image_id, ""),
                                 ok404=True)
        return status == 200

    # ---- operations ----
    def submit(self, op_type, instance_uuid, params, idempotency_key, request_id=None,
               deadline_s=None):
        """Submits an operation; returns (id, existing). A lost answer is sent again with the
        same idempotency key (powervmd then returns the operation it already has), for up
        to `timeout` seconds."""
        body = {"type": op_type, "params": params, "idempotency_key": idempotency_key}
        if instance_uuid:
            body["instance_uuid"] = instance_uuid
        if request_id:
            body["request_id"] = request_id[:127]
        if deadline_s:
            body["deadline_s"] = deadline_s
        end = self._clock() + self.timeout
        delay = 0.2
        while True:
            try:
                status, out = self.request("POST", "/v1/operations", body)
                return out["id"], bool(out.get("existing"))
            except PowerVMDUnreachable:
                if self._clock() + delay > end:
                    raise
            except ApiError as e:
                if e.status != 503 or self._clock() + delay > end:
                    raise
            self._sleep(delay)
            delay = min(delay * 2, 5.0)

    def operation(self, op_id, wait=None):
        path = "/v1/operations/%d" % int(op_id)
        if wait:
            path += "?wait=%g" % wait
        return self.request("GET", path, timeout=self.timeout + (wait or 0))[1]

    def wait(self, op_id, timeout=0):
        """Long-polls until the operation is terminal and returns it. timeout 0: no limit of
        the shim's own (powervmd's deadline ends every operation). powervmd being away
        (restart) is waited out for up to `self.timeout` seconds at a time."""
        start = self._clock()
        unreachable_since = None
        while True:
            wait = self.long_poll
            if timeout:
                left = start + timeout - self._clock()
                if left <= 0:
                    op = self.operation(op_id)
                    if op["state"] in TERMINAL:
                        return op
                    raise OperationTimeout(op_id, op["state"], self._clock() - start)
                wait = max(0.1, min(wait, left))
            try:
                op = self.operation(op_id, wait=wait)
                unreachable_since = None
            except PowerVMDUnreachable:
                now = self._clock()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.timeout:
                    raise
                self._sleep(1.0)
                continue
            if op["state"] in TERMINAL:
                return op

    def signal(self, op_id, name, value):
        return self.request("POST", "/v1/operations/%d/signal" % int(op_id),
                            {"name": name, "value": value})[1]

    def cancel(self, op_id):
        return self.request("POST", "/v1/operations/%d/cancel" % int(op_id))[1]

    def reconcile(self, instances):
        return self.request("POST", "/v1/reconcile", {"instances": instances})[1]
