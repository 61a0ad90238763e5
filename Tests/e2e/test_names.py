"""Redis names are bytes end to end (issue 9, item 6).

Two names that are canonically equivalent text but differ in bytes ("é" precomposed, U+00E9,
and "e" + U+0301) are two names to Redis, so they are two channels, two streams and two queues
to Herald too, on every way in: HTTP paths, WebSocket ops, the subscribe query of WebSockets
and event streams. A subscriber of one never gets the other's messages, and grants match by
bytes. Each name must come back in answers byte for byte as it was sent.
"""

import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import pytest

from conftest import (
    http,
    http_json,
    launch_herald,
    open_subscriber,
    recv_json,
    assert_silent,
    unique,
    wait_subscribed,
    ws_connect,
)
from test_sse import SSEConnection, has_events

SECRET = "names-secret-0123456789abcdef0123"


def pair(prefix):
    """Two names, equal as Unicode text (canonically equivalent), different in bytes."""
    base = unique(prefix)
    composed, decomposed = f"{base}-caf\u00e9", f"{base}-cafe\u0301"
    assert composed.encode() != decomposed.encode()
    return composed, decomposed


def quoted(name):
    return urllib.parse.quote(name, safe="")


def token(publish, subscribe):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "names", "exp": int(time.time()) + 3600,
                           "publish": publish, "subscribe": subscribe}).encode())
    signature = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def publish_path(herald, channel, message, headers=None):
    return http_json("POST", f"{herald.base_url}/publish/{quoted(channel)}", message.encode(), headers)


# --------------------------------------------------------------------------- pub/sub

def test_channels_differing_only_in_bytes_are_two_channels(herald):
    composed, decomposed = pair("name")
    # One subscribes in the query, the other with an op; both are told their exact name.
    first = open_subscriber(herald, channels=[composed])
    second = ws_connect(f"{herald.ws_url}/subscribe")
    try:
        second.send(json.dumps({"op": "subscribe", "channel": decomposed}))
        wait_subscribed(second, {"channel": [decomposed]})

        status, _, answer = publish_path(herald, composed, "to-composed")
        assert (status, answer) == (200, {"channel": composed, "receivers": 1})
        assert recv_json(first) == {"type": "message", "channel": composed, "data": "to-composed"}
        assert_silent(second)

        # The WebSocket publish op, to the other name.
        first.send(json.dumps({"op": "publish", "channel": decomposed, "message": "to-decomposed", "id": 1}))
        answer = recv_json(first)
        assert answer == {"type": "published", "channel": decomposed, "receivers": 1, "id": 1}
        assert recv_json(second) == {"type": "message", "channel": decomposed, "data": "to-decomposed"}
        assert_silent(first)

        # The JSON publish body, to both at once.
        status, _, answer = http_json("POST", herald.base_url + "/publish", json.dumps(
            {"messages": [{"channel": composed, "message": "a"}, {"channel": decomposed, "message": "b"}]}))
        assert status == 200 and answer == {"results": [
            {"channel": composed, "receivers": 1}, {"channel": decomposed, "receivers": 1}]}, answer
        assert recv_json(first)["data"] == "a"
        assert recv_json(second)["data"] == "b"

        # Unsubscribing one name leaves the other.
        second.send(json.dumps({"op": "subscribe", "channel": composed}))
        wait_subscribed(second, {"channel": [composed]})
        second.send(json.dumps({"op": "unsubscribe", "channel": decomposed}))
        assert recv_json(second) == {"type": "unsubscribed", "kind": "channel", "names": [decomposed]}
        status, _, answer = publish_path(herald, composed, "both")
        assert status == 200 and answer["receivers"] >= 1, "Redis counts Herald's links, not clients"
        assert recv_json(first)["data"] == "both"
        assert recv_json(second)["data"] == "both"
        status, _, answer = publish_path(herald, decomposed, "nobody")
        assert answer["receivers"] == 0
        assert_silent(second)
    finally:
        first.close()
        second.close()


def test_one_query_may_name_both_and_hears_each_once(herald):
    composed, decomposed = pair("name-q")
    ws = ws_connect(f"{herald.ws_url}/subscribe?" + urllib.parse.urlencode(
        [("channel", composed), ("channel", decomposed), ("channel", composed)]))
    try:
        answers = wait_subscribed(ws, {"channel": [composed, decomposed]})
        assert answers[0]["names"] == [composed, decomposed], "each name once, in order, as sent"
        publish_path(herald, decomposed, "d")
        assert recv_json(ws) == {"type": "message", "channel": decomposed, "data": "d"}
        assert_silent(ws)
    finally:
        ws.close()


def test_event_stream_query_names_by_bytes(herald):
    composed, decomposed = pair("name-sse")
    stream = SSEConnection(herald.port, f"/events?channel={quoted(decomposed)}")
    try:
        parser = stream.read_until(has_events(1), what="subscribed")
        assert parser.json_events()[0] == {"type": "subscribed", "kind": "channel", "names": [decomposed]}
        status, _, answer = publish_path(herald, composed, "not for you")
        assert answer["receivers"] == 0
        publish_path(herald, decomposed, "for you")
        parser = stream.read_until(has_events(2), what="the message")
        assert parser.json_events()[1] == {"type": "message", "channel": decomposed, "data": "for you"}
        stream.read_for(0.3)
        assert len(parser.events) == 2, parser.json_events()
    finally:
        stream.close()


# --------------------------------------------------------------------------- streams

