"""Configurable limits (issue 4, item 3): --max-connections (503 / close 1013),
--max-subscriptions (per WebSocket, in the query and through ops) and --max-pending (publishes
waiting on Redis: beyond it 503 overloaded, answered at once, never hanging).

Message, header and body sizes, the header deadline and idle pings are covered elsewhere
(test_http.py, test_websocket.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import (
    REDIS_CLI,
    assert_json_error,
    http,
    http_json,
    open_subscriber,
    recv_json,
    stop_process,
    unique,
    wait_until,
    ws_connect,
)


def expect_refusal(url, code, close_code):
    """The upgrade succeeds; Herald sends one JSON error `code`, then closes with `close_code`."""
    ws = ws_connect(url)
    try:
        msg = recv_json(ws)
        assert msg.get("type") == "error" and msg.get("code") == code, f"{url}: got {msg}"
        assert isinstance(msg.get("message"), str) and msg["message"], msg
        with pytest.raises(ConnectionClosed) as info:
            extra = ws.recv(timeout=5)
            pytest.fail(f"{url}: unexpected message after the refusal: {extra!r}")
        assert info.value.rcvd is not None, f"{url}: no close frame ({info.value!r})"
        assert info.value.rcvd.code == close_code, (
            f"{url}: close code {info.value.rcvd.code}, expected {close_code}")
    finally:
        ws.close()


def ws_op(ws, op, timeout=5.0):
    ws.send(json.dumps(op))
    return recv_json(ws, timeout)


def publish_status(server, channel, body=b"m"):
    status, hdrs, data = http("POST", f"{server.base_url}/publish/{channel}", body)
    return status, hdrs, data


# --------------------------------------------------------------------------- connections

def test_max_connections_503_for_http_and_1013_for_websocket(start_herald):
    limit = 3
    server = start_herald("--max-connections", str(limit))  # 2 loops: the limit is process-wide
    # Fill the limit with long-lived WebSockets (they spread over both loops).
    held = [open_subscriber(server, channels=[unique("mc")]) for _ in range(limit)]
    try:
        ch = unique("mc-pub")
        for attempt in range(4):  # several new connections: whichever loop takes them
            status, hdrs, data = publish_status(server, ch)
            assert_json_error(status, data, 503, "too_many_connections",
                              f"HTTP request #{attempt} beyond --max-connections {limit}")
            assert hdrs.get("Retry-After"), f"503 without Retry-After: {dict(hdrs)}"
            assert (hdrs.get("Connection") or "").lower() == "close", (
                f"an over-limit connection must not be kept alive: {dict(hdrs)}")
        for _ in range(3):
            expect_refusal(f"{server.ws_url}/subscribe?channel={ch}", "too_many_connections", 1013)

        # One held connection leaves: exactly one slot frees up.
        held.pop().close()
        wait_until(lambda: publish_status(server, ch)[0] == 200, timeout=5,
                   what="a publish to be accepted once a connection closed")
        # That publish's own connection counts until Herald reads its end of stream, which
        # may come a moment after the client moved on (on a loaded machine, or on the other
        # loop): a WebSocket opened right then can still be refused, so try again briefly.
        held.append(wait_until(lambda: open_subscriber(server, channels=[ch]), timeout=5,
                               what="a WebSocket to take the freed slot"))
        # Full again (the refused connections above were not leaked into the count).
        status, _, data = publish_status(server, ch)
        assert_json_error(status, data, 503, "too_many_connections", "full again after re-filling")
        expect_refusal(f"{server.ws_url}/subscribe?channel={ch}", "too_many_connections", 1013)
        # The connections within the limit keep working.
        assert ws_op(held[0], {"op": "ping", "id": 1}) == {"type": "pong", "id": 1}
    finally:
        for ws in held:
            ws.close()
    # Everything closed: the full limit is available again (nothing leaked).
    def all_free():
        conns = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(limit - 1)]
        try:
            return publish_status(server, unique("mc-free"))[0] == 200
        finally:
            for c in conns:
                c.close()
    wait_until(all_free, timeout=5, what=f"{limit} connections to be accepted again")


# --------------------------------------------------------------------------- subscriptions

def test_max_subscriptions_in_the_query_and_through_ops(start_herald):
    server = start_herald("--max-subscriptions", "3")
    a, b, c, d = (unique(x) for x in "abcd")

    # Over the limit in the query: error, then close 1008; nothing subscribed in Redis.
    query = urllib.parse.urlencode([("channel", a), ("channel", b), ("pattern", c + "*"), ("shard", d)])
    expect_refusal(f"{server.ws_url}/subscribe?{query}", "too_many_subscriptions", 1008)
    status, _, answer = http_json("POST", f"{server.base_url}/publish/{a}", b"m")
    assert status == 200 and answer["receivers"] == 0, f"a refused connection subscribed: {answer}"

    # Exactly the limit in the query is fine.
    ws3 = open_subscriber(server, channels=[a, b], patterns=[c + "*"])
    ws3.close()

    ws = open_subscriber(server, channels=[a, b])
    try:
        # Two more would make four: refused as a whole, the connection stays.
        answer = ws_op(ws, {"op": "subscribe", "channels": [c, d], "id": 1})
        assert answer.get("type") == "error" and answer.get("code") == "too_many_subscriptions", answer
        assert answer.get("id") == 1, answer
        assert ws_op(ws, {"op": "ping", "id": 2}) == {"type": "pong", "id": 2}
        status, _, answer = http_json("POST", f"{server.base_url}/publish/{c}", b"m")
        assert answer["receivers"] == 0, f"a refused subscribe op still subscribed {c}: {answer}"
        # One more reaches the limit.
        assert ws_op(ws, {"op": "subscribe", "channels": [c], "id": 3}) == {
            "type": "subscribed", "kind": "channel", "names": [c], "id": 3}
        # Re-subscribing to a held channel adds nothing and is allowed.
        assert ws_op(ws, {"op": "subscribe", "channels": [a], "id": 4}) == {
            "type": "subscribed", "kind": "channel", "names": [a], "id": 4}
        # Patterns and shards count too.
        for op, key, name in (("psubscribe", "patterns", d + "*"), ("ssubscribe", "channels", d)):
            answer = ws_op(ws, {"op": op, key: [name], "id": op})
            assert answer.get("code") == "too_many_subscriptions" and answer.get("id") == op, answer
        # Leaving one frees a slot.
        assert ws_op(ws, {"op": "unsubscribe", "channels": [b], "id": 5}) == {
            "type": "unsubscribed", "kind": "channel", "names": [b], "id": 5}
        assert ws_op(ws, {"op": "psubscribe", "patterns": [d + "*"], "id": 6}) == {
            "type": "subscribed", "kind": "pattern", "names": [d + "*"], "id": 6}
        # Deliveries still flow on the held subscriptions.
        status, _, answer = http_json("POST", f"{server.base_url}/publish/{c}", b"still here")
        assert status == 200 and answer["receivers"] == 1, answer
        assert recv_json(ws) == {"type": "message", "channel": c, "data": "still here"}
    finally:
        ws.close()


# --------------------------------------------------------------------------- pending commands

def redis_blocked(port, probe_timeout=0.15) -> bool:
    """True when redis-server does not answer a PING within `probe_timeout` (DEBUG SLEEP)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        sock.settimeout(probe_timeout)
        try:
            return not sock.recv(64).startswith(b"+PONG")
        except socket.timeout:
            return True


