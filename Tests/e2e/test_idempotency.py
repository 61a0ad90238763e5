"""Idempotent writes (issue 10, item 4): `Idempotency-Key` on POST /publish..., /streams/{key} and
/queues/{name}, and `idempotency_key` on the WebSocket publish op. The first request does the
work and keeps its answer in Redis, atomically with the work; a retry gets the same answer plus
`Idempotent-Replayed: true` and does nothing; the same key with another request is 422."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from conftest import (
    assert_json_error,
    http,
    launch_herald,
    raw_exchange,
    recv_json,
    unique,
    wait_subscribed,
    ws_connect,
)


def key():
    return "k-" + uuid.uuid4().hex


def post(herald, path, body, idem=None, headers=None):
    headers = dict(headers or {})
    if idem is not None:
        headers["Idempotency-Key"] = idem
    status, hdrs, data = http("POST", herald.base_url + path, body, headers)
    return status, hdrs.get("Idempotent-Replayed"), data


def concurrently(n, action):
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        results[i] = action()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def drain(ws, wait=0.7):
    """Every message that arrives within `wait` s of silence."""
    got = []
    while True:
        try:
            got.append(json.loads(ws.recv(timeout=wait)))
        except TimeoutError:
            return got


# --------------------------------------------------------------------------- HTTP

def test_a_retried_publish_is_published_once_and_answered_alike(herald):
    channel = unique("idem")
    ws = ws_connect(f"{herald.ws_url}/subscribe?channel={channel}")
    try:
        wait_subscribed(ws, {"channel": [channel]})
        k = key()
        first = post(herald, f"/publish/{channel}", b"hello", k)
        again = post(herald, f"/publish/{channel}", b"hello", k)
        assert first[0] == 200 and first[1] is None, first
        assert again[0] == 200 and again[1] == "true", again
        assert json.loads(first[2]) == json.loads(again[2]) == {"channel": channel, "receivers": 1}
        messages = [m for m in drain(ws) if m.get("type") == "message"]
        assert [m["data"] for m in messages] == ["hello"]
    finally:
        ws.close()


def test_the_same_key_with_another_body_is_422(herald):
    k = key()
    assert post(herald, "/publish/c422", b"one", k)[0] == 200
    status, replayed, data = post(herald, "/publish/c422", b"two", k)
    assert_json_error(status, data, 422, "idempotency_key_reused")
    # ... and another target is another request.
    status, _, data = post(herald, "/streams/" + unique("s422"), b"one", k)
    assert status == 200, data


def test_fifty_concurrent_retries_do_the_work_once(herald, redis_server):
    channel, stream, queue = unique("c50"), unique("s50"), unique("q50")
    ws = ws_connect(f"{herald.ws_url}/subscribe?channel={channel}")
    try:
        wait_subscribed(ws, {"channel": [channel]})
        for path, check in [
            (f"/publish/{channel}", None),
            (f"/streams/{stream}", lambda: redis_server.cli("XLEN", stream).strip() == "1"),
            (f"/queues/{queue}", lambda: redis_server.cli("LLEN", queue).strip() == "1"),
        ]:
            k = key()
            answers = concurrently(50, lambda: post(herald, path, b"payload", k))
            assert all(a[0] == 200 for a in answers), answers[:3]
            bodies = {a[2] for a in answers}
            assert len(bodies) == 1, f"{path}: {len(bodies)} different answers"
            assert sum(1 for a in answers if a[1] == "true") == 49, path
            if check:
                assert check(), path
        assert len([m for m in drain(ws) if m.get("type") == "message"]) == 1
    finally:
        ws.close()


def test_a_batch_is_replayed_whole(herald):
    k = key()
    body = json.dumps({"messages": [{"channel": "b1", "message": "x"}, {"channel": "b2", "message": "y"}]})
    first = post(herald, "/publish", body, k)
    again = post(herald, "/publish", body, k)
    assert first[0] == again[0] == 200 and again[1] == "true"
    assert json.loads(first[2]) == json.loads(again[2])
    assert [r["channel"] for r in json.loads(first[2])["results"]] == ["b1", "b2"]


@pytest.mark.parametrize("value, why", [
    ("", "1 to 128"),
    ("x" * 129, "1 to 128"),
    ("x" * 10_000, "1 to 128"),
    ("caf\u00e9", "printable ASCII"),
])
def test_bad_keys_are_400(herald, value, why):
    request = (f"POST /publish/bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
               f"Idempotency-Key: {value}\r\n\r\nm").encode("utf-8")
    answer = raw_exchange(herald.port, request)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"bad_idempotency_key" in answer and why.encode() in answer, answer[-300:]


def test_control_characters_and_two_keys_are_400(herald):
    answer = raw_exchange(herald.port, b"POST /publish/bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                                       b"Idempotency-Key: a\x01b\r\n\r\nm")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    answer = raw_exchange(herald.port, b"POST /publish/bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                                       b"Idempotency-Key: a\r\nIdempotency-Key: b\r\n\r\nm")
    assert answer.startswith(b"HTTP/1.1 400") and b"bad_idempotency_key" in answer, answer[:300]


def test_a_failed_write_keeps_nothing(herald, redis_server):
    name = unique("wrongtype")
    redis_server.cli("SET", name, "a string")
    k = key()
    status, _, data = post(herald, f"/queues/{name}", b"item", k)
    assert_json_error(status, data, 409, "wrong_type")
    redis_server.cli("DEL", name)
    status, replayed, data = post(herald, f"/queues/{name}", b"item", k)
    assert status == 200 and replayed is None, data
    assert redis_server.cli("LLEN", name).strip() == "1"


def test_answers_are_kept_for_the_ttl(start_herald, redis_server):
    server = start_herald("--idempotency-ttl", "1", loops=1)
    stream = unique("ttl")
    k = key()
    first = json.loads(post(server, f"/streams/{stream}", b"v", k)[2])
    kept = [x for x in redis_server.cli("KEYS", "herald:idempotency:*").splitlines() if stream in x]
    assert len(kept) == 1 and 0 < int(redis_server.cli("PTTL", kept[0])) <= 1000, kept
    assert json.loads(post(server, f"/streams/{stream}", b"v", k)[2]) == first
    time.sleep(1.3)
    second = json.loads(post(server, f"/streams/{stream}", b"v", k)[2])
    assert second["id"] != first["id"]
    assert redis_server.cli("XLEN", stream).strip() == "2"


# --------------------------------------------------------------------------- WebSocket

def test_the_publish_op_takes_an_idempotency_key(herald):
    channel = unique("ws-idem")
    listener = ws_connect(f"{herald.ws_url}/subscribe?channel={channel}")
    ws = ws_connect(f"{herald.ws_url}/subscribe")
    try:
        wait_subscribed(listener, {"channel": [channel]})
        op = {"op": "publish", "channel": channel, "message": "once", "idempotency_key": "op-1-" + key()}
        ws.send(json.dumps({**op, "id": 1}))
        first = recv_json(ws)
        ws.send(json.dumps({**op, "id": 2}))
        again = recv_json(ws)
        assert first["type"] == again["type"] == "published" and first["receivers"] == again["receivers"] == 1
        assert "replayed" not in first and again["replayed"] is True
        ws.send(json.dumps({**op, "message": "other", "id": 3}))
        reused = recv_json(ws)
        assert reused["type"] == "error" and reused["code"] == "idempotency_key_reused" and reused["id"] == 3
        ws.send(json.dumps({**op, "idempotency_key": 7, "id": 4}))
        assert recv_json(ws)["code"] == "bad_idempotency_key"
        assert [m["data"] for m in drain(listener) if m.get("type") == "message"] == ["once"]
    finally:
        ws.close()
        listener.close()


# --------------------------------------------------------------------------- cluster

def test_idempotent_writes_on_a_cluster(redis_cluster):
    server = launch_herald(redis_url=redis_cluster.url, loops=1)
    try:
        for path in ["/streams/" + unique("cs"), "/queues/" + unique("cq"), "/publish/" + unique("cc")]:
            k = key()
            first = post(server, path, b"v", k)
            again = post(server, path, b"v", k)
            assert first[0] == again[0] == 200 and again[1] == "true", (path, first, again)
            assert first[2] == again[2]
    finally:
        server.stop()