def test_streams_differing_only_in_bytes_are_two_streams(herald, redis_server):
    composed, decomposed = pair("name-stream")
    ids = {}
    for name in (composed, decomposed):
        status, _, answer = http_json("POST", f"{herald.base_url}/streams/{quoted(name)}", name.encode())
        assert status == 200 and answer["stream"] == name, answer
        ids[name] = answer["id"]
    assert redis_server.cli("EXISTS", composed, decomposed).strip() == "2", "two keys in Redis"
    for name in (composed, decomposed):
        status, _, answer = http_json("GET", f"{herald.base_url}/streams/{quoted(name)}")
        assert status == 200 and answer["stream"] == name
        assert [(e["id"], e["fields"]) for e in answer["entries"]] == [(ids[name], {"data": name})]

    # A reader of one (WebSocket query) replays only its own entries, named as sent.
    ws = ws_connect(f"{herald.ws_url}/subscribe?" + urllib.parse.urlencode([("stream", decomposed), ("from", "0")]))
    try:
        entry = recv_json(ws)
        assert (entry["type"], entry["stream"], entry["id"]) == ("entry", decomposed, ids[decomposed])
        http_json("POST", f"{herald.base_url}/streams/{quoted(composed)}", b"later")
        assert_silent(ws)
    finally:
        ws.close()


def test_group_acks_name_their_stream_by_bytes(herald):
    composed, decomposed = pair("name-group")
    http_json("POST", f"{herald.base_url}/streams/{quoted(composed)}", b"job")
    ws = ws_connect(f"{herald.ws_url}/subscribe?" + urllib.parse.urlencode(
        [("stream", composed), ("group", "g\u00e9"), ("consumer", "c"), ("from", "0")]))
    try:
        entry = recv_json(ws)
        assert (entry["type"], entry["stream"], entry["group"]) == ("entry", composed, "g\u00e9")
        ws.send(json.dumps({"op": "ack", "stream": decomposed, "ids": [entry["id"]], "id": 1}))
        refused = recv_json(ws)
        assert (refused["type"], refused["code"], refused["id"]) == ("error", "bad_request", 1), refused
        ws.send(json.dumps({"op": "ack", "stream": composed, "ids": [entry["id"]], "id": 2}))
        assert recv_json(ws) == {"type": "acked", "stream": composed, "count": 1, "id": 2}
    finally:
        ws.close()


# --------------------------------------------------------------------------- queues

def test_queues_differing_only_in_bytes_are_two_queues(herald):
    composed, decomposed = pair("name-queue")
    status, _, answer = http_json("POST", f"{herald.base_url}/queues/{quoted(composed)}", b"item")
    assert (status, answer) == (200, {"queue": composed, "length": 1})
    status, _, _ = http("GET", f"{herald.base_url}/queues/{quoted(decomposed)}")
    assert status == 204, "the other queue is empty"

    worker = ws_connect(f"{herald.ws_url}/subscribe?" + urllib.parse.urlencode([("queue", decomposed)]))
    try:
        worker.send(json.dumps({"op": "pop", "wait": 0, "id": 1}))
        assert recv_json(worker) == {"type": "empty", "queue": decomposed, "id": 1}
        worker.send(json.dumps({"op": "ack", "queue": composed, "tag": 1, "id": 2}))
        refused = recv_json(worker)
        assert (refused["type"], refused["code"]) == ("error", "bad_request"), "not this worker's queue"
    finally:
        worker.close()
    status, _, body = http("GET", f"{herald.base_url}/queues/{quoted(composed)}")
    assert (status, body) == (200, b"item")


# --------------------------------------------------------------------------- grants

@pytest.fixture
def guarded(redis_server):
    server = launch_herald("--jwt-secret", SECRET, redis_url=redis_server.url)
    yield server
    server.stop()


def test_grants_match_names_by_bytes(guarded):
    composed, decomposed = pair("name-grant")
    credential = token(publish=[composed + "*"], subscribe=[composed, composed + "-*"])
    auth = {"Authorization": f"Bearer {credential}"}

    status, _, answer = publish_path(guarded, composed, "ok", auth)
    assert status == 200, answer
    status, _, answer = publish_path(guarded, decomposed, "no", auth)
    assert (status, answer["error"]) == (403, "forbidden"), answer
    for family in ("streams", "queues"):
        status, _, answer = http_json("POST", f"{guarded.base_url}/{family}/{quoted(decomposed + family)}", b"x", auth)
        assert (status, answer["error"]) == (403, "forbidden"), (family, answer)
        status, _, answer = http_json("POST", f"{guarded.base_url}/{family}/{quoted(composed + family)}", b"x", auth)
        assert status == 200, (family, answer)

    # Event stream: the query's names are checked by bytes.
    stream = SSEConnection(guarded.port, f"/events?channel={quoted(decomposed)}&token={credential}")
    try:
        assert stream.status == 403
    finally:
        stream.close()
    # WebSocket: the granted name subscribes; the other, and a pattern outside the grant, do not.
    ws = ws_connect(f"{guarded.ws_url}/subscribe?" + urllib.parse.urlencode(
        [("channel", composed), ("token", credential)]))
    try:
        wait_subscribed(ws, {"channel": [composed]})
        ws.send(json.dumps({"op": "subscribe", "channel": decomposed, "id": 1}))
        refused = recv_json(ws)
        assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused
        ws.send(json.dumps({"op": "psubscribe", "pattern": decomposed + "-*", "id": 2}))
        refused = recv_json(ws)
        assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused
        ws.send(json.dumps({"op": "psubscribe", "pattern": composed + "-*", "id": 3}))
        assert recv_json(ws) == {"type": "subscribed", "kind": "pattern", "names": [composed + "-*"], "id": 3}
        ws.send(json.dumps({"op": "publish", "channel": decomposed, "message": "m", "id": 4}))
        refused = recv_json(ws)
        assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused
    finally:
        ws.close()