def test_max_pending_answers_503_overloaded_at_once(start_redis, start_herald):
    redis = start_redis(extra_args=["--enable-debug-command", "yes"])  # Redis 7: off by default
    limit, fired, sleep_s = 5, 24, 2
    server = start_herald("--max-pending", str(limit), loops=1, redis_url=redis.url)
    ch = unique("pending")
    assert publish_status(server, ch)[0] == 200

    sleeper = subprocess.Popen([REDIS_CLI, "-h", "127.0.0.1", "-p", str(redis.port), "DEBUG", "SLEEP",
                                str(sleep_s)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: redis_blocked(redis.port), timeout=5, interval=0.02,
                   what="redis-server to be busy with DEBUG SLEEP")
        slept_at = time.monotonic()
        results = [None] * fired

        def fire(i):
            started = time.monotonic()
            try:
                status, hdrs, data = http("POST", f"{server.base_url}/publish/{ch}", f"m{i}".encode(),
                                          timeout=sleep_s + 8)
                results[i] = (status, hdrs, data, time.monotonic() - started, time.monotonic() - slept_at)
            except Exception as exc:  # noqa: BLE001 - reported below
                results[i] = (None, None, repr(exc).encode(), time.monotonic() - started, None)

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(fired)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(sleep_s + 10)
        assert all(r is not None for r in results), "a publish never came back"
        assert sleeper.wait(10) == 0
    finally:
        stop_process(sleeper)

    summary = [(r[0], r[2][:80], round(r[3], 2)) for r in results]
    accepted = [r for r in results if r[0] == 200]
    overloaded = [r for r in results if r[0] == 503]
    assert len(accepted) + len(overloaded) == fired, f"answers other than 200/503: {summary}"
    assert 1 <= len(accepted) <= limit, (
        f"{len(accepted)} publishes were queued for Redis with --max-pending {limit}: {summary}")
    assert len(overloaded) >= fired - limit, summary
    for status, hdrs, data, took, _ in overloaded:
        assert_json_error(status, data, 503, "overloaded", "publish beyond --max-pending")
        assert hdrs.get("Retry-After"), dict(hdrs)
        # Refused at once, while Redis is still asleep.
        assert took < 1.0, f"an overloaded publish took {took:.2f}s to be refused: {summary}"
    for status, _, data, took, since_sleep in accepted:
        assert json.loads(data)["channel"] == ch
        # Answered once Redis woke up, not after some long timeout.
        assert since_sleep < sleep_s + 3, f"a queued publish was answered after {since_sleep:.1f}s"
    # And publishing works again.
    assert publish_status(server, ch)[0] == 200
