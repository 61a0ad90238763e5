"""Replicated acknowledgements (issue 12, item 3): `?replicas=N&timeout=MS` on stream appends and
queue pushes, and `replicas`/`timeout` on the WebSocket ack op.

A real primary and a real replica (`redis-server --replicaof`) on loopback: a write asked with
replicas=1 is answered with `"replicas": 1` and is on the replica when answered; asking for more
replicas than there are, or with the replica paused (SIGSTOP), answers `504 not_replicated`
within the timeout, with the write done on the primary; bad values are `400`.
"""

import json
import signal
import socket
import time
import urllib.parse

import pytest

from conftest import (
    assert_json_error,
    http,
    http_json,
    launch_herald,
    launch_redis,
    recv_json,
    unique,
    wait_until,
    ws_connect,
)


@pytest.fixture(scope="module")
def pair():
    """(primary, replica, herald): a primary with one replica in sync, Herald on the primary."""
    primary = launch_redis()
    replica = launch_redis(extra_args=("--replicaof", "127.0.0.1", str(primary.port)))
    try:
        wait_until(lambda: "master_link_status:up" in replica.cli("INFO", "replication"),
                   timeout=15, what="the replica in sync with its primary")
        herald = launch_herald(redis_url=primary.url)
    except BaseException:
        replica.stop()
        primary.stop()
        raise
    yield primary, replica, herald
    herald.stop()
    replica.stop()
    primary.stop()


def quoted(name):
    return urllib.parse.quote(name, safe="")


def append(herald, key, body=b"v", query=""):
    started = time.monotonic()
    status, _, answer = http_json("POST", f"{herald.base_url}/streams/{quoted(key)}{query}", body, timeout=30)
    return status, answer, time.monotonic() - started


def push(herald, name, body=b"item", query=""):
    started = time.monotonic()
    status, _, answer = http_json("POST", f"{herald.base_url}/queues/{quoted(name)}{query}", body, timeout=30)
    return status, answer, time.monotonic() - started


def stream_ids(redis, key):
    return [line for line in redis.cli("XRANGE", key, "-", "+").splitlines() if "-" in line and line[0].isdigit()]


# --------------------------------------------------------------------------- acknowledged

def test_a_stream_append_waits_for_its_replica(pair):
    primary, replica, herald = pair
    key = unique("rep-stream")
    status, answer, _ = append(herald, key, query="?replicas=1&timeout=5000")
    assert status == 200, answer
    assert set(answer) == {"stream", "id", "replicas"} and answer["stream"] == key
    assert answer["replicas"] == 1
    assert stream_ids(replica, key) == [answer["id"]], "on the replica when answered"


def test_a_queue_push_waits_for_its_replica_timeout_defaulting(pair):
    primary, replica, herald = pair
    name = unique("rep-queue")
    status, answer, _ = push(herald, name, b"job-1", query="?replicas=1")
    assert (status, answer) == (200, {"queue": name, "length": 1, "replicas": 1})
    assert replica.cli("LRANGE", name, "0", "-1").split() == ["job-1"]


def test_a_write_without_replicas_is_answered_as_before(pair):
    primary, replica, herald = pair
    key = unique("rep-plain")
    status, answer, _ = append(herald, key)
    assert status == 200 and set(answer) == {"stream", "id"}, answer


# --------------------------------------------------------------------------- not replicated

def test_more_replicas_than_there_are_is_504_after_the_timeout(pair):
    primary, replica, herald = pair
    key = unique("rep-two")
    status, answer, elapsed = append(herald, key, query="?replicas=2&timeout=600")
    assert status == 504, answer
    assert answer["error"] == "not_replicated"
    assert "may or may not survive a failover" in answer["message"], answer
    assert (answer["stream"], answer["replicas"], answer["asked"]) == (key, 1, 2)
    assert stream_ids(primary, key) == [answer["id"]], "the write was done on the primary"
    assert 0.5 <= elapsed < 5, f"WAIT waits its timeout (600 ms), no more: {elapsed:.2f} s"

    name = unique("rep-two-q")
    status, answer, _ = push(herald, name, query="?replicas=2&timeout=300")
    assert status == 504 and answer["error"] == "not_replicated", answer
    assert (answer["queue"], answer["length"], answer["replicas"], answer["asked"]) == (name, 1, 1, 2)


def test_a_paused_replica_means_504_within_the_timeout(pair):
    primary, replica, herald = pair
    key = unique("rep-paused")
    replica.proc.send_signal(signal.SIGSTOP)
    try:
        status, answer, elapsed = append(herald, key, query="?replicas=1&timeout=400")
    finally:
        replica.proc.send_signal(signal.SIGCONT)
    assert status == 504 and answer["error"] == "not_replicated", answer
    assert answer["replicas"] == 0 and answer["asked"] == 1
    assert stream_ids(primary, key) == [answer["id"]]
    assert elapsed < 3, f"answered {elapsed:.2f} s after asking for a 400 ms wait"
    # Once the replica runs again, the next write is acknowledged again.
    wait_until(lambda: "master_link_status:up" in replica.cli("INFO", "replication"), timeout=15,
               what="the replica back in sync")
    status, answer, _ = append(herald, key, query="?replicas=1&timeout=5000")
    assert (status, answer.get("replicas")) == (200, 1), answer


def test_a_primary_without_replicas_answers_504(herald, redis_server):
    key = unique("rep-alone")
    status, answer, elapsed = append(herald, key, query="?replicas=1&timeout=200")
    assert status == 504 and answer["error"] == "not_replicated", answer
    assert (answer["replicas"], answer["asked"]) == (0, 1)
    assert stream_ids(redis_server, key) == [answer["id"]]
    assert elapsed < 3


