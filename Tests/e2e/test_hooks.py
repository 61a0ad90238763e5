"""Backend authorization hooks (issue 10, item 2): with --hook-url, Herald asks the app's backend
before each connect, subscription and write, passing the browser's cookie; 2xx allows, 401/403
refuses, anything else (or silence) refuses as unavailable.

The backend here is a real HTTP/1.1 server on loopback whose policy each test sets; it records
every question Herald asks and every TCP connection Herald opens to it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import (
    assert_json_error,
    free_port,
    assert_silent,
    http,
    http_json,
    publish,
    read_available,
    recv_json,
    run_herald,
    unique,
    wait_subscribed,
    wait_until,
    ws_connect,
)

COOKIE = "sid=alice-session"


class Backend:
    """An app backend answering Herald's hook calls by `policy(question) -> (status, body)`.
    A policy may also return ("raw", bytes) to write those bytes as the whole answer, or
    ("sleep", seconds) to stay silent that long."""

    def __init__(self):
        self.questions: list[dict] = []
        self.connections = 0
        self.policy = lambda q: (200, b"")
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                backend.connections += 1

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                question = json.loads(self.rfile.read(length))
                question["_path"] = self.path
                question["_content_type"] = self.headers.get("Content-Type")
                backend.questions.append(question)
                answer = backend.policy(question)
                if answer[0] == "raw":
                    self.wfile.write(answer[1])
                    self.close_connection = True
                    return
                if answer[0] == "sleep":
                    time.sleep(answer[1])
                    self.close_connection = True
                    return
                status, body = answer[0], answer[1]
                body = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:1/")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/herald/authorize"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def asked(self, event=None, kind=None, name=None):
        return [q for q in self.questions
                if (event is None or q["event"] == event) and (kind is None or q["kind"] == kind)
                and (name is None or q["name"] == name)]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.stop()


@pytest.fixture
def hooked(start_herald, backend):
    """Herald asking `backend` about everything (extra flags may be given)."""
    def start(*extra):
        return start_herald("--hook-url", backend.url, "--hook-timeout", "1", *extra, loops=1)
    return start


def deny(names):
    """A policy refusing (403) these names, allowing everything else."""
    return lambda q: (403, {"error": "no"}) if q.get("name") in names else (200, b"")


def subscribe_ws(server, query, cookie=COOKIE):
    return ws_connect(f"{server.ws_url}/subscribe?{query}", additional_headers={"Cookie": cookie})


def closed_with(ws, timeout=5):
    """Reads until the server closes; returns (messages, close code)."""
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            messages.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        pass
    raise AssertionError(f"not closed within {timeout}s; got {messages}")


# --------------------------------------------------------------------------- connect and subscribe

def test_an_allowed_connection_subscribes_and_the_backend_sees_the_cookie(hooked, backend):
    server = hooked()
    channel = unique("hook")
    ws = subscribe_ws(server, f"channel={channel}")
    try:
        wait_subscribed(ws, {"channel": [channel]})
        publish(server, channel, "hello")
        assert recv_json(ws)["data"] == "hello"
    finally:
        ws.close()
    [connect] = backend.asked("connect")
    assert connect["kind"] == "websocket" and connect["name"] is None
    assert connect["headers"]["cookie"] == COOKIE
    assert connect["remote"].startswith("127.0.0.1:")
    assert connect["_path"] == "/herald/authorize" and connect["_content_type"] == "application/json"
    [sub] = backend.asked("subscribe", "channel", channel)
    assert sub["client"] == connect["client"] and len(connect["client"]) == 16
    # The HTTP publish was asked about too, with no client id.
    [pub] = backend.asked("publish", "channel", channel)
    assert pub["client"] is None


def test_a_refused_connect_closes_1008(hooked, backend):
    backend.policy = lambda q: (403, b"") if q["event"] == "connect" else (200, b"")
    server = hooked()
    messages, code = closed_with(subscribe_ws(server, "channel=a"))
    assert code == 1008
    assert messages and messages[0]["code"] == "forbidden", messages
    # Nothing was subscribed: the subscription was never asked about.
    assert not backend.asked("subscribe")


def test_a_refused_subscription_in_the_query_closes_1008(hooked, backend):
    backend.policy = deny({"secret"})
    server = hooked()
    messages, code = closed_with(subscribe_ws(server, "channel=open&channel=secret"))
    assert code == 1008 and messages[0]["code"] == "forbidden" and "secret" in messages[0]["message"]


@pytest.mark.parametrize("answer", [
    (500, b""),
    (302, b""),
    (200, b"not json"),  # a connect answer must be a JSON object (or empty)
    ("raw", b"SSH-2.0-OpenSSH_9.2\r\n"),
    ("raw", b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n" + b"x" * (1 << 20)),
    ("sleep", 3),
])
def test_a_connect_without_a_usable_answer_closes_1013(hooked, backend, answer):
    backend.policy = lambda q: answer
    server = hooked()
    started = time.monotonic()
    messages, code = closed_with(subscribe_ws(server, "channel=a"), timeout=8)
    assert code == 1013 and messages[0]["code"] == "hook_unavailable", (code, messages)
    # The deadline is --hook-timeout (1 s): a silent backend costs no more.
    assert time.monotonic() - started < 4
    assert http("GET", server.base_url + "/healthz")[0] == 200


def test_an_event_stream_is_answered_403_or_503(hooked, backend):
    server = hooked()
    backend.policy = lambda q: (401, b"") if q["event"] == "connect" else (200, b"")
    status, _, body = http("GET", f"{server.base_url}/events?channel=a", headers={"Cookie": COOKIE})
    assert_json_error(status, body, 403, "forbidden")
    assert backend.asked("connect")[0]["kind"] == "sse"
    backend.policy = lambda q: (503, b"")
    status, _, body = http("GET", f"{server.base_url}/events?channel=a", headers={"Cookie": COOKIE})
    assert_json_error(status, body, 503, "hook_unavailable")


def test_an_allowed_event_stream_delivers(hooked, backend):
    server = hooked()
    channel = unique("hook-sse")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(f"GET /events?channel={channel} HTTP/1.1\r\nHost: x\r\nCookie: {COOKIE}\r\n\r\n".encode())
        head, _ = read_available(sock, until=lambda b: b"\r\n\r\n" in b)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        wait_until(lambda: backend.asked("subscribe", "channel", channel), what="the subscription asked")
        time.sleep(0.2)
        publish(server, channel, "via-sse")
        assert b"via-sse" in read_available(sock, until=lambda b: b"via-sse" in b)[0]
    finally:
        sock.close()


def test_every_kind_of_subscription_is_asked_about(hooked, backend):
    server = hooked()
    ws = subscribe_ws(server, "channel=c1&pattern=p*&shard=s1&stream=st1&stream=st2")
    try:
        wait_until(lambda: len(backend.asked("subscribe")) == 5, what="five subscribe questions")
        asked = sorted((q["kind"], q["name"]) for q in backend.asked("subscribe"))
        assert asked == [("channel", "c1"), ("pattern", "p*"), ("shard", "s1"), ("stream", "st1"), ("stream", "st2")]
    finally:
        ws.close()
    worker = subscribe_ws(server, f"queue={unique('hq')}")
    group = subscribe_ws(server, "stream=gs&group=g1&consumer=c")
    try:
        wait_until(lambda: backend.asked("subscribe", "queue") and backend.asked("subscribe", "group", "g1"),
                   what="queue and group questions")
    finally:
        worker.close()
        group.close()


def test_a_refused_subscribe_op_is_an_error_and_the_connection_stays(hooked, backend, redis_server):
    backend.policy = deny({"secret"})
    server = hooked()
    ws = subscribe_ws(server, "")
    try:
        ws.send(json.dumps({"op": "subscribe", "channels": ["secret"], "id": 1}))
        answer = recv_json(ws)
        assert answer["type"] == "error" and answer["code"] == "forbidden" and answer["id"] == 1, answer
        ws.send(json.dumps({"op": "subscribe", "channels": ["fine"], "id": 2}))
        answer = recv_json(ws)
        assert answer["type"] == "subscribed" and answer["names"] == ["fine"] and answer["id"] == 2, answer
        redis_server.cli("PUBLISH", "secret", "must not arrive")
        redis_server.cli("PUBLISH", "fine", "ok")
        assert recv_json(ws)["data"] == "ok"
        # The op was asked about with the opening request's cookie.
        assert backend.asked("subscribe", "channel", "secret")[0]["headers"]["cookie"] == COOKIE
        backend.policy = lambda q: ("sleep", 3)
        ws.send(json.dumps({"op": "psubscribe", "patterns": ["x*"], "id": 3}))
        answer = recv_json(ws, timeout=5)
        assert answer["code"] == "hook_unavailable" and answer["id"] == 3, answer
    finally:
        ws.close()


# --------------------------------------------------------------------------- writes

def test_writes_are_asked_about_and_refusals_write_nothing(hooked, backend, redis_server):
    backend.policy = deny({"closed-ch", "closed-st", "closed-q"})
    server = hooked()
    status, _, body = http("POST", f"{server.base_url}/publish/closed-ch", b"x")
    assert_json_error(status, body, 403, "forbidden")
    status, _, body = http_json("POST", f"{server.base_url}/publish", json.dumps({"messages": [
        {"channel": "open-ch", "message": "a"}, {"channel": "closed-ch", "message": "b"}]}))
    assert status == 403 and body["error"] == "forbidden", body
    status, _, body = http("POST", f"{server.base_url}/streams/closed-st", b"x")
    assert_json_error(status, body, 403, "forbidden")
    assert redis_server.cli("EXISTS", "closed-st").strip() == "0"
    status, _, body = http("POST", f"{server.base_url}/queues/closed-q", b"x")
    assert_json_error(status, body, 403, "forbidden")
    assert redis_server.cli("EXISTS", "closed-q").strip() == "0"
    # Allowed ones go through.
    stream = unique("open-st")
    status, _, body = http_json("POST", f"{server.base_url}/streams/{stream}", json.dumps({"k": "v"}),
                                {"Content-Type": "application/json"})
    assert status == 200 and body["stream"] == stream
    assert backend.asked("publish", "stream", stream)
    # No answer at all: 503, and still nothing written.
    backend.policy = lambda q: (500, b"")
    queue = unique("q")
    status, _, body = http("POST", f"{server.base_url}/queues/{queue}", b"x")
    assert_json_error(status, body, 503, "hook_unavailable")
    assert redis_server.cli("EXISTS", queue).strip() == "0"


def test_a_refused_publish_op_publishes_nothing(hooked, backend):
    backend.policy = lambda q: (403, b"") if q["event"] == "publish" else (200, b"")
    server = hooked()
    listener = subscribe_ws(server, "channel=closed")
    ws = subscribe_ws(server, "")
    try:
        wait_subscribed(listener, {"channel": ["closed"]})
        ws.send(json.dumps({"op": "publish", "channel": "closed", "message": "no", "id": 9}))
        answer = recv_json(ws)
        assert answer["code"] == "forbidden" and answer["id"] == 9, answer
        assert_silent(listener)
    finally:
        ws.close()
        listener.close()


def test_hook_events_chooses_what_is_asked(hooked, backend):
    server = hooked("--hook-events", "publish")
    channel = unique("only-pub")
    ws = subscribe_ws(server, f"channel={channel}")
    try:
        wait_subscribed(ws, {"channel": [channel]})
        publish(server, channel, "m")
        recv_json(ws)
    finally:
        ws.close()
    assert [q["event"] for q in backend.questions] == ["publish"]


def test_calls_reuse_kept_alive_connections(hooked, backend):
    server = hooked()
    for n in range(30):
        publish(server, "ka", str(n))
    assert len(backend.asked("publish")) == 30
    assert backend.connections <= 2, f"{backend.connections} connections for 30 sequential calls"


def test_hook_metrics(hooked, backend):
    backend.policy = deny({"no"})
    server = hooked()
    publish(server, "yes", "m")
    http("POST", f"{server.base_url}/publish/no", b"m")
    backend.policy = lambda q: (500, b"")
    http("POST", f"{server.base_url}/publish/yes", b"m")
    _, _, text = http("GET", server.base_url + "/metrics")
    metrics = {line.split()[0]: float(line.split()[1]) for line in text.decode().splitlines()
               if line and not line.startswith("#")}
    assert metrics["herald_hook_calls_total"] == 3
    assert metrics["herald_hook_refusals_total"] == 1
    assert metrics["herald_hook_failures_total"] == 1
    assert metrics["herald_hook_duration_seconds_count"] == 3


# --------------------------------------------------------------------------- with a credential

SECRET = b"hook-and-jwt-secret-0123456789abcdef"


def token(publish_globs, subscribe_globs):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "alice", "exp": int(time.time()) + 3600,
                           "publish": publish_globs, "subscribe": subscribe_globs}).encode())
    signature = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def test_with_a_token_both_must_allow(hooked, backend):
    backend.policy = deny({"hook-says-no"})
    server = hooked("--jwt-secret", SECRET.decode())
    bearer = {"Authorization": f"Bearer {token(['tok-*', 'hook-says-no'], [])}"}
    # The token refuses first: the backend is not even asked.
    status, _, body = http("POST", f"{server.base_url}/publish/elsewhere", b"m", headers=bearer)
    assert_json_error(status, body, 403, "forbidden")
    assert not backend.asked("publish", name="elsewhere")
    # The token allows, the backend refuses.
    status, _, body = http("POST", f"{server.base_url}/publish/hook-says-no", b"m", headers=bearer)
    assert_json_error(status, body, 403, "forbidden")
    assert backend.asked("publish", name="hook-says-no")[0]["headers"]["authorization"].startswith("Bearer ")
    # Both allow.
    status, _, body = http("POST", f"{server.base_url}/publish/tok-1", b"m", headers=bearer)
    assert status == 200, body


# --------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("url, why", [
    ("https://backend/authorize", "https is not supported"),
    ("backend/authorize", "must start with http://"),
    ("http://u:p@backend/", "credentials"),
])
def test_bad_hook_urls_are_refused_at_start(url, why):
    done = run_herald("--hook-url", url)
    assert done.returncode == 2 and why in done.stderr, done.stderr


def test_a_hook_host_that_does_not_resolve_stops_the_start(redis_server):
    done = run_herald("--redis", redis_server.url, "--port", free_port(), "--hook-url", "http://no-such-host.invalid/a")
    assert done.returncode != 0 and "no-such-host.invalid" in done.stderr + done.stdout, (done.stdout, done.stderr)


# --- Hostile: one client must not starve others of the hook ---------------------------------


def test_flooding_clients_do_not_starve_others_of_the_hook(hooked, backend):
    """Eight WebSockets each subscribe to 999 names at once (7,992 hook questions) at a backend
    that takes 40 ms per answer (16 connections: 400 answers a second, 20 s for the flood).
    Another client's questions must still be asked in their turn, not behind the whole flood: a
    second browser connects and subscribes as usual within --hook-timeout. (Before: the loop
    kept one queue of waiting calls, first come first served, capped at 4,096: the other
    browser's connect waited behind the flood until its deadline and was closed 1013.)"""
    def slow_allow(q):
        time.sleep(0.04)
        return (200, b"")

    server = hooked("--hook-timeout", "3")
    floods = []
    for n in range(8):
        ws = subscribe_ws(server, f"channel=flood-{n}")
        wait_subscribed(ws, {"channel": [f"flood-{n}"]})
        floods.append(ws)
    backend.policy = slow_allow
    for n, ws in enumerate(floods):
        ws.send(json.dumps({"op": "subscribe", "channels": [f"flood-{n}-{i}" for i in range(999)], "id": 1}))
    wait_until(lambda: len(backend.questions) >= 100, timeout=10, what="the flood reaching the backend")

    started = time.monotonic()
    victim = subscribe_ws(server, "channel=victim")
    wait_subscribed(victim, {"channel": ["victim"]}, timeout=3)
    elapsed = time.monotonic() - started
    publish(server, "victim", "still served")
    message = recv_json(victim, 3)
    assert message["data"] == "still served", message
    print(f"the other client was subscribed {elapsed * 1000:.0f} ms after connecting, mid-flood")
    victim.close()
    for ws in floods:
        ws.close()


def test_a_refusal_stops_the_questions_of_its_subscribe(hooked, backend):
    """A subscribe of many names asks 16 at a time and stops asking after a refusal: a client
    that lists 500 names it may not have costs the backend a few questions, not 500."""
    server = hooked()
    ws = subscribe_ws(server, "channel=start")
    wait_subscribed(ws, {"channel": ["start"]})
    backend.policy = lambda q: (403, {"error": "no"}) if q.get("name", "").startswith("nope-") else (200, b"")
    before = len(backend.asked(event="subscribe"))
    ws.send(json.dumps({"op": "subscribe", "channels": [f"nope-{i}" for i in range(500)], "id": 5}))
    answer = recv_json(ws, 5)
    assert answer["type"] == "error" and answer["code"] == "forbidden", answer
    asked = len(backend.asked(event="subscribe")) - before
    assert 1 <= asked <= 32, f"{asked} questions asked for a subscribe refused at its first name"
    ws.close()
