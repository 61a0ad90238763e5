"""Work queues on Redis lists: LPUSH/RPOP over HTTP with blocking waits on a capped pool, and
the WebSocket worker mode whose taken items survive the worker vanishing."""

import json
import signal
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import (
    RawWebSocket,
    assert_json_error,
    assert_silent,
    connected_clients,
    http,
    http_json,
    parse_responses,
    read_available,
    recv_json,
    run_herald,
    unique,
    wait_until,
    ws_connect,
)

from queue_client import blocked, lrange, pop, push, qpath, worker_url


# --------------------------------------------------------------------------- helpers

def pop_item(herald, name):
    status, headers, body = pop(herald, name)
    assert status == 200, f"GET {qpath(name)} answered {status} {body[:200]!r}"
    assert headers.get("Content-Type") == "application/octet-stream", dict(headers)
    return body


def open_connections(herald, kind="http"):
    """herald_connections{kind=...} from /metrics (the /metrics request itself is one http)."""
    status, _, body = http("GET", herald.base_url + "/metrics")
    assert status == 200
    prefix = f'herald_connections{{kind="{kind}"}}'
    for line in body.decode().splitlines():
        if line.startswith(prefix):
            return int(line.split()[-1])
    raise AssertionError(f"no {prefix} in /metrics")


class BackgroundPop(threading.Thread):
    """A GET /queues/{name}?wait=S in a thread; `.result` = (status, body, seconds taken)."""

    def __init__(self, herald, name, wait):
        super().__init__(daemon=True)
        self.herald, self.name, self.wait = herald, name, wait
        self.result = None
        self.error = None

    def run(self):
        start = time.monotonic()
        try:
            status, _, body = pop(self.herald, self.name, self.wait, timeout=self.wait + 15)
            self.result = (status, body, time.monotonic() - start)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def outcome(self, timeout):
        self.join(timeout)
        assert not self.is_alive(), f"the waiting GET ?wait={self.wait} did not finish"
        assert self.error is None, f"the waiting GET failed: {self.error!r}"
        return self.result


def processing_lists(redis, name):
    """A queue's processing lists: `herald:processing:{<name>}:<byte length>:<name>:<id>`."""
    prefix = f"herald:processing:{{{name}}}:{len(name.encode())}:{name}:"
    return [k for k in redis.cli("KEYS", prefix + "*").splitlines() if k]


# --------------------------------------------------------------------------- HTTP

def test_fifo_over_http(herald, redis_server):
    name = unique("jobs")
    assert [push(herald, name, item) for item in ("first", "second", "third")] == [1, 2, 3]
    # LPUSH: the newest is at the head, the oldest is popped first.
    assert lrange(redis_server, name) == ["third", "second", "first"]
    binary = bytes(range(256))
    assert push(herald, name, binary) == 4
    assert [pop_item(herald, name) for _ in range(4)] == [b"first", b"second", b"third", binary]
    status, _, body = pop(herald, name)
    assert status == 204 and body == b""
    status, _, body = pop(herald, name, wait=0)
    assert status == 204 and body == b""


def test_wait_ends_empty_with_204(herald):
    name = unique("idle")
    start = time.monotonic()
    status, _, body = pop(herald, name, wait=1)
    took = time.monotonic() - start
    assert status == 204 and body == b"", (status, body)
    assert 0.8 <= took < 3.0, f"wait=1 answered after {took:.2f}s"


def test_wait_returns_early_when_an_item_arrives(herald, redis_server):
    name = unique("early")
    waiter = BackgroundPop(herald, name, 20)
    waiter.start()
    # Blocked in Redis (BRPOP on one of the loop's blocking links).
    wait_until(lambda: blocked(redis_server, "brpop") >= 1, timeout=5, what="a BRPOP to block")
    time.sleep(0.2)  # a moment of real waiting
    pushed_at = time.monotonic()
    assert push(herald, name, "wake up") == 1
    status, body, took = waiter.outcome(10)
    assert (status, body) == (200, b"wake up")
    assert took < 10, f"the wait did not end early ({took:.2f}s)"
    assert time.monotonic() - pushed_at < 3
    assert redis_server.cli("LLEN", name).strip() == "0"


@pytest.mark.parametrize("query", ["wait=-1", "wait=301", "wait=abc", "wait=1.5", "wait="])
def test_bad_wait_is_400(herald, query):
    status, _, body = http("GET", f"{herald.base_url}/queues/{unique('q')}?{query}")
    assert_json_error(status, body, 400, "bad_request", query)


