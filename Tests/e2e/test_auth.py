"""Authentication and authorization (issue 4, item 4): API keys, HS256 JWTs with channel globs,
the WebSocket Origin allow-list, CORS, and the start-up warning when Herald listens beyond
loopback without auth.

JWTs are signed here with hmac/hashlib/base64 only (no JWT package)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import (
    HERALD_BIN,
    PUBLIC_DIR,
    REPO,
    assert_json_error,
    assert_silent,
    free_port,
    herald_env,
    http,
    http_json,
    launch_herald,
    parse_responses,
    raw_exchange,
    recv_json,
    require_binary,
    stop_process,
    unique,
    wait_subscribed,
    wait_until,
    ws_connect,
    ws_handshake_request,
)

API_KEY_1 = "k1-" + "a" * 29  # 32 chars
API_KEY_2 = "key-two-0123456789"  # 18 chars
SECRET = b"s3cret-for-herald-tests-0123456789abcdef"  # 40 bytes
OTHER_SECRET = b"not-the-secret-for-herald-tests-0123456789"
APP_ORIGIN = "https://app.example"

# What the test token may do: publish to news.* / chat-[a-c] / jobs-?, read news.* / room-? / st-*.
PUB_GLOBS = ["news.*", "chat-[a-c]", "jobs-?", "log-*"]
SUB_GLOBS = ["news.*", "room-?", "log-*", "jobs-?"]


# --------------------------------------------------------------------------- JWT helpers

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def make_jwt(claims: dict, secret: bytes = SECRET, header: dict | None = None,
             digest=hashlib.sha256) -> str:
    header = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64url(compact(header))}.{b64url(compact(claims))}"
    signature = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(publish=None, subscribe=None, exp_in=3600, **extra):
    now = int(time.time())
    out = {"sub": "tester", "iat": now}
    if exp_in is not None:
        out["exp"] = now + exp_in
    if publish is not None:
        out["publish"] = publish
    if subscribe is not None:
        out["subscribe"] = subscribe
    out.update(extra)
    return out


def good_token(**kw):
    return make_jwt(claims(publish=PUB_GLOBS, subscribe=SUB_GLOBS, **kw))


def bearer(credential):
    return {"Authorization": f"Bearer {credential}"}


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def auth_herald(redis_server):
    """API keys + JWT secret + an Origin allow-list, on the session redis."""
    server = launch_herald("--api-keys", f"{API_KEY_1},{API_KEY_2}",
                           "--jwt-secret", SECRET.decode(),
                           "--allowed-origins", f"{APP_ORIGIN},https://b.example",
                           redis_url=redis_server.url)
    yield server
    server.stop()


def pub_path(channel, token_query=None):
    path = "/publish/" + urllib.parse.quote(channel, safe="")
    if token_query is not None:
        path += "?" + urllib.parse.urlencode({"token": token_query})
    return path


def post(herald, path, body=b"x", headers=None):
    return http("POST", herald.base_url + path, body, headers)


def assert_unauthorized(status, headers, body, context):
    assert_json_error(status, body, 401, "unauthorized", context)
    assert headers.get("WWW-Authenticate", "").split(" ")[0].lower() == "bearer", (
        f"{context}: 401 without WWW-Authenticate: Bearer; headers {dict(headers)}")


def assert_forbidden(status, body, context):
    assert_json_error(status, body, 403, "forbidden", context)


def sub_url(herald, token=None, **params):
    query = []
    for name, values in params.items():
        for v in (values if isinstance(values, (list, tuple)) else [values]):
            query.append((name, v))
    if token is not None:
        query.append(("token", token))
    return f"{herald.ws_url}/subscribe?{urllib.parse.urlencode(query)}"


def expect_ws_refusal(url, code, headers=None):
    """The upgrade succeeds, Herald sends one error with `code`, then closes with 1008."""
    ws = ws_connect(url, additional_headers=headers) if headers else ws_connect(url)
    try:
        msg = recv_json(ws)
        assert msg.get("type") == "error" and msg.get("code") == code, (
            f"{url}: expected an error {code}, got {msg}")
        assert isinstance(msg.get("message"), str) and msg["message"], msg
        with pytest.raises(ConnectionClosed) as info:
            extra = ws.recv(timeout=5)
            pytest.fail(f"{url}: unexpected message after the refusal: {extra!r}")
        assert info.value.rcvd is not None, f"{url}: no close frame from Herald ({info.value!r})"
        assert info.value.rcvd.code == 1008, f"{url}: close code {info.value.rcvd.code}, expected 1008"
    finally:
        ws.close()


def ws_op(ws, op: dict, timeout=5.0):
    ws.send(json.dumps(op))
    return recv_json(ws, timeout)


def open_sub(url, expected, headers=None):
    ws = ws_connect(url, additional_headers=headers) if headers else ws_connect(url)
    try:
        wait_subscribed(ws, expected)
    except BaseException:
        ws.close()
        raise
    return ws


# --------------------------------------------------------------------------- credentials

BROKER_CALLS = [
    ("POST", "/publish/auth-x", b"hello", {}),
    ("POST", "/publish", b'{"channel":"auth-x","message":"m"}', {"Content-Type": "application/json"}),
    ("POST", "/streams/auth-s", b'{"f":"v"}', {"Content-Type": "application/json"}),
    ("GET", "/streams/auth-s", None, {}),
    ("POST", "/queues/auth-q", b"job", {}),
    ("GET", "/queues/auth-q", None, {}),
]


@pytest.mark.parametrize("method,path,body,headers", BROKER_CALLS,
                         ids=[f"{m} {p}" for m, p, _, _ in BROKER_CALLS])
def test_broker_endpoints_refuse_missing_or_bad_credentials(auth_herald, method, path, body, headers):
    sep = "&" if "?" in path else "?"
    attempts = {
        "no credential": (path, {}),
        "unknown API key": (path, bearer("x" * 32)),
        "Basic scheme": (path, {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}),
        "empty bearer": (path, {"Authorization": "Bearer "}),
        "unknown key in token=": (path + sep + "token=" + "y" * 32, {}),
        "empty token=": (path + sep + "token=", {}),
        "forged JWT": (path, bearer(make_jwt(claims(publish=["*"], subscribe=["*"]), OTHER_SECRET))),
    }
    for what, (p, auth) in attempts.items():
        status, hdrs, data = http(method, auth_herald.base_url + p, body, {**headers, **auth})
        assert_unauthorized(status, hdrs, data, f"{method} {p} with {what}")


def test_ops_endpoints_and_static_files_need_no_credential(auth_herald):
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        status, _, data = http("GET", auth_herald.base_url + path)
        assert status == 200, f"GET {path} without a credential answered {status} {data[:200]!r}"


def test_api_keys_allow_everything(auth_herald):
    ch = unique("auth-key")
    ws = open_sub(sub_url(auth_herald, token=API_KEY_2, channel=ch), {"channel": [ch]})
    try:
        # Each configured key, in the header (scheme is case-insensitive) and in token=.
        for i, (path, headers) in enumerate([
            (pub_path(ch), bearer(API_KEY_1)),
            (pub_path(ch), bearer(API_KEY_2)),
            (pub_path(ch), {"Authorization": f"bearer {API_KEY_1}"}),
            (pub_path(ch, token_query=API_KEY_1), {}),
        ]):
            status, _, data = post(auth_herald, path, f"m{i}", headers)
            assert status == 200, f"POST {path} {headers} answered {status} {data!r}"
            assert json.loads(data) == {"channel": ch, "receivers": 1}
            assert recv_json(ws) == {"type": "message", "channel": ch, "data": f"m{i}"}
        # Anything else the broker offers, too.
        key = unique("auth-stream")
        status, _, answer = http_json("POST", f"{auth_herald.base_url}/streams/{key}",
                                      b'{"f":"v"}', {**bearer(API_KEY_1), "Content-Type": "application/json"})
        assert status == 200 and answer["stream"] == key, answer
        status, _, answer = http_json("GET", f"{auth_herald.base_url}/streams/{key}?token={API_KEY_2}")
        assert status == 200 and [e["fields"] for e in answer["entries"]] == [{"f": "v"}], answer
        q = unique("auth-queue")
        status, _, answer = http_json("POST", f"{auth_herald.base_url}/queues/{q}", b"job", bearer(API_KEY_2))
        assert status == 200 and answer == {"queue": q, "length": 1}, answer
        # An API key may subscribe to any pattern and publish over the socket.
        assert ws_op(ws, {"op": "psubscribe", "patterns": ["*"], "id": 1}) == {
            "type": "subscribed", "kind": "pattern", "names": ["*"], "id": 1}
        assert ws_op(ws, {"op": "publish", "channel": unique("auth-any"), "message": "x", "id": 2})[
            "type"] == "published"
    finally:
        ws.close()


def test_api_keys_from_the_environment_and_no_jwt_without_a_secret(redis_server):
    server = launch_herald(env={"HERALD_API_KEYS": f"{API_KEY_1}"}, redis_url=redis_server.url)
    try:
        status, hdrs, data = post(server, pub_path("env-x"))
        assert_unauthorized(status, hdrs, data, "no credential, keys from HERALD_API_KEYS")
        status, _, data = post(server, pub_path("env-x"), headers=bearer(API_KEY_1))
        assert status == 200, data
        # A well-formed JWT means nothing to a Herald without a JWT secret.
        status, hdrs, data = post(server, pub_path("env-x"), headers=bearer(good_token()))
        assert_unauthorized(status, hdrs, data, "JWT sent to a Herald with API keys only")
        expect_ws_refusal(sub_url(server, token=good_token(), channel="news.a"), "unauthorized")
    finally:
        server.stop()


# --------------------------------------------------------------------------- JWT over HTTP

def test_jwt_publish_globs_over_http(auth_herald):
    token = good_token()
    allowed = ["news.sport", "news.", "chat-a", "chat-c", "jobs-1", "log-x.y"]
    denied = ["news", "weather", "chat-d", "chat-ab", "jobs-12", "jobs-", "xnews.sport"]
    for ch in allowed:
        for path, headers in ((pub_path(ch), bearer(token)), (pub_path(ch, token_query=token), {})):
            status, _, data = post(auth_herald, path, b"m", headers)
            assert status == 200, f"POST {path} (allowed by {PUB_GLOBS}) answered {status} {data!r}"
            assert json.loads(data)["channel"] == ch
    for ch in denied:
        for path, headers in ((pub_path(ch), bearer(token)), (pub_path(ch, token_query=token), {})):
            status, _, data = post(auth_herald, path, b"m", headers)
            assert_forbidden(status, data, f"POST {path} (outside {PUB_GLOBS})")
    # The JSON form is checked the same way.
    jheaders = {**bearer(token), "Content-Type": "application/json"}
    status, _, answer = http_json("POST", auth_herald.base_url + "/publish",
                                  json.dumps({"channel": "news.json", "message": "m"}), jheaders)
    assert status == 200 and answer["channel"] == "news.json", answer
    status, _, data = http("POST", auth_herald.base_url + "/publish",
                           json.dumps({"channel": "weather", "message": "m"}), jheaders)
    assert_forbidden(status, data, "POST /publish JSON to a channel outside the globs")


def test_jwt_batch_with_a_forbidden_channel(auth_herald):
    """A batch is checked whole: one channel outside the globs answers 403 naming it, and
    nothing of the batch is published, not even the allowed items."""
    token = good_token()
    denied_ch = unique("secret")
    allowed_ch = "news." + unique("b")
    watcher = open_sub(sub_url(auth_herald, token=API_KEY_1, channel=[denied_ch, allowed_ch]),
                       {"channel": [denied_ch, allowed_ch]})
    try:
        body = {"messages": [{"channel": allowed_ch, "message": "ok"},
                             {"channel": denied_ch, "message": "leak"}]}
        status, _, answer = http_json("POST", auth_herald.base_url + "/publish", json.dumps(body),
                                      {**bearer(token), "Content-Type": "application/json"})
        assert status == 403, f"batch with a forbidden channel answered {status} {answer}"
        assert answer.get("error") == "forbidden" and denied_ch in answer.get("message", ""), answer
        got = []
        try:
            while True:
                got.append(json.loads(watcher.recv(timeout=0.5)))
        except TimeoutError:
            pass
        assert got == [], f"a refused batch published {got}"
    finally:
        watcher.close()


def test_jwt_streams_and_queues_follow_the_globs(auth_herald):
    token = good_token()
    h = {**bearer(token), "Content-Type": "application/json"}
    base = auth_herald.base_url
    key = "log-" + unique("s")
    status, _, answer = http_json("POST", f"{base}/streams/{key}", b'{"a":"1"}', h)
    assert status == 200, answer
    status, _, answer = http_json("GET", f"{base}/streams/{key}", headers=h)
    assert status == 200 and len(answer["entries"]) == 1, answer
    status, _, data = http("POST", f"{base}/streams/weather-s", b'{"a":"1"}', h)
    assert_forbidden(status, data, "XADD to a stream outside the publish globs")
    # chat-a may be written (publish glob) but not read (no subscribe glob).
    status, _, data = http("GET", f"{base}/streams/chat-a", headers=h)
    assert_forbidden(status, data, "XRANGE of a stream outside the subscribe globs")
    status, _, answer = http_json("POST", f"{base}/queues/jobs-7", b"job", h)
    assert status == 200, answer
    status, _, data = http("GET", f"{base}/queues/jobs-7", headers=h)
    assert (status, data) == (200, b"job"), (status, data)
    status, _, data = http("POST", f"{base}/queues/mail", b"job", h)
    assert_forbidden(status, data, "LPUSH to a queue outside the publish globs")
    status, _, data = http("GET", f"{base}/queues/chat-b", headers=h)
    assert_forbidden(status, data, "pop from a queue outside the subscribe globs")
    # Over the socket, a stream outside the subscribe globs refuses the connection.
    expect_ws_refusal(sub_url(auth_herald, token=token, stream="chat-a", **{"from": "0"}), "forbidden")
    expect_ws_refusal(sub_url(auth_herald, token=token, queue="mail"), "forbidden")


def test_token_without_claims_may_do_nothing(auth_herald):
    empty = make_jwt(claims())
    status, _, data = post(auth_herald, pub_path("news.x"), headers=bearer(empty))
    assert_forbidden(status, data, "publish with a token that has no publish claim")
    expect_ws_refusal(sub_url(auth_herald, token=empty, channel="news.x"), "forbidden")


BAD_TOKENS = {
    "expired": lambda: make_jwt(claims(publish=["*"], subscribe=["*"], exp_in=-5)),
    "expired long ago": lambda: make_jwt(claims(publish=["*"], subscribe=["*"], exp_in=-86400)),
    "not yet valid": lambda: make_jwt(claims(publish=["*"], subscribe=["*"], nbf=int(time.time()) + 3600)),
    "forged signature": lambda: make_jwt(claims(publish=["*"], subscribe=["*"]), OTHER_SECRET),
    "tampered payload": lambda: (lambda t: ".".join(
        [t.split(".")[0], b64url(compact(claims(publish=["*"], subscribe=["*"]))), t.split(".")[2]]))(
        make_jwt(claims(publish=["news.*"], subscribe=["news.*"]))),
    "alg none": lambda: make_jwt(claims(publish=["*"], subscribe=["*"]),
                                 header={"alg": "none", "typ": "JWT"}).rsplit(".", 1)[0] + ".",
    "alg None unsigned": lambda: f"{b64url(compact({'alg': 'None'}))}."
                                 f"{b64url(compact(claims(publish=['*'], subscribe=['*'])))}.",
    "alg HS512": lambda: make_jwt(claims(publish=["*"], subscribe=["*"]),
                                  header={"alg": "HS512", "typ": "JWT"}, digest=hashlib.sha512),
    "no signature part": lambda: ".".join(good_token().split(".")[:2]),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_tokens_are_401_over_http_and_1008_over_websocket(auth_herald, kind):
    token = BAD_TOKENS[kind]()
    status, hdrs, data = post(auth_herald, pub_path("news.bad"), headers=bearer(token))
    assert_unauthorized(status, hdrs, data, f"publish with a {kind} token (header)")
    status, hdrs, data = post(auth_herald, pub_path("news.bad", token_query=token))
    assert_unauthorized(status, hdrs, data, f"publish with a {kind} token (token=)")
    expect_ws_refusal(sub_url(auth_herald, token=token, channel="news.bad"), "unauthorized")


def test_expired_token_message_says_so(auth_herald):
    status, _, data = post(auth_herald, pub_path("news.exp"),
                           headers=bearer(make_jwt(claims(publish=["*"], exp_in=-10))))
    body = assert_json_error(status, data, 401, "unauthorized", "expired token")
    assert "expire" in body["message"].lower(), body


# --------------------------------------------------------------------------- JWT over WebSocket

def test_jwt_websocket_query_token_subscribe_and_publish_ops(auth_herald):
    token = good_token()
    ch = "news." + unique("ws")
    ws = open_sub(sub_url(auth_herald, token=token, channel=ch, pattern="log-*"),
                  {"channel": [ch], "pattern": ["log-*"]})
    try:
        publish_status, _, answer = http_json("POST", auth_herald.base_url + pub_path(ch), b"hi",
                                              bearer(API_KEY_1))
        assert publish_status == 200 and answer["receivers"] == 1, answer
        assert recv_json(ws) == {"type": "message", "channel": ch, "data": "hi"}

        # A forbidden subscribe op: an error with the id, and the connection stays open.
        answer = ws_op(ws, {"op": "subscribe", "channels": ["weather"], "id": 7})
        assert answer.get("type") == "error" and answer.get("code") == "forbidden", answer
        assert answer.get("id") == 7, answer
        # Mixed list: nothing of it is subscribed.
        answer = ws_op(ws, {"op": "subscribe", "channels": ["room-1", "roomz"], "id": 8})
        assert answer.get("code") == "forbidden" and answer.get("id") == 8, answer
        assert ws_op(ws, {"op": "ping", "id": 9}) == {"type": "pong", "id": 9}
        status, _, answer = http_json("POST", auth_herald.base_url + pub_path("weather"), b"w",
                                      bearer(API_KEY_1))
        assert status == 200 and answer["receivers"] == 0, f"weather got a subscriber: {answer}"
        status, _, answer = http_json("POST", auth_herald.base_url + pub_path("room-1"), b"r",
                                      bearer(API_KEY_1))
        assert status == 200 and answer["receivers"] == 0, f"room-1 got a subscriber: {answer}"
        assert_silent(ws, 0.2)

        # Allowed ones work: `room-?` and a literal pattern equal to a glob.
        assert ws_op(ws, {"op": "subscribe", "channels": ["room-2"], "id": 10}) == {
            "type": "subscribed", "kind": "channel", "names": ["room-2"], "id": 10}
        assert ws_op(ws, {"op": "psubscribe", "patterns": ["news.*"], "id": 11}) == {
            "type": "subscribed", "kind": "pattern", "names": ["news.*"], "id": 11}
        # A pattern that is not itself within a glob is refused even though it overlaps one.
        for pattern in ("*", "news*", "room-1*", "chat-?"):
            answer = ws_op(ws, {"op": "psubscribe", "patterns": [pattern], "id": pattern})
            assert answer.get("code") == "forbidden" and answer.get("id") == pattern, answer

        # Publish op: chat-b allowed, weather forbidden (error, connection stays).
        answer = ws_op(ws, {"op": "publish", "channel": "chat-b", "message": "x", "id": 12})
        assert answer == {"type": "published", "channel": "chat-b", "receivers": 0, "id": 12}, answer
        answer = ws_op(ws, {"op": "publish", "channel": "weather", "message": "x", "id": 13})
        assert answer.get("type") == "error" and answer.get("code") == "forbidden", answer
        assert answer.get("id") == 13, answer
        # room-2 may be read but not written.
        answer = ws_op(ws, {"op": "publish", "channel": "room-2", "message": "x", "id": 14})
        assert answer.get("code") == "forbidden", answer
        assert ws_op(ws, {"op": "ping", "id": 15}) == {"type": "pong", "id": 15}
    finally:
        ws.close()


def test_pattern_wider_than_a_glob_is_refused(auth_herald):
    """`room-?` lets the holder read room-1 .. room-z (one character). The pattern `room-*`
    reaches room-10, room-secret, ...: it must be refused, although its text matches the glob
    `room-?` when read literally (the glob's `?` matches the pattern's `*`)."""
    token = good_token()
    ws = open_sub(sub_url(auth_herald, token=token, channel="room-1"), {"channel": ["room-1"]})
    try:
        # Subscribing to the channel itself is refused...
        answer = ws_op(ws, {"op": "subscribe", "channels": ["room-secret"], "id": "direct"})
        assert answer.get("code") == "forbidden", answer
        leaks = []
        for i, pattern in enumerate(["room-*", "jobs-*", "room-?*"]):
            answer = ws_op(ws, {"op": "psubscribe", "patterns": [pattern], "id": i})
            if answer.get("type") == "error" and answer.get("code") == "forbidden":
                continue
            # ... so reading it through a pattern must be too: show what leaks.
            secret = pattern.replace("?", "x").replace("*", "secret")
            post(auth_herald, pub_path(secret), b"confidential", bearer(API_KEY_1))
            got = recv_json(ws)
            leaks.append((pattern, answer, got))
        assert not leaks, (
            f"with subscribe globs {SUB_GLOBS}, patterns wider than every glob were accepted and "
            f"delivered channels no glob allows: {leaks}")
        expect_ws_refusal(sub_url(auth_herald, token=token, pattern="room-*"), "forbidden")
    finally:
        ws.close()


def test_jwt_websocket_authorization_header(auth_herald):
    token = good_token()
    ws = open_sub(sub_url(auth_herald, channel="room-5"), {"channel": ["room-5"]}, headers=bearer(token))
    try:
        status, _, _ = post(auth_herald, pub_path("room-5"), b"via header", bearer(API_KEY_1))
        assert status == 200
        assert recv_json(ws) == {"type": "message", "channel": "room-5", "data": "via header"}
    finally:
        ws.close()
    expect_ws_refusal(sub_url(auth_herald, channel="weather"), "forbidden", headers=bearer(token))
    expect_ws_refusal(sub_url(auth_herald, channel="room-5"), "unauthorized",
                      headers=bearer(make_jwt(claims(subscribe=["*"]), OTHER_SECRET)))


def test_websocket_without_credential_or_with_forbidden_initial_subscription(auth_herald):
    expect_ws_refusal(sub_url(auth_herald, channel="news.a"), "unauthorized")
    expect_ws_refusal(sub_url(auth_herald, token="z" * 20, channel="news.a"), "unauthorized")
    token = good_token()
    expect_ws_refusal(sub_url(auth_herald, token=token, channel=["news.a", "weather"]), "forbidden")
    expect_ws_refusal(sub_url(auth_herald, token=token, pattern="*"), "forbidden")
    expect_ws_refusal(sub_url(auth_herald, token=token, shard="secret"), "forbidden")


def test_refused_websocket_never_subscribes(auth_herald, redis_server):
    """A refused connection must not leave a Redis subscription behind."""
    ch = unique("never")
    expect_ws_refusal(sub_url(auth_herald, channel=ch), "unauthorized")
    token = make_jwt(claims(subscribe=["news.*"]))
    expect_ws_refusal(sub_url(auth_herald, token=token, channel=[ch]), "forbidden")
    assert redis_server.cli("PUBSUB", "NUMSUB", ch).split() == [ch, "0"]


# --------------------------------------------------------------------------- Origin and CORS

def handshake(port, path, origin=None):
    """The HTTP answer to a raw WebSocket upgrade request (101, or a refusal)."""
    extra = f"Origin: {origin}\r\n" if origin else ""
    request, _ = ws_handshake_request(path, extra=extra)
    raw = raw_exchange(port, request, read_timeout=2.0, until=lambda b: b"\r\n\r\n" in b)
    responses, _ = parse_responses(raw)
    assert responses, f"no answer to the upgrade {path} (Origin {origin}): {raw!r}"
    return responses[0]


def test_origin_allow_list_for_websockets(auth_herald):
    path = "/subscribe?" + urllib.parse.urlencode({"channel": "news.o", "token": API_KEY_1})
    for origin in ("https://evil.example", "https://app.example.evil.example", "http://app.example",
                   "null"):
        resp = handshake(auth_herald.port, path, origin)
        assert resp.status == 403, f"WebSocket from Origin {origin} answered {resp.status} {resp.body!r}"
        assert resp.json().get("error") == "forbidden", resp.body
    for origin in (APP_ORIGIN, "https://b.example", None):
        resp = handshake(auth_herald.port, path, origin)
        assert resp.status == 101, f"WebSocket from Origin {origin} answered {resp.status} {resp.body!r}"
    # The websockets client with an allowed origin works end to end.
    ws = ws_connect(sub_url(auth_herald, token=API_KEY_1, channel="news.o"), origin=APP_ORIGIN)
    try:
        wait_subscribed(ws, {"channel": ["news.o"]})
    finally:
        ws.close()


def test_cors_preflight_and_answer_headers(auth_herald):
    base = auth_herald.base_url
    pre = {"Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    # Preflights carry no credential; they need none.
    for path in ("/publish/news.cors", "/publish", "/streams/news.cors"):
        status, hdrs, data = http("OPTIONS", base + path, headers={"Origin": APP_ORIGIN, **pre})
        assert status == 204, f"OPTIONS {path} from {APP_ORIGIN} answered {status} {data!r}"
        assert hdrs.get("Access-Control-Allow-Origin") == APP_ORIGIN, dict(hdrs)
        methods = {m.strip() for m in hdrs.get("Access-Control-Allow-Methods", "").split(",")}
        assert {"GET", "POST"} <= methods, dict(hdrs)
        allowed = [h.strip().lower() for h in hdrs.get("Access-Control-Allow-Headers", "").split(",")]
        assert allowed == ["authorization", "content-type", "last-event-id", "idempotency-key"], dict(hdrs)
        assert data == b""
    status, hdrs, data = http("OPTIONS", base + "/publish/news.cors",
                              headers={"Origin": "https://evil.example", **pre})
    assert_forbidden(status, data, "preflight from a foreign origin")
    assert hdrs.get("Access-Control-Allow-Origin") is None, dict(hdrs)

    # Real answers to an allowed origin carry the CORS headers, errors included.
    status, hdrs, data = http("POST", base + "/publish/news.cors", b"m",
                              {"Origin": APP_ORIGIN, **bearer(API_KEY_1)})
    assert status == 200, data
    assert hdrs.get("Access-Control-Allow-Origin") == APP_ORIGIN, dict(hdrs)
    assert "origin" in [v.strip().lower() for v in hdrs.get("Vary", "").split(",")], dict(hdrs)
    status, hdrs, data = http("POST", base + "/publish/news.cors", b"m", {"Origin": "https://b.example"})
    assert status == 401
    assert hdrs.get("Access-Control-Allow-Origin") == "https://b.example", (
        f"a 401 to an allowed origin must be readable by the page: {dict(hdrs)}")
    # A foreign origin's answers carry no Access-Control-Allow-Origin.
    status, hdrs, data = http("POST", base + "/publish/news.cors", b"m",
                              {"Origin": "https://evil.example", **bearer(API_KEY_1)})
    assert hdrs.get("Access-Control-Allow-Origin") is None, (
        f"answer to a foreign origin carries CORS headers: {status} {dict(hdrs)}")


def test_default_allows_own_and_loopback_origins_and_star_any(start_herald):
    """No --allowed-origins: Herald's own origin and loopback pages (local development), not
    any site (issue 11, decision c; it was any origin before). `*` is any origin."""
    default = start_herald()
    star = start_herald("--allowed-origins", "*")
    for server, origin in ((default, "http://localhost:5173"), (default, server_origin(default)),
                           (star, "https://anything.example")):
        resp = handshake(server.port, "/subscribe?channel=o-any", origin)
        assert resp.status == 101, f"{server.args}: WebSocket from {origin} answered {resp.status}"
        status, hdrs, _ = http("OPTIONS", server.base_url + "/publish/o-any",
                               headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert status == 204, f"{server.args}: preflight from {origin} answered {status}"
        assert hdrs.get("Access-Control-Allow-Origin") == origin, dict(hdrs)
        # Auth is off by default: publishing needs nothing.
        status, _, data = http("POST", server.base_url + "/publish/o-any", b"m")
        assert status == 200, data
    resp = handshake(default.port, "/subscribe?channel=o-any", "https://anything.example")
    assert resp.status == 403, f"default: WebSocket from another site answered {resp.status}"
    status, hdrs, _ = http("OPTIONS", default.base_url + "/publish/o-any",
                           headers={"Origin": "https://anything.example", "Access-Control-Request-Method": "POST"})
    assert status == 403 and hdrs.get("Access-Control-Allow-Origin") is None, (status, dict(hdrs))


def server_origin(server):
    """The origin of a page Herald itself serves (the demo page)."""
    return f"http://127.0.0.1:{server.port}"


# --------------------------------------------------------------------------- start-up warning

def run_until_ready(args, env=None):
    """Start herald with exactly `args` (stdout and stderr kept apart), wait for /healthz on
    loopback, stop it with SIGTERM; return (stdout, stderr, exit code)."""
    require_binary()
    port = free_port()
    out = tempfile.NamedTemporaryFile(prefix="herald-out-", delete=False)
    err = tempfile.NamedTemporaryFile(prefix="herald-err-", delete=False)
    proc = subprocess.Popen([str(HERALD_BIN), "--port", str(port), "--public", str(PUBLIC_DIR),
                             "--loops", "1", *args], stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL, env=herald_env(env), cwd=str(REPO))
    try:
        def up():
            assert proc.poll() is None, f"herald exited {proc.returncode}: {Path(err.name).read_text()}"
            return http("GET", f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200
        wait_until(up, timeout=15, what="herald to answer /healthz")
        code = stop_process(proc, signal.SIGTERM)
        return Path(out.name).read_text(errors="replace"), Path(err.name).read_text(errors="replace"), code
    finally:
        stop_process(proc)
        for f in (out, err):
            f.close()
            os.unlink(f.name)


def test_warns_loudly_when_exposed_without_auth(redis_server):
    out, err, code = run_until_ready(["--host", "0.0.0.0", "--redis", redis_server.url])
    assert "WITHOUT AUTHENTICATION" in err, (
        f"no warning on stderr for 0.0.0.0 without auth; stderr: {err[-1500:]!r} stdout: {out[-500:]!r}")
    assert code == 0
    # Through the environment too.
    out, err, _ = run_until_ready([], env={"HERALD_HOST": "0.0.0.0", "HERALD_REDIS_URL": redis_server.url})
    assert "WITHOUT AUTHENTICATION" in err, f"HERALD_HOST=0.0.0.0: stderr {err[-1500:]!r}"


@pytest.mark.parametrize("args", [
    ["--host", "0.0.0.0", "--api-keys", API_KEY_1],
    ["--host", "0.0.0.0", "--jwt-secret", SECRET.decode()],
    ["--host", "127.0.0.1"],
], ids=["exposed with api keys", "exposed with jwt", "loopback without auth"])
def test_no_warning_with_auth_or_on_loopback(redis_server, args):
    out, err, code = run_until_ready(args + ["--redis", redis_server.url])
    assert "WITHOUT AUTHENTICATION" not in out + err, f"{args}: unexpected warning: {err[-1500:]!r}"
    assert code == 0
