"""Fixtures and helpers for Herald's black-box suite.

Every server started here (redis-server, herald) listens on 127.0.0.1 and is stopped by its
PID when the fixture that started it ends. Herald's output is kept in a temp file and attached
to the report of any test that fails while it runs.
"""

from __future__ import annotations

import base64
import hashlib
import http.client as httpclient
import inspect
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PUBLIC_DIR = REPO / "public"
HERALD_BIN = Path(os.environ.get("HERALD_BIN", str(REPO / ".build" / "debug" / "herald")))
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
START_TIMEOUT = 15.0  # seconds a server has to come up
STOP_TIMEOUT = 10.0  # seconds a server has to exit after SIGTERM

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _raise_fd_limit():
    """The multiplex test opens 1,000 sockets on each side; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


_raise_fd_limit()


# --------------------------------------------------------------------------- small helpers

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=5.0, interval=0.05, what="condition"):
    """Poll `predicate` until it returns a truthy value; return that value or fail the test."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polled conditions may raise while not ready
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def http(method, url, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection. Returns (status, headers, body bytes).

    `headers` of the answer is an http.client.HTTPMessage (case-insensitive `.get`)."""
    parts = urllib.parse.urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


def http_json(method, url, body=None, headers=None, timeout=10.0):
    """Like http() but decodes the body as JSON (fails the test with the raw body if it is not)."""
    status, hdrs, data = http(method, url, body, headers, timeout)
    try:
        decoded = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        pytest.fail(f"{method} {url} answered {status} with a body that is not JSON: {data[:300]!r}")
    return status, hdrs, decoded


class RawResult(bytes):
    """Bytes read from a raw socket; `.closed` is True when the server closed the connection."""

    closed: bool = False


def raw_exchange(port, data: bytes, read_timeout=2.0, until=None, host="127.0.0.1"):
    """Send exact bytes on a fresh TCP connection and read what comes back.

    Reading stops when the server closes the connection, when `until(buffer)` is true, or when
    nothing new arrived for `read_timeout` seconds. Returns a RawResult (bytes + `.closed`)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        if data:
            sock.sendall(data)
        buf, closed = read_available(sock, read_timeout, until)
    result = RawResult(buf)
    result.closed = closed
    return result


def read_available(sock, read_timeout=2.0, until=None, total_timeout=None):
    """Read from `sock` until EOF, `until(buf)`, `read_timeout` of silence, or `total_timeout`.

    Returns (bytes, closed)."""
    buf = b""
    start = time.monotonic()
    last = start
    while True:
        now = time.monotonic()
        if total_timeout is not None and now - start >= total_timeout:
            return buf, False
        wait = read_timeout - (now - last)
        if total_timeout is not None:
            wait = min(wait, total_timeout - (now - start))
        if wait <= 0:
            return buf, False
        ready, _, _ = select.select([sock], [], [], wait)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
        last = time.monotonic()
        if until is not None and until(buf):
            return buf, False


@dataclass
class HTTPResponse:
    version: str
    status: int
    reason: str
    headers: dict  # lower-case name -> value (repeated headers joined with ", ")
    body: bytes
    raw_headers: list = field(default_factory=list)

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def parse_responses(buf: bytes, head_requests=()):
    """Split a byte stream into HTTP responses (Content-Length or chunked bodies).

    `head_requests` holds the indexes of responses that answer HEAD (they carry no body).
    Returns (list of HTTPResponse, leftover bytes)."""
    responses = []
    rest = buf
    while True:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            return responses, rest
        head = rest[:end].decode("latin-1")
        lines = head.split("\r\n")
        version, _, tail = lines[0].partition(" ")
        code, _, reason = tail.partition(" ")
        headers = {}
        raw_headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            raw_headers.append((name.strip(), value.strip()))
            key = name.strip().lower()
            headers[key] = headers[key] + ", " + value.strip() if key in headers else value.strip()
        after = rest[end + 4:]
        status = int(code)
        if len(responses) in head_requests or status in (204, 304) or 100 <= status < 200:
            body, rest = b"", after
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            pos = 0
            while True:
                line_end = after.find(b"\r\n", pos)
                if line_end < 0:
                    return responses, rest
                size = int(after[pos:line_end].split(b";")[0], 16)
                pos = line_end + 2
                if size == 0:
                    trailer_end = after.find(b"\r\n\r\n", pos - 2)
                    if trailer_end < 0:
                        return responses, rest
                    pos = trailer_end + 4
                    break
                if len(after) < pos + size + 2:
                    return responses, rest
                body += after[pos:pos + size]
                pos += size + 2
            rest = after[pos:]
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if len(after) < length:
                return responses, rest
            body, rest = after[:length], after[length:]
        else:
            # No length: the body runs to the end of the connection.
            body, rest = after, b""
        responses.append(HTTPResponse(version, status, reason, headers, body, raw_headers))


def count_complete_responses(n, head_requests=()):
    """An `until` predicate for raw_exchange: stop once `n` complete responses arrived."""
    def predicate(buf):
        try:
            responses, _ = parse_responses(buf, head_requests)
        except ValueError:
            return False
        return len(responses) >= n
    return predicate


def assert_json_error(status, body, expected_status, expected_code, context=""):
    """Check an HTTP error answer: status and the README's {"error":..., "message":...} body."""
    text = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
    assert status == expected_status, (
        f"{context}: expected {expected_status} {expected_code}, got {status} {text[:300]!r}")
    try:
        decoded = body if isinstance(body, dict) else json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        pytest.fail(f"{context}: {status} body is not JSON: {text[:300]!r}")
    assert decoded.get("error") == expected_code, f"{context}: error code in {decoded}"
    assert isinstance(decoded.get("message"), str) and decoded["message"], (
        f"{context}: no human message in {decoded}")
    return decoded


# --------------------------------------------------------------------------- raw WebSocket

def ws_handshake_request(path="/subscribe", host="127.0.0.1", key=None, version="13", extra=""):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version:
        lines.append(f"Sec-WebSocket-Version: {version}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode(), key


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class RawWebSocket:
    """A hand-driven WebSocket client: exact frames out, frames parsed as they come back."""

    def __init__(self, port, path="/subscribe", timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        request, key = ws_handshake_request(path)
        self.sock.sendall(request)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"no handshake answer, got {buf!r}")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed during handshake, got {buf!r}")
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        self.handshake = head.decode("latin-1")
        status_line = self.handshake.split("\r\n")[0]
        assert status_line.startswith("HTTP/1.1 101"), f"handshake answered {self.handshake!r}"
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in self.handshake.split("\r\n")[1:])}
        assert headers.get("sec-websocket-accept") == ws_accept(key), self.handshake
        self.closed = False

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length_override=None):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length_override is None else length_override
        mask_bit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", first, mask_bit | n)
        elif n < 65536:
            head = struct.pack("!BBH", first, mask_bit | 126, n)
        else:
            head = struct.pack("!BBQ", first, mask_bit | 127, n)
        if mask:
            key = os.urandom(4)
            masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            return head + key + masked
        return head + payload

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(0x1, text, **kw)

    def _fill(self, need, deadline):
        while len(self.buf) < need:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"waiting for {need} bytes, have {len(self.buf)}")
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                raise EOFError(f"connection closed with {len(self.buf)} bytes of a frame pending")
            self.buf += chunk

    def recv_frame(self, timeout=5.0):
        """Return (fin, opcode, payload). Raises EOFError when the server closed TCP,
        TimeoutError when nothing complete arrived within `timeout`."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frames must not be masked (RFC 6455 5.1)"
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        self._fill(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_until_close(self, timeout=5.0):
        """Read frames until a close frame; return (close code or None, reason, frames before)."""
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            fin, opcode, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:], frames
            frames.append((fin, opcode, payload))

    def wait_eof(self, timeout=5.0):
        """True when the server closes the TCP connection within `timeout` (data is discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    self.closed = True
                    return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def close_code(payload: bytes):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


# --------------------------------------------------------------------------- redis

class RedisServer:
    def __init__(self, port, proc, password=None, logfile=None):
        self.port = port
        self.proc = proc
        self.password = password
        self.logfile = logfile
        self.url = f"redis://127.0.0.1:{port}"

    def cli(self, *args, db=None, timeout=10.0, check=True) -> str:
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port)]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        if db is not None:
            cmd += ["-n", str(db)]
        cmd += [str(a) for a in args]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{cmd} failed ({done.returncode}): {done.stderr!r}")
        return done.stdout.decode("utf-8", "replace")

    def ping(self) -> bool:
        try:
            return self.cli("PING", timeout=2, check=False).strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def stop(self):
        stop_process(self.proc)
        _remove(self.logfile)


