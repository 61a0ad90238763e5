"""Token lifetime on long-lived connections (issue 10, item 3): the `token_expiring` warning
before a JWT's `exp`, the `refresh` op (new grants replace the old, lost subscriptions end with
`unsubscribed` reason `forbidden`, bad tokens change nothing), the close 1008 at `exp` without
a refresh, the end of an event stream at `exp`, timers that die with their connections, and
herald.js refreshing in place from a `token` function (headless Chromium).

Tokens are minted with the helpers of test_auth.py (same secret). `exp` is whole seconds, so
times are measured against the token's own `exp`, not against when the test sent it."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import http, launch_herald, recv_json, unique, wait_subscribed, wait_until, ws_connect
from test_auth import API_KEY_1, OTHER_SECRET, SECRET, make_jwt

WARNING = 2  # --token-warning of the Herald these tests start


def token(subscribe=("tr-*", "room-?"), publish=("*",), exp=None, sub="alice", secret=SECRET):
    claims = {"sub": sub, "publish": list(publish), "subscribe": list(subscribe)}
    if sub is None:
        del claims["sub"]
    if exp is not None:
        claims["exp"] = exp
    return make_jwt(claims, secret)


def exp_in(seconds):
    return int(time.time()) + seconds


@pytest.fixture(scope="module")
def tok_herald(redis_server):
    server = launch_herald("--jwt-secret", SECRET.decode(), "--api-keys", API_KEY_1,
                           "--token-warning", str(WARNING), redis_url=redis_server.url)
    yield server
    server.stop()


def sub_url(herald, tok, path="/subscribe", **params):
    query = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
    query.append(("token", tok))
    scheme = herald.ws_url if path == "/subscribe" else herald.base_url
    return f"{scheme}{path}?{urllib.parse.urlencode(query)}"


def publish(herald, channel, message):
    status, _, body = http("POST", f"{herald.base_url}/publish/{urllib.parse.quote(channel, safe='')}",
                           message.encode(), {"Authorization": f"Bearer {API_KEY_1}"})
    assert status == 200, body
    return json.loads(body)["receivers"]


def next_of(ws, type_, timeout=8.0, skip=("message",)):
    """The next message of `type_`, skipping deliveries; fails on anything else."""
    deadline = time.monotonic() + timeout
    while True:
        msg = recv_json(ws, max(0.05, deadline - time.monotonic()))
        if msg.get("type") == type_:
            return msg
        assert msg.get("type") in skip, f"expected {type_}, got {msg}"


def expect_close_at(ws, exp, slack=1.0):
    """Herald says token_expired, then closes with 1008 'token expired' at `exp` (± slack)."""
    err = next_of(ws, "error", timeout=exp - time.time() + slack + 2, skip=("message", "token_expiring"))
    assert err["code"] == "token_expired", err
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=slack + 2)
    closed_at = time.time()
    assert info.value.rcvd is not None, f"no close frame: {info.value!r}"
    assert info.value.rcvd.code == 1008 and info.value.rcvd.reason == "token expired", info.value.rcvd
    assert abs(closed_at - exp) <= slack, f"closed {closed_at - exp:+.2f}s from exp"


def delivered(ws, herald, channel, timeout=3.0):
    text = unique("m")
    assert publish(herald, channel, text) >= 1
    msg = next_of(ws, "message", timeout=timeout, skip=())
    assert msg["channel"] == channel and msg["data"] == text, msg


# --------------------------------------------------------------------------- warning and expiry

def test_warning_comes_token_warning_before_exp_then_close_1008(tok_herald):
    exp = exp_in(6)  # over twice WARNING left even after rounding to whole seconds
    ch = unique("tr")
    ws = ws_connect(sub_url(tok_herald, token(exp=exp), channel=ch))
    try:
        wait_subscribed(ws, {"channel": [ch]})
        warning = next_of(ws, "token_expiring", timeout=6)
        warned_at = time.time()
        assert warning == {"type": "token_expiring", "in": WARNING}, warning
        assert abs((exp - warned_at) - WARNING) <= 0.6, f"warned {exp - warned_at:.2f}s before exp"
        delivered(ws, tok_herald, ch)  # still served until exp
        expect_close_at(ws, exp)
    finally:
        ws.close()


def test_short_token_is_warned_at_half_its_life(tok_herald):
    """exp in ~2 s, under twice --token-warning: the warning comes at half the remaining life."""
    opened = time.time()
    exp = int(opened) + 2
    ws = ws_connect(sub_url(tok_herald, token(exp=exp), channel=unique("tr")))
    try:
        warning = next_of(ws, "token_expiring", timeout=4, skip=("subscribed",))
        warned_at = time.time()
        half = (exp - opened) / 2
        assert abs((exp - warned_at) - half) <= 0.5, (exp - warned_at, half)
        assert abs(warning["in"] - (exp - warned_at)) <= 0.6, warning
        expect_close_at(ws, exp)
    finally:
        ws.close()


# --------------------------------------------------------------------------- refresh

def test_refresh_moves_the_expiry_and_deliveries_continue(tok_herald):
    old_exp = exp_in(3)
    ch = unique("tr")
    ws = ws_connect(sub_url(tok_herald, token(exp=old_exp), channel=ch))
    try:
        wait_subscribed(ws, {"channel": [ch]})
        next_of(ws, "token_expiring", timeout=5)
        new_exp = exp_in(7)
        ws.send(json.dumps({"op": "refresh", "token": token(exp=new_exp), "id": 7}))
        assert next_of(ws, "refreshed") == {"type": "refreshed", "exp": new_exp, "id": 7}
        time.sleep(max(0.0, old_exp + 1 - time.time()))
        delivered(ws, tok_herald, ch)  # open past the old exp
        warning = next_of(ws, "token_expiring", timeout=new_exp - time.time() + 1)
        assert abs((new_exp - time.time()) - WARNING) <= 0.6, warning
        expect_close_at(ws, new_exp)
    finally:
        ws.close()


def test_refresh_with_narrower_grants_ends_what_they_no_longer_cover(tok_herald, redis_server):
    kept, lost = unique("room"), unique("tr")
    kept = "room-" + kept[-1]  # room-? covers one character
    stream = unique("tr-st")
    ws = ws_connect(sub_url(tok_herald, token(exp=exp_in(60)), channel=[kept, lost],
                            pattern="tr-*", stream=stream))
    try:
        wait_subscribed(ws, {"channel": [kept, lost], "pattern": ["tr-*"]})
        ws.send(json.dumps({"op": "refresh", "token": token(subscribe=["room-?"], exp=exp_in(60)), "id": "r"}))
        notices = []
        while True:
            msg = recv_json(ws)
            if msg["type"] == "refreshed":
                assert msg["id"] == "r"
                break
            notices.append(msg)
        assert sorted(notices, key=lambda m: m["kind"]) == [
            {"type": "unsubscribed", "kind": "channel", "names": [lost], "reason": "forbidden"},
            {"type": "unsubscribed", "kind": "pattern", "names": ["tr-*"], "reason": "forbidden"},
            {"type": "unsubscribed", "kind": "stream", "names": [stream], "reason": "forbidden"},
        ], notices
        # Herald no longer listens for it (its UNSUBSCRIBE reaches Redis on another link).
        wait_until(lambda: publish(tok_herald, lost, "gone") == 0, what="no receiver for the lost channel")
        redis_server.cli("XADD", stream, "*", "f", "v")
        delivered(ws, tok_herald, kept)  # the kept channel still delivers, and nothing else came
        # A subscribe the new grants do not cover is refused like any other.
        ws.send(json.dumps({"op": "subscribe", "channel": lost}))
        assert next_of(ws, "error", skip=())["code"] == "forbidden"
    finally:
        ws.close()


def test_refresh_ends_a_queue_worker_and_a_group_member_it_no_longer_covers(tok_herald, redis_server):
    """A queue worker's held item goes back to the queue when a refresh takes the queue away;
    a consumer-group member ends like a stream read (kind `stream`)."""
    queue, stream = unique("tr-q"), unique("tr-g")
    status, _, _ = http("POST", f"{tok_herald.base_url}/queues/{queue}", b"job-1",
                        {"Authorization": f"Bearer {API_KEY_1}"})
    assert status == 200
    narrower = {"op": "refresh", "token": token(subscribe=["room-?"], exp=exp_in(60))}
    worker = ws_connect(sub_url(tok_herald, token(exp=exp_in(60)), queue=queue))
    member = ws_connect(sub_url(tok_herald, token(exp=exp_in(60)), stream=stream, group="g", consumer="c"))
    try:
        worker.send(json.dumps({"op": "pop", "wait": 0}))
        item = recv_json(worker)
        assert item["type"] == "item" and item["data"] == "job-1", item
        assert redis_server.cli("LLEN", queue).strip() == "0"
        worker.send(json.dumps(narrower))
        assert recv_json(worker) == {"type": "unsubscribed", "kind": "queue", "names": [queue], "reason": "forbidden"}
        assert recv_json(worker)["type"] == "refreshed"
        wait_until(lambda: redis_server.cli("LLEN", queue).strip() == "1", what="the held item back in the queue")
        worker.send(json.dumps({"op": "pop", "wait": 0}))
        assert recv_json(worker)["code"] == "bad_request"

        member.send(json.dumps(narrower))
        assert recv_json(member) == {"type": "unsubscribed", "kind": "stream", "names": [stream], "reason": "forbidden"}
        assert recv_json(member)["type"] == "refreshed"
        member.send(json.dumps({"op": "ack", "stream": stream, "ids": ["1-0"]}))
        assert recv_json(member)["code"] == "bad_request"
    finally:
        worker.close()
        member.close()


BAD_REFRESHES = [
    ("forged", lambda: {"op": "refresh", "token": token(exp=exp_in(60), secret=OTHER_SECRET)}, "unauthorized"),
    ("malformed", lambda: {"op": "refresh", "token": "not.a.jwt"}, "unauthorized"),
    ("expired", lambda: {"op": "refresh", "token": token(exp=exp_in(-5))}, "token_expired"),
    ("other subject", lambda: {"op": "refresh", "token": token(exp=exp_in(60), sub="mallory")}, "wrong_subject"),
    ("no subject", lambda: {"op": "refresh", "token": token(exp=exp_in(60), sub=None)}, "wrong_subject"),
    ("no token", lambda: {"op": "refresh"}, "bad_request"),
    ("number token", lambda: {"op": "refresh", "token": 12}, "bad_request"),
    ("empty token", lambda: {"op": "refresh", "token": ""}, "bad_request"),
]


def test_bad_refreshes_answer_an_error_and_change_nothing(tok_herald):
    exp = exp_in(6)
    ch = unique("tr")
    ws = ws_connect(sub_url(tok_herald, token(exp=exp), channel=ch))
    try:
        wait_subscribed(ws, {"channel": [ch]})
        for what, op, code in BAD_REFRESHES:
            body = op()
            body["id"] = what
            ws.send(json.dumps(body))
            err = next_of(ws, "error", skip=("token_expiring",))
            assert err["code"] == code and err["id"] == what, (what, err)
            assert isinstance(err["message"], str) and err["message"], err
        delivered(ws, tok_herald, ch)  # still subscribed, grants unchanged
        ws.send(json.dumps({"op": "publish", "channel": "anything", "message": "x", "id": "p"}))
        assert next_of(ws, "published", skip=("token_expiring",))["id"] == "p"
        expect_close_at(ws, exp)  # still the original exp
    finally:
        ws.close()


def test_refresh_without_a_token_connection_is_bad_request(tok_herald, herald):
    """Auth off, or a connection opened with an API key (which never expires): nothing to
    refresh, `bad_request`, and the connection carries on."""
    for url in (f"{herald.ws_url}/subscribe", sub_url(tok_herald, API_KEY_1)):
        ws = ws_connect(url)
        try:
            ws.send(json.dumps({"op": "refresh", "token": token(exp=exp_in(60)), "id": 1}))
            err = recv_json(ws)
            assert err["type"] == "error" and err["code"] == "bad_request" and err["id"] == 1, err
            ws.send(json.dumps({"op": "ping", "id": 2}))
            assert recv_json(ws) == {"type": "pong", "id": 2}
        finally:
            ws.close()


def test_token_without_exp_never_expires_and_refresh_says_exp_null(tok_herald):
    ws = ws_connect(sub_url(tok_herald, token()))
    try:
        ws.send(json.dumps({"op": "refresh", "token": token()}))
        assert recv_json(ws) == {"type": "refreshed", "exp": None}
        exp = exp_in(60)
        ws.send(json.dumps({"op": "refresh", "token": token(exp=exp)}))
        assert recv_json(ws) == {"type": "refreshed", "exp": exp}
    finally:
        ws.close()


# --------------------------------------------------------------------------- event streams

def test_event_stream_ends_at_exp_after_telling_so(tok_herald):
    exp = exp_in(6)
    ch = unique("tr")
    url = urllib.parse.urlsplit(sub_url(tok_herald, token(exp=exp), path="/events", channel=ch))
    sock = socket.create_connection(("127.0.0.1", tok_herald.port), timeout=10)
    try:
        sock.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        ended_at = time.time()
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    events = [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: ")]
    assert {"type": "token_expiring", "in": WARNING} in events, events
    assert events[-1]["type"] == "error" and events[-1]["code"] == "token_expired", events
    assert abs(ended_at - exp) <= 1.0, f"ended {ended_at - exp:+.2f}s from exp"


# --------------------------------------------------------------------------- resources

def _fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_token_timers_die_with_their_connections(start_herald):
    """Connections opened with long-lived tokens and closed again leave nothing behind: the
    process's fds come back, its RSS stays flat, and no timer fires on a closed connection
    (which would crash a debug build on a dead session)."""
    server = start_herald("--jwt-secret", SECRET.decode(), "--token-warning", "0.5")
    pid = server.proc.pid

    def round_trip(n, exp):
        conns = [ws_connect(sub_url(server, token(exp=exp), channel=unique("tr"))) for _ in range(n)]
        for ws in conns:
            recv_json(ws)  # subscribed
        for ws in conns:
            ws.close()

    round_trip(100, exp_in(3600))  # warm up: the loops' buffers and tables reach their size
    time.sleep(0.5)
    before_fds, baseline_rss = _fds(pid), _rss_kb(pid)
    round_trip(100, exp_in(3))  # expiring soon: their timers would fire after the close
    for _ in range(3):
        round_trip(100, exp_in(3600))
    time.sleep(3)  # past the first round's exp
    assert server.proc.poll() is None, "herald died"
    wait_until(lambda: _fds(pid) <= before_fds, what=f"herald's fds back to {before_fds}")
    assert _rss_kb(pid) - baseline_rss < 8 * 1024, (baseline_rss, _rss_kb(pid))


# --------------------------------------------------------------------------- herald.js

@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
    chromedriver = os.environ.get("HERALD_CHROMEDRIVER", "/usr/bin/chromedriver")
    for path in (chromium, chromedriver):
        if not os.path.exists(path):
            pytest.skip(f"{path} is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(chromedriver), options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def _websockets_open(herald):
    _, _, body = http("GET", herald.base_url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith('herald_connections{kind="websocket"}'):
            return int(line.split()[-1])
    raise AssertionError("no websocket gauge in /metrics")


def test_herald_js_token_function_refreshes_in_place(browser, tok_herald):
    """herald.js with a `token` function: on token_expiring it calls the function again and
    sends a refresh op; the connection outlives the first token's exp (one WebSocket, never a
    close or a second open) and deliveries continue. The new token no longer covers room-?:
    herald.js forgets that channel (an `unsubscribed` event, reason forbidden)."""
    first_exp, second_exp = exp_in(5), exp_in(120)
    tokens = [token(exp=first_exp), token(subscribe=["tr-*"], exp=second_exp)]
    channel, room = unique("tr"), "room-" + unique("r")[-1]
    # A page of Herald's origin that opens no connection of its own (the demo page would).
    browser.get(tok_herald.base_url + "/healthz")
    browser.set_script_timeout(30)
    result = browser.execute_async_script("""
        const [tokens, channel, room, waitMs, done] = arguments;
        (async function () {
          await new Promise((resolve, reject) => {
            const s = document.createElement("script");
            s.src = "/herald.js";
            s.onload = resolve;
            s.onerror = reject;
            document.head.appendChild(s);
          });
          let calls = 0, opens = 0, closes = 0;
          const refreshed = [], warnings = [], got = [], errors = [], revoked = [];
          const h = new Herald(undefined, {
            token: () => Promise.resolve(tokens[Math.min(calls++, tokens.length - 1)]),
          });
          h.on("open", () => { opens += 1; });
          h.on("close", () => { closes += 1; });
          h.on("error", (e) => errors.push(String(e.code || e)));
          h.on("token_expiring", (w) => warnings.push(w.in));
          h.on("refreshed", (a) => refreshed.push(a.exp));
          h.on("unsubscribed", (u) => revoked.push([u.kind, u.names, u.reason]));
          await h.subscribe(channel, (m) => got.push(m.data));
          await h.subscribe(room, () => {});
          await new Promise((r) => setTimeout(r, waitMs));
          const answer = await h.publish(channel, "after the first exp");
          await new Promise((r) => setTimeout(r, 300));
          window.__herald = h;
          const stillHeld = h._subs.channel.has(room);
          return {calls, opens, closes, refreshed, warnings, got, errors, revoked, stillHeld, receivers: answer.receivers};
        })().then((v) => done({ok: v}), (e) => done({err: String(e && (e.code || e.stack || e))}));
    """, tokens, channel, room, int((first_exp + 1.5 - time.time()) * 1000))
    assert "err" not in result, result
    r = result["ok"]
    assert r["calls"] == 2 and r["warnings"] == [WARNING] and r["refreshed"] == [second_exp], r
    assert r["opens"] == 1 and r["closes"] == 0 and r["errors"] == [], r
    assert r["receivers"] == 1 and r["got"] == ["after the first exp"], r
    assert r["revoked"] == [["channel", [room], "forbidden"]] and not r["stillHeld"], r
    assert _websockets_open(tok_herald) == 1, "Herald sees one WebSocket"
    browser.execute_script("window.__herald.close();")