def blocked(redis, command):
    """Redis connections blocked right now in `command` (flags=b, cmd=<command>)."""
    lines = redis.cli("CLIENT", "LIST").splitlines()
    return sum(1 for line in lines if " flags=b " in f" {line} " and f" cmd={command} " in f" {line} ")


def test_a_client_that_leaves_frees_its_waiting_connection(herald, redis_server):
    key = unique("rep-leave")
    sock = socket.create_connection(("127.0.0.1", herald.port), timeout=5)
    try:
        sock.sendall(f"POST /streams/{key}?replicas=1&timeout=60000 HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: 1\r\n\r\nv".encode())
        wait_until(lambda: blocked(redis_server, "wait") == 1, timeout=5, what="the WAIT blocked in Redis")
    finally:
        sock.close()
    wait_until(lambda: blocked(redis_server, "wait") == 0, timeout=3,
               what="the WAIT cut short when its client left (not after 60 s)")
    assert stream_ids(redis_server, key), "the write itself was done"


# --------------------------------------------------------------------------- bad values

BAD_QUERIES = ["?replicas=0", "?replicas=17", "?replicas=abc", "?replicas=-1", "?replicas=",
               "?replicas=1&timeout=0", "?replicas=1&timeout=60001", "?replicas=1&timeout=x",
               "?timeout=100"]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_replica_values_are_400_and_write_nothing(herald, redis_server, query):
    key = unique("rep-bad")
    status, answer, _ = append(herald, key, query=query)
    assert_json_error(status, json.dumps(answer).encode(), 400, "bad_request", query)
    status, answer, _ = push(herald, key + "-q", query=query)
    assert_json_error(status, json.dumps(answer).encode(), 400, "bad_request", query)
    assert redis_server.cli("EXISTS", key, key + "-q").strip() == "0"


# --------------------------------------------------------------------------- WebSocket

def test_a_queue_ack_over_websocket_can_wait_for_replicas(pair):
    primary, replica, herald = pair
    name = unique("rep-ws")
    push(herald, name, b"a")
    push(herald, name, b"b")
    worker = ws_connect(f"{herald.ws_url}/subscribe?queue={quoted(name)}")
    try:
        tags = []
        for _ in range(2):
            worker.send(json.dumps({"op": "pop", "wait": 0}))
            tags.append(recv_json(worker)["tag"])
        worker.send(json.dumps({"op": "ack", "queue": name, "tag": tags[0], "replicas": 1, "timeout": 5000, "id": 1}))
        assert recv_json(worker) == {"type": "acked", "queue": name, "tag": tags[0], "replicas": 1, "id": 1}
        worker.send(json.dumps({"op": "ack", "queue": name, "tag": tags[1], "replicas": 2, "timeout": 300, "id": 2}))
        answer = recv_json(worker)
        assert (answer["type"], answer["code"], answer["id"]) == ("error", "not_replicated", 2), answer
        assert (answer["replicas"], answer["asked"]) == (1, 2)
        worker.send(json.dumps({"op": "ack", "queue": name, "tag": 99, "replicas": 0, "id": 3}))
        answer = recv_json(worker)
        assert (answer["type"], answer["code"], answer["id"]) == ("error", "bad_request", 3), answer
    finally:
        worker.close()


def test_a_group_ack_over_websocket_can_wait_for_replicas(pair):
    primary, replica, herald = pair
    key = unique("rep-group")
    status, answer, _ = append(herald, key, query="?replicas=1")
    assert status == 200
    reader = ws_connect(f"{herald.ws_url}/subscribe?" + urllib.parse.urlencode(
        [("stream", key), ("group", "g"), ("consumer", "c"), ("from", "0")]))
    try:
        entry = recv_json(reader)
        assert entry["type"] == "entry", entry
        reader.send(json.dumps({"op": "ack", "stream": key, "ids": [entry["id"]], "replicas": 1, "id": 1}))
        assert recv_json(reader) == {"type": "acked", "stream": key, "count": 1, "replicas": 1, "id": 1}
        pending = replica.cli("XPENDING", key, "g").split()
        assert pending[0] == "0", f"the ack is on the replica: {pending}"
    finally:
        reader.close()


@pytest.mark.parametrize("kind", ["queue", "group"])
def test_a_websocket_that_leaves_frees_its_waiting_acks(herald, redis_server, kind):
    """An ack that waits for replicas holds one of the loop's blocking connections in WAIT; a
    client that sends such acks and goes away frees them at once (CLIENT UNBLOCK), as an HTTP
    client that leaves does, not when their 60 s timeout runs out."""
    name = unique(f"rep-ws-leave-{kind}")
    if kind == "queue":
        push(herald, name, b"a")
        ws = ws_connect(f"{herald.ws_url}/subscribe?queue={quoted(name)}")
        ws.send(json.dumps({"op": "pop", "wait": 0}))
        tag = recv_json(ws)["tag"]
        ack = {"op": "ack", "queue": name, "tag": tag}
    else:
        assert append(herald, name)[0] == 200
        ws = ws_connect(f"{herald.ws_url}/subscribe?" + urllib.parse.urlencode(
            [("stream", name), ("group", "g"), ("consumer", "c"), ("from", "0")]))
        entry = recv_json(ws)
        assert entry["type"] == "entry", entry
        ack = {"op": "ack", "stream": name, "ids": [entry["id"]]}
    try:
        # No replica at all: WAIT 1 waits out its whole timeout.
        ws.send(json.dumps({**ack, "replicas": 1, "timeout": 60000, "id": 1}))
        wait_until(lambda: blocked(redis_server, "wait") == 1, timeout=5, what="the WAIT blocked in Redis")
    finally:
        ws.close()
    wait_until(lambda: blocked(redis_server, "wait") == 0, timeout=3,
               what="the WAIT cut short when its client left (not after 60 s)")