def _remove(path):
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def stop_process(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
    return proc.returncode


def launch_redis(port=None, extra_args=(), password=None) -> RedisServer:
    """Start a private redis-server (exec'ed directly: its PID is ours to kill) and wait for PING."""
    last_error = None
    for _ in range(5):
        p = port or free_port()
        args = [REDIS_SERVER, "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]
        if password:
            args += ["--requirepass", password]
        args += list(extra_args)
        log = tempfile.NamedTemporaryFile(prefix=f"redis-{p}-", suffix=".log", delete=False)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=tempfile.gettempdir())
        server = RedisServer(p, proc, password, log.name)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if server.ping():
                return server
            time.sleep(0.05)
        stop_process(proc)
        last_error = Path(log.name).read_text(errors="replace")[-2000:]
        _remove(log.name)
        if port:
            break
    raise RuntimeError(f"redis-server did not start: {last_error}")


@pytest.fixture(scope="session")
def redis_server():
    server = launch_redis()
    yield server
    server.stop()


@pytest.fixture
def start_redis():
    """Factory: start_redis(port=None, extra_args=(), password=None) -> RedisServer."""
    started = []

    def start(port=None, extra_args=(), password=None):
        server = launch_redis(port, extra_args, password)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- herald

_live_heralds: list["HeraldServer"] = []


class HeraldServer:
    def __init__(self, port, proc, logfile, args):
        self.port = port
        self.proc = proc
        self.logfile = logfile
        self.args = args
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def log(self, tail=6000) -> str:
        try:
            return Path(self.logfile).read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        code = stop_process(self.proc, sig)
        if self in _live_heralds:
            _live_heralds.remove(self)
        if not os.environ.get("HERALD_KEEP_LOGS"):
            _remove(self.logfile)  # a failing test already has its tail in the report
        return code


def herald_env(env=None):
    """The test process's environment without HERALD_* variables, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    clean.update(env or {})
    return clean


def require_binary():
    if not HERALD_BIN.exists():
        pytest.fail(f"herald binary not found at {HERALD_BIN} (build it, or set HERALD_BIN)")


def run_herald(*args, env=None, timeout=10.0):
    """Run herald to completion (for --help and refused configurations).

    Returns subprocess.CompletedProcess with text stdout/stderr; fails the test when herald is
    still running after `timeout` seconds (it should have refused to start)."""
    require_binary()
    proc = subprocess.Popen([str(HERALD_BIN), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=herald_env(env),
                            text=True, errors="replace")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"herald {' '.join(map(str, args))} (env {env}) was still running after "
                    f"{timeout}s; output: {out[-1000:]!r} {err[-1000:]!r}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def launch_herald(*extra_args, env=None, redis_url=None, port=None, redis_flag=True,
                  port_flag=True, loops=2, public=None, echo=True, wait_ready=True,
                  ready_port=None) -> HeraldServer:
    require_binary()
    port = port or free_port()
    args = [str(HERALD_BIN), "--host", "127.0.0.1"]
    if port_flag:
        args += ["--port", str(port)]
    if redis_flag:
        args += ["--redis", redis_url]
    if loops is not None:
        args += ["--loops", str(loops)]
    args += ["--public", str(public or PUBLIC_DIR)]
    if echo:
        args.append("--echo")
    args += [str(a) for a in extra_args]
    log = tempfile.NamedTemporaryFile(prefix=f"herald-{port}-", suffix=".log", delete=False)
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=herald_env(env), cwd=str(REPO))
    server = HeraldServer(ready_port or port, proc, log.name, args)
    _live_heralds.append(server)
    if wait_ready:
        try:
            wait_herald_ready(server)
        except BaseException:
            server.stop()
            raise
    return server


def wait_herald_ready(server: HeraldServer, timeout=START_TIMEOUT, ready=True):
    """Wait until /healthz (and, when `ready`, /readyz) answer 200."""
    deadline = time.monotonic() + timeout
    paths = ["/healthz", "/readyz"] if ready else ["/healthz"]
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"herald exited with {server.proc.returncode} during start; "
                        f"args {server.args}; output:\n{server.log()}")
        try:
            if all(http("GET", server.base_url + p, timeout=2)[0] == 200 for p in paths):
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    pytest.fail(f"herald did not become ready on port {server.port} within {timeout}s "
                f"(last error {last!r}); output:\n{server.log()}")


@pytest.fixture(scope="session")
def herald(redis_server):
    server = launch_herald(redis_url=redis_server.url)
    yield server
    server.stop()


@pytest.fixture
def start_herald(redis_server):
    """Factory: start_herald(*extra_args, env=None, redis_url=None, **options) -> HeraldServer.

    Options: port, redis_flag (pass --redis; default True), port_flag, loops, public, echo,
    wait_ready. redis_url defaults to the session redis."""
    started = []

    def start(*extra_args, env=None, redis_url=None, **options):
        server = launch_herald(*extra_args, env=env, redis_url=redis_url or redis_server.url,
                               **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in list(_live_heralds):
            report.sections.append((f"herald :{server.port} output (tail)", server.log(4000)))


def unique(prefix="ch"):
    return f"{prefix}-{os.urandom(5).hex()}"


# --------------------------------------------------------------------------- WebSocket clients

def subscribe_url(herald_or_port, channels=(), patterns=(), shards=(), fmt=None, path="/subscribe"):
    port = herald_or_port if isinstance(herald_or_port, int) else herald_or_port.port
    query = [("channel", c) for c in channels] + [("pattern", p) for p in patterns]
    query += [("shard", s) for s in shards]
    if fmt:
        query.append(("format", fmt))
    qs = urllib.parse.urlencode(query)
    return f"ws://127.0.0.1:{port}{path}" + (f"?{qs}" if qs else "")


def ws_connect(url, **kw):
    from websockets.sync.client import connect
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 3)
    kw.setdefault("max_size", None)
    if "legacy" in inspect.signature(connect).parameters:
        kw.setdefault("legacy", True)  # websockets >= 17: a plain (non-context-manager) connection
    return connect(url, **kw)


def recv_json(ws, timeout=5.0):
    """Next text frame from `ws`, decoded as JSON (fails on timeout or a binary frame)."""
    try:
        msg = ws.recv(timeout=timeout)
    except TimeoutError:
        pytest.fail(f"no WebSocket message within {timeout}s")
    assert isinstance(msg, str), f"expected a JSON text frame, got binary {msg[:100]!r}"
    try:
        return json.loads(msg)
    except json.JSONDecodeError:
        pytest.fail(f"WebSocket text frame is not JSON: {msg[:300]!r}")


def assert_silent(ws, wait=0.5):
    """Nothing arrives on `ws` for `wait` seconds."""
    try:
        msg = ws.recv(timeout=wait)
    except TimeoutError:
        return
    pytest.fail(f"unexpected WebSocket message: {msg!r}")


def wait_subscribed(ws, expected: dict, timeout=5.0):
    """Read answers until one `subscribed` answer per kind in `expected` ({kind: [names]}) came.

    Each answer must be exactly {"type":"subscribed","kind":k,"names":[...]} (names compared
    without regard to order). Returns the list of answers."""
    pending = {k: sorted(v) for k, v in expected.items() if v}
    answers = []
    deadline = time.monotonic() + timeout
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"still waiting for subscribed answers {pending}; got {answers}")
        msg = recv_json(ws, remaining)
        answers.append(msg)
        assert msg.get("type") == "subscribed", f"expected a subscribed answer, got {msg}"
        assert set(msg) == {"type", "kind", "names"}, f"unexpected keys in {msg}"
        kind = msg["kind"]
        assert kind in pending, f"unexpected subscribed answer {msg}; waiting for {pending}"
        assert sorted(msg["names"]) == pending.pop(kind), f"names in {msg} vs {expected}"
    return answers


def open_subscriber(herald_or_port, channels=(), patterns=(), shards=(), fmt=None):
    """A websockets client on /subscribe whose subscriptions Redis has confirmed."""
    ws = ws_connect(subscribe_url(herald_or_port, channels, patterns, shards, fmt))
    try:
        wait_subscribed(ws, {"channel": list(channels), "pattern": list(patterns),
                             "shard": list(shards)})
    except BaseException:
        ws.close()
        raise
    return ws


def connected_clients(redis):
    """Clients Redis counts right now (INFO clients), Herald's links among them."""
    for line in redis.cli("INFO", "clients").splitlines():
        if line.startswith("connected_clients:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("INFO clients has no connected_clients")


def publish(herald, channel, message, sharded=False, expect_status=200):
    """POST /publish/{channel}; returns the decoded JSON answer."""
    path = "/publish/" + urllib.parse.quote(channel, safe="")
    if sharded:
        path += "?sharded=true"
    body = message.encode("utf-8") if isinstance(message, str) else message
    status, _, answer = http_json("POST", herald.base_url + path, body)
    assert status == expect_status, f"POST {path} answered {status} {answer}"
    return answer


# --------------------------------------------------------------------------- redis cluster

CLUSTER_SLOTS = 16384


class RedisCluster:
    """A Redis Cluster of masters on loopback ports (no replicas), one redis-server per temp dir.

    `.ports` (masters, in creation order), `.url` (comma-separated redis:// seeds of all of them),
    `.cli(port, *args)` (redis-cli on one node, no redirection following), `.owner(key)` (the port
    whose node owns the key's or sharded channel's slot), `.node_id(port)`, and slot-migration
    helpers (`migrate_slot`, or `begin_migration` / `move_keys` / `finish_migration` to stop
    half-way, as `redis-cli --cluster reshard` does)."""

    def __init__(self, ports, procs, dirs, logs):
        self.ports = list(ports)
        self.procs = procs
        self.dirs = dirs
        self.logs = logs
        self.url = ",".join(f"redis://127.0.0.1:{p}" for p in self.ports)
        self._ids = {}

    def cli(self, port, *args, timeout=10.0, check=True) -> str:
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *[str(a) for a in args]]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout)
        out = done.stdout.decode("utf-8", "replace")
        if check and (done.returncode != 0 or out.startswith(("ERR", "MOVED", "ASK", "CROSSSLOT",
                                                              "CLUSTERDOWN", "TRYAGAIN"))):
            raise AssertionError(f"{cmd} failed ({done.returncode}): {out!r} {done.stderr!r}")
        return out

    def cli_json(self, port, *args, timeout=10.0):
        """A command's reply decoded from `redis-cli --json` (RESP2 shapes)."""
        cmd = [REDIS_CLI, "-2", "--json", "-h", "127.0.0.1", "-p", str(port), *[str(a) for a in args]]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{cmd} failed ({done.returncode}): {done.stderr!r}")
        return json.loads(done.stdout.decode("utf-8"))

    def info(self, port, section="cluster") -> dict:
        lines = self.cli(port, "CLUSTER", "INFO") if section == "cluster" else self.cli(port, "INFO", section)
        return dict(line.strip().split(":", 1) for line in lines.splitlines() if ":" in line)

    def node_id(self, port) -> str:
        if port not in self._ids:
            self._ids[port] = self.cli(port, "CLUSTER", "MYID").strip()
        return self._ids[port]

    def keyslot(self, key) -> int:
        return int(self.cli(self.ports[0], "CLUSTER", "KEYSLOT", key).strip())

    def slot_table(self, via=None) -> list:
        """[(first slot, last slot, master port)] from CLUSTER SLOTS asked of `via` (a port)."""
        reply = self.cli_json(via or self.ports[0], "CLUSTER", "SLOTS")
        return sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in reply)

    def slot_owner(self, slot, via=None) -> int:
        for first, last, port in self.slot_table(via):
            if first <= slot <= last:
                return port
        raise AssertionError(f"slot {slot} has no owner in {self.slot_table(via)}")

    def owner(self, key_or_channel, via=None) -> int:
        """The port of the master that owns the slot of a key or sharded channel."""
        return self.slot_owner(self.keyslot(key_or_channel), via)

    def names_on_every_master(self, prefix):
        """{port: name} with one fresh unique name `prefix-...` per master."""
        table = self.slot_table()
        found = {}
        for _ in range(500):
            name = unique(prefix)
            slot = self.keyslot(name)
            port = next(p for first, last, p in table if first <= slot <= last)
            found.setdefault(port, name)
            if len(found) == len(self.ports):
                return found
        raise AssertionError(f"no name for every master: {found}")

    # -- slot migration (the steps `redis-cli --cluster reshard` takes)

    def begin_migration(self, slot, dst):
        """IMPORTING on `dst`, MIGRATING on the current owner; returns the source port."""
        src = self.slot_owner(slot)
        assert src != dst, f"slot {slot} is already on {dst}"
        self.cli(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(src))
        self.cli(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(dst))
        return src

    def move_keys(self, slot, src, dst):
        """MIGRATE every key of `slot` from `src` to `dst`; returns the keys moved."""
        moved = []
        while True:
            keys = [k for k in self.cli(src, "CLUSTER", "GETKEYSINSLOT", slot, 100).splitlines() if k]
            if not keys:
                return moved
            out = self.cli(src, "MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
            assert out.strip() in ("OK", "NOKEY"), f"MIGRATE answered {out!r}"
            moved += keys

    def finish_migration(self, slot, dst, src):
        """SETSLOT NODE on the destination, then the source, then every other master."""
        dst_id = self.node_id(dst)
        for port in [dst, src] + [p for p in self.ports if p not in (dst, src)]:
            self.cli(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        for port in self.ports:
            wait_until(lambda p=port: self.slot_owner(slot, via=p) == dst, timeout=10,
                       what=f"node :{port} to see slot {slot} on :{dst}")

    def migrate_slot(self, slot, dst):
        """Move `slot` (and its keys) to the master on `dst`; returns the source port."""
        src = self.begin_migration(slot, dst)
        self.move_keys(slot, src, dst)
        self.finish_migration(slot, dst, src)
        return src

    def wait_ok(self, timeout=30.0):
        def all_ok():
            for port in self.ports:
                info = self.info(port)
                if (info.get("cluster_state") != "ok"
                        or info.get("cluster_slots_ok") != str(CLUSTER_SLOTS)
                        or info.get("cluster_known_nodes") != str(len(self.ports))):
                    return False
            # Every node agrees on the slot table.
            tables = [self.slot_table(via=p) for p in self.ports]
            return all(t == tables[0] for t in tables)
        wait_until(all_ok, timeout=timeout, interval=0.1, what="cluster_state:ok on every node")

    def stop(self):
        for proc in self.procs:
            stop_process(proc)
        for path in self.logs:
            _remove(path)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def _launch_cluster_node():
    """One cluster-enabled redis-server in its own temp dir; returns (port, proc, dir, log)."""
    last_error = None
    for _ in range(5):
        port, bus = free_port(), free_port()
        if bus == port:
            continue
        workdir = tempfile.mkdtemp(prefix=f"redis-cluster-{port}-")
        log = os.path.join(workdir, "redis.log")
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--cluster-port", str(bus),
                "--save", "", "--appendonly", "no"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=workdir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            done = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), "PING"],
                                  capture_output=True, timeout=5)
            if done.stdout.strip() == b"PONG":
                return port, proc, workdir, log
            time.sleep(0.05)
        stop_process(proc)
        last_error = Path(log).read_text(errors="replace")[-2000:]
        shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(f"cluster redis-server did not start: {last_error}")


def launch_redis_cluster(masters=3) -> RedisCluster:
    nodes = []
    try:
        for _ in range(masters):
            nodes.append(_launch_cluster_node())
        cluster = RedisCluster([n[0] for n in nodes], [n[1] for n in nodes],
                               [n[2] for n in nodes], [])
        create = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in cluster.ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout[-2000:]!r} "
                               f"{create.stderr[-2000:]!r}")
        cluster.wait_ok()
        return cluster
    except BaseException:
        for _, proc, workdir, _ in nodes:
            stop_process(proc)
            shutil.rmtree(workdir, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def redis_cluster():
    """A 3-master Redis Cluster for the session (see RedisCluster); stopped at the end."""
    cluster = launch_redis_cluster(3)
    yield cluster
    cluster.stop()