def test_wrong_type_is_409(herald, redis_server):
    string_key, stream_key = unique("str"), unique("stream")
    redis_server.cli("SET", string_key, "plain")
    redis_server.cli("XADD", stream_key, "*", "a", "b")
    for key in (string_key, stream_key):
        status, _, body = http("POST", herald.base_url + qpath(key), b"item")
        assert_json_error(status, body, 409, "wrong_type", f"LPUSH onto {key}")
        status, _, body = pop(herald, key)
        assert_json_error(status, body, 409, "wrong_type", f"RPOP on {key}")
        status, _, body = pop(herald, key, wait=1)
        assert_json_error(status, body, 409, "wrong_type", f"BRPOP on {key}")
    assert redis_server.cli("GET", string_key).strip() == "plain"


def test_blocking_pops_are_capped(start_redis, start_herald):
    redis = start_redis()
    herald = start_herald("--max-blocking", "2", redis_url=redis.url, loops=1)
    name = unique("capped")
    base = connected_clients(redis)
    waiters = [BackgroundPop(herald, name, 20) for _ in range(2)]
    for w in waiters:
        w.start()
    wait_until(lambda: blocked(redis, "brpop") == 2, timeout=5, what="two BRPOPs to block")

    start = time.monotonic()
    status, _, body = pop(herald, name, wait=20)
    assert time.monotonic() - start < 3, "the third waiter was not refused at once"
    decoded = assert_json_error(status, body, 503, "too_many_waiters", "third waiting GET")
    assert blocked(redis, "brpop") == 2
    # The cap bounds Redis connections: exactly two more than before the waits.
    assert connected_clients(redis) == base + 2, decoded
    # A pop without waiting does not need a blocking link.
    status, _, _ = pop(herald, name, wait=0)
    assert status == 204

    assert push(herald, name, "one") in (0, 1)
    assert push(herald, name, "two") in (0, 1)
    results = sorted((w.outcome(10)[0], w.outcome(10)[1]) for w in waiters)
    assert results == [(200, b"one"), (200, b"two")]
    # The links are free again: a new wait is accepted (and ends empty).
    status, _, _ = pop(herald, name, wait=1)
    assert status == 204
    assert connected_clients(redis) == base + 2


