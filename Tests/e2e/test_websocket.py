"""GET /subscribe: subscriptions, envelopes, control messages, errors, and RFC 6455 on the wire."""

import json
import struct
import time

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import (
    RawWebSocket,
    assert_silent,
    close_code,
    count_complete_responses,
    http,
    launch_herald,
    open_subscriber,
    parse_responses,
    publish,
    raw_exchange,
    recv_json,
    subscribe_url,
    unique,
    wait_subscribed,
    ws_connect,
    ws_handshake_request,
)

TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def send_json(ws, obj):
    ws.send(json.dumps(obj))


def recv_n(ws, n, timeout=5.0):
    return [recv_json(ws, timeout) for _ in range(n)]


def as_set(messages):
    return sorted(json.dumps(m, sort_keys=True) for m in messages)


# --------------------------------------------------------------------------- subscriptions

def test_query_subscriptions_and_envelopes(herald):
    a, b, prefix = unique("a"), unique("b"), unique("mail")
    pattern = prefix + "-*"
    ws = ws_connect(subscribe_url(herald, channels=[a, b], patterns=[pattern]))
    try:
        wait_subscribed(ws, {"channel": [a, b], "pattern": [pattern]})
        assert publish(herald, a, "hello") == {"channel": a, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": a, "data": "hello"}
        assert publish(herald, b, "hi b") == {"channel": b, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": b, "data": "hi b"}
        assert publish(herald, prefix + "-7", "hi") == {"channel": prefix + "-7", "receivers": 1}
        assert recv_json(ws) == {"type": "pmessage", "pattern": pattern,
                                 "channel": prefix + "-7", "data": "hi"}
        assert publish(herald, unique("other"), "nobody")["receivers"] == 0
        assert_silent(ws, 0.3)
    finally:
        ws.close()


def test_channel_and_pattern_both_deliver(herald):
    prefix = unique("mail")
    channel, pattern = prefix + "-1", prefix + "-*"
    ws = open_subscriber(herald, channels=[channel], patterns=[pattern])
    try:
        assert publish(herald, channel, "twice") == {"channel": channel, "receivers": 2}
        got = recv_n(ws, 2)
        assert as_set(got) == as_set([
            {"type": "message", "channel": channel, "data": "twice"},
            {"type": "pmessage", "pattern": pattern, "channel": channel, "data": "twice"}])
        assert_silent(ws, 0.3)
    finally:
        ws.close()


def test_shard_subscription_by_query(herald):
    shard = unique("s")
    ws = open_subscriber(herald, shards=[shard])
    try:
        assert publish(herald, shard, "x", sharded=True) == {"channel": shard, "receivers": 1}
        assert recv_json(ws) == {"type": "smessage", "channel": shard, "data": "x"}
    finally:
        ws.close()


def test_two_clients_on_one_channel_both_receive(herald):
    channel = unique("fan")
    first = open_subscriber(herald, channels=[channel])
    second = open_subscriber(herald, channels=[channel])
    try:
        answer = publish(herald, channel, "to both")
        assert answer["channel"] == channel and answer["receivers"] >= 1, answer
        for ws in (first, second):
            assert recv_json(ws) == {"type": "message", "channel": channel, "data": "to both"}
    finally:
        first.close()
        second.close()


# --------------------------------------------------------------------------- control messages

def test_control_messages_answered_with_id(herald):
    a, b, c, prefix, shard = (unique(x) for x in ("a", "b", "c", "p", "s"))
    ws = ws_connect(subscribe_url(herald))
    try:
        send_json(ws, {"op": "subscribe", "channels": [a, b], "id": 1})
        got = recv_json(ws)
        assert got.pop("names") in ([a, b], [b, a])
        assert got == {"type": "subscribed", "kind": "channel", "id": 1}

        send_json(ws, {"op": "subscribe", "channel": c, "id": "single"})
        assert recv_json(ws) == {"type": "subscribed", "kind": "channel", "names": [c],
                                 "id": "single"}

        send_json(ws, {"op": "psubscribe", "patterns": [prefix + "-*"], "id": {"any": ["json"]}})
        assert recv_json(ws) == {"type": "subscribed", "kind": "pattern",
                                 "names": [prefix + "-*"], "id": {"any": ["json"]}}

        send_json(ws, {"op": "psubscribe", "pattern": prefix + "?x", "id": 2.5})
        assert recv_json(ws) == {"type": "subscribed", "kind": "pattern",
                                 "names": [prefix + "?x"], "id": 2.5}

        send_json(ws, {"op": "ssubscribe", "channels": [shard], "id": None})
        assert recv_json(ws) == {"type": "subscribed", "kind": "shard", "names": [shard],
                                 "id": None}

        send_json(ws, {"op": "ping", "id": 42})
        assert recv_json(ws) == {"type": "pong", "id": 42}
        send_json(ws, {"op": "ping"})
        assert recv_json(ws) == {"type": "pong"}

        # publish over the socket to a channel this same client listens to
        send_json(ws, {"op": "publish", "channel": a, "message": "self", "id": "p1"})
        got = recv_n(ws, 2)
        assert as_set(got) == as_set([
            {"type": "published", "channel": a, "receivers": 1, "id": "p1"},
            {"type": "message", "channel": a, "data": "self"}])

        send_json(ws, {"op": "publish", "channel": shard, "message": "sx", "sharded": True,
                       "id": "p2"})
        got = recv_n(ws, 2)
        assert as_set(got) == as_set([
            {"type": "published", "channel": shard, "receivers": 1, "id": "p2"},
            {"type": "smessage", "channel": shard, "data": "sx"}])

        # deliveries reach the subscriptions made by control messages
        assert publish(herald, c, "to c")["receivers"] == 1
        assert recv_json(ws) == {"type": "message", "channel": c, "data": "to c"}
        assert publish(herald, prefix + "-9", "to p")["receivers"] == 1
        assert recv_json(ws) == {"type": "pmessage", "pattern": prefix + "-*",
                                 "channel": prefix + "-9", "data": "to p"}

        send_json(ws, {"op": "unsubscribe", "channels": [a], "patterns": [prefix + "-*"],
                       "shards": [shard], "id": 9})
        got = recv_n(ws, 3)
        assert as_set(got) == as_set([
            {"type": "unsubscribed", "kind": "channel", "names": [a], "id": 9},
            {"type": "unsubscribed", "kind": "pattern", "names": [prefix + "-*"], "id": 9},
            {"type": "unsubscribed", "kind": "shard", "names": [shard], "id": 9}])

        # b and c are still subscribed
        assert publish(herald, b, "still")["receivers"] == 1
        assert recv_json(ws) == {"type": "message", "channel": b, "data": "still"}
    finally:
        ws.close()


def publish_until_nobody_listens(herald, channel, sharded=False, timeout=3.0):
    """Publish until Redis reports 0 receivers (Herald may drop its Redis subscription a moment
    after answering `unsubscribed`). Returns the answers."""
    answers = []
    deadline = time.monotonic() + timeout
    while True:
        answers.append(publish(herald, channel, "after unsubscribe", sharded=sharded))
        if answers[-1]["receivers"] == 0:
            return answers
        if time.monotonic() > deadline:
            pytest.fail(f"receivers never reached 0 for {channel} after unsubscribe: {answers}")
        time.sleep(0.1)


def test_unsubscribe_stops_deliveries(herald):
    channel = unique("unsub")
    ws = open_subscriber(herald, channels=[channel])
    try:
        send_json(ws, {"op": "unsubscribe", "channels": [channel], "id": 5})
        assert recv_json(ws) == {"type": "unsubscribed", "kind": "channel", "names": [channel],
                                 "id": 5}
        publish_until_nobody_listens(herald, channel)
        assert_silent(ws, 0.5)
        send_json(ws, {"op": "ping", "id": "alive"})
        assert recv_json(ws) == {"type": "pong", "id": "alive"}
    finally:
        ws.close()


def test_unsubscribe_without_lists_drops_everything(herald):
    channel, prefix, shard = unique("c"), unique("p"), unique("s")
    ws = open_subscriber(herald, channels=[channel], patterns=[prefix + "-*"], shards=[shard])
    try:
        send_json(ws, {"op": "unsubscribe"})
        got = recv_n(ws, 3)
        assert as_set(got) == as_set([
            {"type": "unsubscribed", "kind": "channel", "names": [channel]},
            {"type": "unsubscribed", "kind": "pattern", "names": [prefix + "-*"]},
            {"type": "unsubscribed", "kind": "shard", "names": [shard]}])
        publish_until_nobody_listens(herald, channel)
        publish_until_nobody_listens(herald, prefix + "-1")
        publish_until_nobody_listens(herald, shard, sharded=True)
        assert_silent(ws, 0.5)
    finally:
        ws.close()


def test_canonically_equivalent_names_are_two_channels(herald):
    """Redis tells channels apart by bytes: "café" spelled with U+00E9 and with e + U+0301 are
    two channels, on one connection too (subscribe, deliveries, unsubscribe-everything)."""
    base = unique("eq")
    composed, decomposed = base + "-caf\u00e9", base + "-cafe\u0301"
    ws = open_subscriber(herald, channels=[composed, decomposed])
    try:
        assert publish(herald, composed, "one")["receivers"] == 1
        assert publish(herald, decomposed, "two")["receivers"] == 1
        got = recv_n(ws, 2)
        assert sorted((m["channel"], m["data"]) for m in got) == sorted([(composed, "one"), (decomposed, "two")])
        send_json(ws, {"op": "unsubscribe"})
        answer = recv_json(ws)
        assert answer["type"] == "unsubscribed" and sorted(answer["names"]) == sorted([composed, decomposed]), answer
        publish_until_nobody_listens(herald, composed)
        publish_until_nobody_listens(herald, decomposed)
        assert_silent(ws, 0.3)
    finally:
        ws.close()


def test_raw_format(herald):
    channel = unique("raw")
    ws = open_subscriber(herald, channels=[channel], fmt="raw")
    try:
        publish(herald, channel, "text ✓")
        got = ws.recv(timeout=5)
        assert isinstance(got, str) and got == "text ✓", got
        publish(herald, channel, b"\x00\xff\xc3")
        got = ws.recv(timeout=5)
        assert isinstance(got, bytes) and got == b"\x00\xff\xc3", got
        # answers to control messages stay JSON
        send_json(ws, {"op": "ping", "id": 3})
        assert recv_json(ws) == {"type": "pong", "id": 3}
    finally:
        ws.close()


# --------------------------------------------------------------------------- errors

def assert_error(msg, code, id_=None):
    assert msg.get("type") == "error", msg
    assert msg.get("code") == code, msg
    assert isinstance(msg.get("message"), str) and msg["message"], msg
    expected_keys = {"type", "code", "message"} | ({"id"} if id_ is not None else set())
    assert set(msg) == expected_keys, msg
    if id_ is not None:
        assert msg["id"] == id_, msg


def test_bad_json_answered_and_connection_stays_open(herald):
    channel = unique("err")
    ws = open_subscriber(herald, channels=[channel])
    try:
        ws.send("{this is not json")
        assert_error(recv_json(ws), "bad_json")
        ws.send("")
        assert_error(recv_json(ws), "bad_json")
        # still subscribed and answering
        assert publish(herald, channel, "still here")["receivers"] == 1
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": "still here"}
        send_json(ws, {"op": "ping", "id": 1})
        assert recv_json(ws) == {"type": "pong", "id": 1}
    finally:
        ws.close()


def test_unknown_op(herald):
    ws = ws_connect(subscribe_url(herald))
    try:
        send_json(ws, {"op": "dance", "id": 3})
        assert_error(recv_json(ws), "unknown_op", 3)
        send_json(ws, {"op": "ping", "id": 4})
        assert recv_json(ws) == {"type": "pong", "id": 4}
    finally:
        ws.close()


@pytest.mark.parametrize("message", [
    {"op": "subscribe", "id": 10},
    {"op": "psubscribe", "patterns": "not-a-list", "id": 11},
    {"op": "publish", "message": "no channel", "id": 12},
])
def test_bad_request(herald, message):
    ws = ws_connect(subscribe_url(herald))
    try:
        send_json(ws, message)
        assert_error(recv_json(ws), "bad_request", message["id"])
        send_json(ws, {"op": "ping"})
        assert recv_json(ws) == {"type": "pong"}
    finally:
        ws.close()


def test_binary_control_frame_refused(herald):
    ws = ws_connect(subscribe_url(herald))
    try:
        ws.send(b'{"op":"ping","id":1}')
        assert_error(recv_json(ws), "binary_not_supported")
        send_json(ws, {"op": "ping", "id": 2})
        assert recv_json(ws) == {"type": "pong", "id": 2}
    finally:
        ws.close()


# --------------------------------------------------------------------------- handshake failures

def handshake_answer(herald, request):
    raw = raw_exchange(herald.port, request, 5, until=count_complete_responses(1))
    responses, _ = parse_responses(raw)
    assert responses, f"no HTTP answer to {request!r}: {bytes(raw)!r}"
    return responses[0]


def error_code(resp):
    return json.loads(resp.body.decode("utf-8")).get("error")


def test_handshake_without_key_is_400(herald):
    request, _ = ws_handshake_request("/subscribe?channel=x", key="")
    resp = handshake_answer(herald, request)
    assert resp.status == 400, resp
    assert error_code(resp) == "bad_request"


def test_handshake_with_malformed_key_is_400(herald):
    request, _ = ws_handshake_request("/subscribe?channel=x", key="too-short")
    resp = handshake_answer(herald, request)
    assert resp.status == 400, resp
    assert error_code(resp) == "bad_request"


def test_handshake_without_connection_upgrade_is_400(herald):
    request = (b"GET /subscribe?channel=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    resp = handshake_answer(herald, request)
    assert resp.status == 400, resp
    assert error_code(resp) == "bad_request"


def test_handshake_version_8_is_426(herald):
    request, _ = ws_handshake_request("/subscribe?channel=x", version="8")
    resp = handshake_answer(herald, request)
    assert resp.status == 426, resp
    assert resp.headers.get("sec-websocket-version") == "13", resp.headers
    assert error_code(resp) == "upgrade_required"


def test_plain_get_subscribe_is_426(herald):
    status, headers, body = http("GET", herald.base_url + "/subscribe?channel=x")
    assert status == 426, (status, body)
    assert json.loads(body)["error"] == "upgrade_required"


def test_handshake_case_insensitive_headers(herald):
    request = (b"GET /subscribe HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\n"
               b"connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"sec-websocket-version: 13\r\n\r\n")
    raw = raw_exchange(herald.port, request, 2, until=lambda b: b"\r\n\r\n" in b)
    status_line = bytes(raw).split(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1.1 101"), raw
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in raw, raw  # RFC 6455 section 1.3 example


# --------------------------------------------------------------------------- frames on the wire

def open_raw(herald, path="/subscribe"):
    return RawWebSocket(herald.port, path)


def expect_close(ws, code, timeout=5.0):
    try:
        got, reason, before = ws.recv_until_close(timeout)
    except EOFError:
        pytest.fail(f"server dropped the TCP connection without a close frame (expected {code})")
    except TimeoutError:
        pytest.fail(f"no close frame within {timeout}s (expected {code})")
    assert got == code, f"expected close {code}, got {got} ({reason!r}); frames before: {before}"
    assert ws.wait_eof(5), "server did not close the TCP connection after its close frame"


def test_unmasked_client_frame_is_1002(herald):
    ws = open_raw(herald)
    try:
        ws.send_frame(TEXT, b'{"op":"ping"}', mask=False)
        expect_close(ws, 1002)
    finally:
        ws.close()


@pytest.mark.parametrize("frame", [
    RawWebSocket.frame(TEXT, b'{"op":"ping"}', rsv=0b100),
    RawWebSocket.frame(0x3, b"x"),
    RawWebSocket.frame(0xB, b""),
    RawWebSocket.frame(PING, b"x" * 126),
    RawWebSocket.frame(PING, b"x", fin=False),
    RawWebSocket.frame(CONT, b"x"),
    RawWebSocket.frame(CLOSE, b"\x03"),
    RawWebSocket.frame(CLOSE, struct.pack("!H", 999)),
], ids=["rsv1", "opcode-3", "opcode-B", "long-ping", "fragmented-ping", "stray-continuation",
        "one-byte-close", "close-code-999"])
def test_protocol_errors_are_1002(herald, frame):
    ws = open_raw(herald)
    try:
        ws.sock.sendall(frame)
        expect_close(ws, 1002)
    finally:
        ws.close()


def test_invalid_utf8_text_is_1007(herald):
    ws = open_raw(herald)
    try:
        ws.send_frame(TEXT, b'{"op":"ping","x":"\xff\xfe"}')
        expect_close(ws, 1007)
    finally:
        ws.close()


def test_invalid_utf8_split_across_fragments_is_1007(herald):
    ws = open_raw(herald)
    try:
        ws.send_frame(TEXT, b'{"op":"ping","x":"\xce', fin=False)
        ws.send_frame(CONT, b'\xba\xe1\xbd"}', fin=False)  # valid so far: κ then a partial char
        ws.send_frame(CONT, b"\xff", fin=True)
        expect_close(ws, 1007)
    finally:
        ws.close()


@pytest.fixture(scope="module")
def small_message_herald(redis_server):
    server = launch_herald("--max-message", "1024", redis_url=redis_server.url)
    yield server
    server.stop()


def padded_ping(size, id_):
    text = json.dumps({"op": "ping", "id": id_})
    return text[:-1] + " " * (size - len(text)) + "}"


def test_message_at_max_message_is_processed(small_message_herald):
    ws = open_raw(small_message_herald)
    try:
        message = padded_ping(1024, 1)
        assert len(message.encode()) == 1024
        ws.send_text(message)
        fin, opcode, payload = ws.recv_frame()
        assert (opcode, json.loads(payload)) == (TEXT, {"type": "pong", "id": 1})
    finally:
        ws.close()


def test_message_over_max_message_is_1009(small_message_herald):
    ws = open_raw(small_message_herald)
    try:
        ws.send_text(padded_ping(2000, 1))
        expect_close(ws, 1009)
    finally:
        ws.close()


def test_fragmented_message_over_max_message_is_1009(small_message_herald):
    ws = open_raw(small_message_herald)
    try:
        message = padded_ping(1800, 1).encode()
        ws.send_frame(TEXT, message[:600], fin=False)
        ws.send_frame(CONT, message[600:1200], fin=False)
        ws.send_frame(CONT, message[1200:], fin=True)
        expect_close(ws, 1009)
    finally:
        ws.close()


def test_ping_payload_is_echoed_in_pong(herald):
    ws = open_raw(herald)
    try:
        ws.send_frame(PING, b"are you there?")
        fin, opcode, payload = ws.recv_frame()
        assert (fin, opcode, payload) == (True, PONG, b"are you there?")
        ws.send_frame(PING, b"")
        assert ws.recv_frame() == (True, PONG, b"")
    finally:
        ws.close()


def test_fragmented_message_with_interleaved_ping(herald):
    ws = open_raw(herald)
    try:
        ws.send_frame(TEXT, b'{"op":"pi', fin=False)
        ws.send_frame(PING, b"mid")
        ws.send_frame(CONT, b'ng","id"', fin=False)
        ws.send_frame(CONT, b":7}", fin=True)
        assert ws.recv_frame() == (True, PONG, b"mid")
        fin, opcode, payload = ws.recv_frame()
        assert (fin, opcode) == (True, TEXT)
        assert json.loads(payload) == {"type": "pong", "id": 7}
    finally:
        ws.close()


def test_client_close_1000_is_echoed(herald):
    ws = open_raw(herald)
    try:
        ws.send_frame(CLOSE, struct.pack("!H", 1000) + b"bye")
        fin, opcode, payload = ws.recv_frame()
        assert opcode == CLOSE and close_code(payload) == 1000, (opcode, payload)
        assert ws.wait_eof(5), "server kept TCP open after the closing handshake"
    finally:
        ws.close()


def test_client_close_without_code_is_answered(herald):
    ws = open_raw(herald)
    try:
        ws.send_frame(CLOSE, b"")
        fin, opcode, payload = ws.recv_frame()
        assert opcode == CLOSE and close_code(payload) in (None, 1000), (opcode, payload)
        assert ws.wait_eof(5)
    finally:
        ws.close()


def test_websockets_client_close_is_clean(herald):
    ws = open_subscriber(herald, channels=[unique("bye")])
    ws.close()
    assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000


# --------------------------------------------------------------------------- server pings

@pytest.fixture(scope="module")
def pinging_herald(redis_server):
    server = launch_herald("--ping-interval", "1", redis_url=redis_server.url)
    yield server
    server.stop()


def test_silent_client_is_pinged_then_dropped(pinging_herald):
    ws = open_raw(pinging_herald)
    started = time.monotonic()
    try:
        fin, opcode, payload = ws.recv_frame(timeout=3)
        pinged_after = time.monotonic() - started
        assert opcode == PING, f"expected a ping frame, got opcode {opcode:#x} {payload!r}"
        assert pinged_after <= 2.5, f"first ping after {pinged_after:.2f}s with --ping-interval 1"
        # Never answer: Herald must drop the connection (a close frame is allowed first).
        deadline = started + 4.5
        dropped = False
        while time.monotonic() < deadline:
            try:
                ws.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
            except EOFError:
                dropped = True
                break
            except TimeoutError:
                break
        elapsed = time.monotonic() - started
        assert dropped, f"silent client still connected {elapsed:.2f}s after the handshake"
    finally:
        ws.close()


def test_responsive_client_is_kept(pinging_herald):
    """The websockets client answers Herald's pings, so it stays connected past 3 intervals."""
    channel = unique("alive")
    ws = open_subscriber(pinging_herald, channels=[channel])
    try:
        time.sleep(3.5)
        assert publish(pinging_herald, channel, "still")["receivers"] == 1
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": "still"}
    except ConnectionClosed as exc:
        pytest.fail(f"Herald closed a client that answered its pings: {exc}")
    finally:
        ws.close()