def test_client_vanishing_mid_wait_loses_nothing(start_redis, start_herald):
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    name = unique("vanish")
    sock = socket.create_connection(("127.0.0.1", herald.port), timeout=5)
    sock.sendall(f"GET {qpath(name)}?wait=5 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    wait_until(lambda: blocked(redis, "brpop") == 1, timeout=5, what="the BRPOP to block")
    sock.close()
    # Herald noticed the client left (only the /metrics request itself is open).
    wait_until(lambda: open_connections(herald) == 1, timeout=5,
               what="Herald to see the waiting client close")
    # Its BRPOP is cut short (CLIENT UNBLOCK), so it cannot take the next item (an item it took
    # meanwhile is put back: test_hostile_queues.py).
    wait_until(lambda: blocked(redis, "brpop") == 0, timeout=5, what="the BRPOP to end")

    assert push(herald, name, "precious") == 1
    assert lrange(redis, name) == ["precious"]
    assert push(herald, name, "later") == 2
    assert pop_item(herald, name) == b"precious"
    assert pop_item(herald, name) == b"later"
    assert pop(herald, name)[0] == 204


def test_waiting_pop_on_a_keep_alive_connection_then_next_request(herald):
    """A waiting GET answered normally on a keep-alive connection, then the next request."""
    name = unique("ka")
    sock = socket.create_connection(("127.0.0.1", herald.port), timeout=5)
    try:
        sock.sendall(f"GET {qpath(name)}?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                     f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf, _ = read_available(sock, read_timeout=4,
                                until=lambda b: len(parse_responses(b)[0]) >= 2)
        responses, _ = parse_responses(buf)
        assert [r.status for r in responses] == [204, 200], buf
    finally:
        sock.close()


# --------------------------------------------------------------------------- WebSocket worker

def test_worker_pop_and_ack(herald, redis_server):
    name = unique("work")
    for item in ("a", "b", "caf\u00e9"):
        push(herald, name, item)
    ws = ws_connect(worker_url(herald, name))
    try:
        ws.send(json.dumps({"op": "pop", "wait": 0, "id": 1}))
        first = recv_json(ws)
        assert first.get("type") == "item", first
        assert {k: first[k] for k in ("queue", "data", "id")} == {"queue": name, "data": "a", "id": 1}
        assert isinstance(first["tag"], int)
        # The item waits in this worker's processing list until acked.
        lists = processing_lists(redis_server, name)
        assert len(lists) == 1 and lrange(redis_server, lists[0]) == ["a"], lists
        assert lrange(redis_server, name) == ["caf\u00e9", "b"]

        ws.send(json.dumps({"op": "pop", "id": "two"}))
        second = recv_json(ws)
        assert (second["type"], second["data"], second["id"]) == ("item", "b", "two"), second
        assert second["tag"] != first["tag"]

        ws.send(json.dumps({"op": "ack", "queue": name, "tag": first["tag"]}))
        assert recv_json(ws) == {"type": "acked", "queue": name, "tag": first["tag"]}
        assert lrange(redis_server, lists[0]) == ["b"]
        # Acking twice, or a tag never handed out: unknown_tag.
        for tag in (first["tag"], 999):
            ws.send(json.dumps({"op": "ack", "queue": name, "tag": tag, "id": tag}))
            err = recv_json(ws)
            assert (err.get("type"), err.get("code"), err.get("id")) == ("error", "unknown_tag", tag), err

        ws.send(json.dumps({"op": "pop", "wait": 0}))
        third = recv_json(ws)
        assert (third["type"], third["data"]) == ("item", "caf\u00e9"), third
        for item in (second, third):
            ws.send(json.dumps({"op": "ack", "queue": name, "tag": item["tag"]}))
            assert recv_json(ws) == {"type": "acked", "queue": name, "tag": item["tag"]}
        ws.send(json.dumps({"op": "pop", "wait": 0, "id": 3}))
        assert recv_json(ws) == {"type": "empty", "queue": name, "id": 3}
        assert lrange(redis_server, lists[0]) == []
    finally:
        ws.close()
    # Nothing was held: closing puts nothing back.
    time.sleep(0.2)
    assert redis_server.cli("LLEN", name).strip() == "0"


def test_worker_waiting_pop_and_pop_pending(herald, redis_server):
    name = unique("wait")
    ws = ws_connect(worker_url(herald, name))
    try:
        start = time.monotonic()
        ws.send(json.dumps({"op": "pop", "wait": 1, "id": "w1"}))
        assert recv_json(ws, 5) == {"type": "empty", "queue": name, "id": "w1"}
        assert time.monotonic() - start >= 0.8

        ws.send(json.dumps({"op": "pop", "wait": 10, "id": "long"}))
        ws.send(json.dumps({"op": "pop", "wait": 0, "id": "again"}))
        err = recv_json(ws)
        assert (err.get("type"), err.get("code"), err.get("id")) == ("error", "pop_pending", "again"), err
        push(herald, name, "late item")
        item = recv_json(ws, 5)
        assert (item["type"], item["data"], item["id"]) == ("item", "late item", "long"), item
        ws.send(json.dumps({"op": "ack", "queue": name, "tag": item["tag"]}))
        assert recv_json(ws)["type"] == "acked"
    finally:
        ws.close()


@pytest.mark.parametrize("message,code", [
    ({"op": "pop", "wait": -1}, "bad_request"),
    ({"op": "pop", "wait": "soon"}, "bad_request"),
    ({"op": "ack", "queue": "someone-else", "tag": 1}, "bad_request"),
    ({"op": "ack", "queue": "QUEUE", "tag": "x"}, "bad_request"),
])
def test_worker_bad_messages(herald, message, code):
    name = unique("bad")
    message = {k: (name if v == "QUEUE" else v) for k, v in message.items()}
    message["id"] = 42
    ws = ws_connect(worker_url(herald, name))
    try:
        ws.send(json.dumps(message))
        err = recv_json(ws)
        assert (err.get("type"), err.get("code"), err.get("id")) == ("error", code, 42), err
        ws.send(json.dumps({"op": "ping"}))
        assert recv_json(ws) == {"type": "pong"}
    finally:
        ws.close()


def test_worker_on_a_key_of_another_type(herald, redis_server):
    name = unique("str")
    redis_server.cli("SET", name, "plain")
    ws = ws_connect(worker_url(herald, name))
    try:
        for wait in (0, 1):
            ws.send(json.dumps({"op": "pop", "wait": wait, "id": wait}))
            err = recv_json(ws)
            assert (err.get("type"), err.get("code"), err.get("id")) == ("error", "wrong_type", wait), err
    finally:
        ws.close()


def test_killed_worker_items_go_back_in_order(herald, redis_server):
    name = unique("kill")
    items = [f"job-{i}" for i in range(1, 6)]
    for item in items:
        push(herald, name, item)
    worker = RawWebSocket(herald.port, "/subscribe?" + urllib.parse.urlencode({"queue": name}))
    got = []
    try:
        for i in range(4):
            worker.send_text(json.dumps({"op": "pop", "wait": 0, "id": i}))
            _, _, payload = worker.recv_frame()
            got.append(json.loads(payload))
        assert [m["data"] for m in got] == items[:4], got
        # Ack job-2; job-1, job-3 and job-4 stay unacked.
        worker.send_text(json.dumps({"op": "ack", "queue": name, "tag": got[1]["tag"]}))
        _, _, payload = worker.recv_frame()
        assert json.loads(payload) == {"type": "acked", "queue": name, "tag": got[1]["tag"]}
        lists = processing_lists(redis_server, name)
        assert len(lists) == 1 and sorted(lrange(redis_server, lists[0])) == ["job-1", "job-3", "job-4"]
    finally:
        worker.close()  # abrupt: no close frame
    wait_until(lambda: redis_server.cli("LLEN", name).strip() == "4", timeout=5,
               what="the unacked items to be back in the queue")
    wait_until(lambda: processing_lists(redis_server, name) == [], timeout=5,
               what="the processing list to be gone")
    assert [pop_item(herald, name) for _ in range(4)] == [b"job-1", b"job-3", b"job-4", b"job-5"]
    assert pop(herald, name)[0] == 204


def test_worker_killed_while_waiting_loses_nothing(start_redis, start_herald):
    redis_server = start_redis()
    herald = start_herald(redis_url=redis_server.url, loops=1)
    name = unique("killwait")
    worker = RawWebSocket(herald.port, "/subscribe?" + urllib.parse.urlencode({"queue": name}))
    try:
        worker.send_text(json.dumps({"op": "pop", "wait": 5}))
        wait_until(lambda: blocked(redis_server, "blmove") >= 1, timeout=5,
                   what="the BLMOVE to block")
    finally:
        worker.close()
    wait_until(lambda: open_connections(herald, "websocket") == 0, timeout=5,
               what="Herald to see the worker close")
    # Its BLMOVE is cut short, and its (empty) processing list forgotten.
    wait_until(lambda: blocked(redis_server, "blmove") == 0, timeout=5, what="the BLMOVE to end")
    wait_until(lambda: registry(redis_server, name) == {}, timeout=5, what="the list to be unregistered")
    push(herald, name, "for nobody")
    assert lrange(redis_server, name) == ["for nobody"]
    assert processing_lists(redis_server, name) == []
    assert pop_item(herald, name) == b"for nobody"


def test_two_workers_share_a_queue_fifo(herald, redis_server):
    name = unique("shared")
    items = [f"task-{i}" for i in range(10)]
    for item in items:
        push(herald, name, item)
    a, b = ws_connect(worker_url(herald, name)), ws_connect(worker_url(herald, name))
    try:
        taken = []
        for i in range(10):
            ws = (a, b)[i % 2]
            ws.send(json.dumps({"op": "pop", "wait": 0}))
            msg = recv_json(ws)
            assert msg["type"] == "item", msg
            taken.append(msg["data"])
            ws.send(json.dumps({"op": "ack", "queue": name, "tag": msg["tag"]}))
            assert recv_json(ws)["type"] == "acked"
        assert taken == items
        assert_silent(a, 0.1)
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- leases

def registry_key(name):
    """Where a queue's processing lists are leased (for a name without braces)."""
    return f"herald:consumers:{{{name}}}:{len(name.encode())}:{name}"


def registry(redis, name):
    """The queue's registered processing lists: {list: lease expiry in Unix ms}."""
    lines = redis.cli("ZRANGE", registry_key(name), 0, -1, "WITHSCORES").splitlines()
    return {lines[i]: int(float(lines[i + 1])) for i in range(0, len(lines) - 1, 2)}


def worker_pops(worker, count):
    items = []
    for i in range(count):
        worker.send(json.dumps({"op": "pop", "wait": 0, "id": i}))
        message = recv_json(worker)
        assert message.get("type") == "item", message
        items.append(message)
    return items


def holding_worker(start_redis, start_herald, lease, prefix, item):
    """A private Redis, two Heralds with `--queue-lease lease` (the holder and another), and a
    worker on the holder that popped the queue's one item `item` and holds it.
    Returns (redis, other Herald, queue name, worker, the item message)."""
    redis_server = start_redis()
    holder = start_herald("--queue-lease", lease, redis_url=redis_server.url)
    other = start_herald("--queue-lease", lease, redis_url=redis_server.url)
    name = unique(prefix)
    push(holder, name, item)
    worker = ws_connect(worker_url(holder, name))
    try:
        [held] = worker_pops(worker, 1)
    except BaseException:
        worker.close()
        raise
    return redis_server, other, name, worker, held


def test_items_held_by_a_killed_herald_go_back_to_the_queue(start_redis, start_herald):
    """A Herald killed (SIGKILL, no drain) while its worker held items: another Herald puts
    them back once the lease ran out, oldest first, and forgets the processing list."""
    redis_server = start_redis()
    doomed = start_herald("--queue-lease", "1", redis_url=redis_server.url)
    name = unique("lease")
    for item in ("job-1", "job-2", "job-3"):
        push(doomed, name, item)
    worker = ws_connect(worker_url(doomed, name))
    try:
        assert [m["data"] for m in worker_pops(worker, 2)] == ["job-1", "job-2"]
        lists = processing_lists(redis_server, name)
        assert len(lists) == 1 and sorted(lrange(redis_server, lists[0])) == ["job-1", "job-2"]
        assert list(registry(redis_server, name)) == lists, "the worker's list is leased"
        doomed.stop(signal.SIGKILL)
    finally:
        worker.close()
    assert lrange(redis_server, lists[0]), "a killed Herald put nothing back by itself"
    time.sleep(1.5)  # the killed Herald's last renewal was at most a third of a lease ago

    survivor = start_herald("--queue-lease", "1", redis_url=redis_server.url)
    # The first pop reaps the dead list (the script runs before the pop, on the same link): the
    # held items are back at the pop end, oldest first, ahead of job-3.
    assert [pop_item(survivor, name) for _ in range(3)] == [b"job-1", b"job-2", b"job-3"]
    assert processing_lists(redis_server, name) == []
    assert registry(redis_server, name) == {}, "the dead list is unregistered"
    assert pop(survivor, name)[0] == 204


def test_a_live_workers_items_are_never_reaped(start_redis, start_herald):
    """With a 2 s lease, a worker that holds an item for more than two leases keeps it (its
    Herald renews the lease) while pops on another Herald find the queue empty; the ack removes
    it."""
    redis_server, other, name, worker, held = holding_worker(start_redis, start_herald, "2", "live", "mine")
    try:
        first_expiry = registry(redis_server, name)
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            assert pop(other, name)[0] == 204, "the held item was put back while its worker lives"
            time.sleep(0.25)
        [(lst, expiry)] = registry(redis_server, name).items()
        assert expiry > list(first_expiry.values())[0], "the lease was renewed"
        assert lrange(redis_server, lst) == ["mine"]
        worker.send(json.dumps({"op": "ack", "queue": name, "tag": held["tag"]}))
        assert recv_json(worker) == {"type": "acked", "queue": name, "tag": held["tag"]}
    finally:
        worker.close()
    # A worker that leaves cleanly unregisters its list at once.
    wait_until(lambda: registry(redis_server, name) == {}, timeout=5, what="the closed worker's list to be unregistered")
    assert processing_lists(redis_server, name) == []
    assert pop(other, name)[0] == 204


def test_ack_after_the_lease_ran_out_says_lease_lost(start_redis, start_herald):
    """A worker whose lease ran out (as if its Herald had been cut off from Redis) while it held
    an item: another Herald's pop reaps the item and gets it; the late ack answers lease_lost."""
    redis_server, other, name, worker, held = holding_worker(start_redis, start_herald, "3", "lost", "only")
    try:
        [held_list] = registry(redis_server, name)
        taken = None
        for _ in range(20):
            # Expire the lease by hand; the holder renews every second, so retry if it did.
            redis_server.cli("ZADD", registry_key(name), "0", held_list)
            status, _, body = pop(other, name)
            if status == 200:
                taken = body
                break
            time.sleep(1.1)  # the other Herald reaps a queue at most once a second
        assert taken == b"only", "the expired list was reaped and its item popped again"
        worker.send(json.dumps({"op": "ack", "queue": name, "tag": held["tag"], "id": "late"}))
        answer = recv_json(worker)
        assert (answer.get("type"), answer.get("code"), answer.get("id")) == ("error", "lease_lost", "late"), answer
    finally:
        worker.close()


def test_queue_lease_must_be_sane():
    for value in ("0.1", "abc", "-1"):
        done = run_herald("--queue-lease", value)
        assert done.returncode == 2 and "--queue-lease" in done.stderr, (value, done.stderr)
