"""Watching Redis keys (issue 13, item 1): `{"op":"watch","keys":[..],"patterns":[..]}` and
`watch=`/`watch_pattern=` on /subscribe and /events send a snapshot of each key, then a fresh
value after every change any Redis client makes, through keyspace notifications.

Every test writes with its own Redis client (a small RESP client below, or redis-cli), as an app's
worker or cron job would, and checks what a watcher receives. Groups: snapshots and changes;
value kinds and caps; patterns; errors (watch_unavailable, watch_too_broad, forbidden,
reserved_name, too_many_subscriptions); grants (JWT `watch` claim, hook `kind: "key"`); SSE;
a lost link; Redis Cluster; and the convergence test (200 watchers, 50 keys, 10,000 writes)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
import time
import urllib.parse

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import http, launch_redis_cluster, recv_json, unique, wait_until, ws_connect
from test_auth import SECRET, claims, make_jwt
from test_hooks import Backend

KA = ("--notify-keyspace-events", "KA")


# --------------------------------------------------------------------------- helpers

class Resp:
    """A minimal pipelining RESP2 client: the 'other Redis client' of these tests."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    @staticmethod
    def encode(*args) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise AssertionError(f"bad RESP line {line!r}")

    def __call__(self, *args):
        self.sock.sendall(self.encode(*args))
        reply = self.read()
        if isinstance(reply, RuntimeError):
            raise reply
        return reply

    def pipeline(self, commands):
        """Sends every command, then reads every reply (errors returned, not raised)."""
        self.sock.sendall(b"".join(self.encode(*c) for c in commands))
        return [self.read() for _ in commands]

    def close(self):
        self.sock.close()


def value_of(r: Resp, key: str):
    """What a watcher should hold for `key`: (kind, value) in the JSON shapes Herald sends."""
    kind = r("TYPE", key)
    if kind == "none":
        return ("none", None)
    if kind == "string":
        return (kind, r("GET", key).decode())
    if kind == "hash":
        flat = r("HGETALL", key)
        return (kind, {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)})
    if kind == "set":
        return (kind, sorted(m.decode() for m in r("SMEMBERS", key)))
    if kind == "zset":
        flat = r("ZRANGE", key, 0, -1, "WITHSCORES")
        return (kind, [[flat[i].decode(), float(flat[i + 1])] for i in range(0, len(flat), 2)])
    if kind == "list":
        return (kind, [m.decode() for m in r("LRANGE", key, 0, -1)])
    raise AssertionError(f"unexpected type {kind}")


def held(msg):
    """What a watcher holds after `msg`: (kind, value)."""
    if msg["type"] in ("deleted", "expired"):
        return ("none", None)
    value = msg["value"]
    if msg["kind"] == "zset":
        value = [[m, float(s)] for m, s in value]
    return (msg["kind"], value)


def next_of(ws, types=("value", "deleted", "expired"), timeout=5.0):
    """The next message of one of `types` (other notices are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = recv_json(ws, max(0.05, deadline - time.monotonic()))
        if msg["type"] in types:
            return msg


def watch(ws, keys=(), patterns=(), id=1):
    ws.send(json.dumps({"op": "watch", "keys": list(keys), "patterns": list(patterns), "id": id}))


def watched(ws, timeout=5.0):
    """Reads a watch's snapshot: {key: message}, until its `watching` answer."""
    values = {}
    deadline = time.monotonic() + timeout
    while True:
        msg = recv_json(ws, max(0.05, deadline - time.monotonic()))
        if msg["type"] == "watching":
            return values, msg
        if msg["type"] == "error":
            return values, msg
        assert msg["type"] == "value", msg
        values[msg["key"]] = msg


def watch_url(server, keys=(), patterns=(), extra=(), path="/subscribe"):
    query = [("watch", k) for k in keys] + [("watch_pattern", p) for p in patterns] + list(extra)
    return f"{server.ws_url}{path}?{urllib.parse.urlencode(query)}"


@pytest.fixture(scope="module")
def notifying_redis():
    from conftest import launch_redis
    server = launch_redis(extra_args=KA)
    yield server
    server.stop()


@pytest.fixture
def r(notifying_redis):
    client = Resp(notifying_redis.port)
    yield client
    client.close()


@pytest.fixture
def watcher_herald(start_herald, notifying_redis):
    def start(*extra, **options):
        return start_herald(*extra, redis_url=notifying_redis.url, **options)
    return start


# --------------------------------------------------------------------------- snapshots and changes

def test_snapshot_then_every_change_from_another_client(watcher_herald, r):
    server = watcher_herald()
    order, counter = unique("order"), unique("counter")
    r("HSET", order, "status", "paid", "total", "10")
    r("SET", counter, "5")
    ws = ws_connect(server.ws_url + "/subscribe")
    watch(ws, keys=[order, counter], id=7)
    values, answer = watched(ws)
    assert answer == {"type": "watching", "keys": [order, counter], "patterns": [], "id": 7}
    assert values[order] == {"type": "value", "key": order, "kind": "hash", "value": {"status": "paid", "total": "10"}}
    assert values[counter] == {"type": "value", "key": counter, "kind": "string", "value": "5"}

    r("HSET", order, "status", "shipped")
    assert next_of(ws) == {"type": "value", "key": order, "kind": "hash", "value": {"status": "shipped", "total": "10"}}
    r("INCR", counter)
    assert next_of(ws) == {"type": "value", "key": counter, "kind": "string", "value": "6"}
    r("DEL", order)
    assert next_of(ws) == {"type": "deleted", "key": order}
    # EXPIRE itself leaves the value alone (nothing sent); its end is `expired`.
    r("PEXPIRE", counter, 100)
    assert next_of(ws) == {"type": "expired", "key": counter}
    # A key that changes type under a watcher is told in its new kind.
    r("SADD", order, "b", "a")
    assert next_of(ws) == {"type": "value", "key": order, "kind": "set", "value": ["a", "b"]}
    r("DEL", order)
    r("SET", order, "now a string")
    msgs = [next_of(ws), next_of(ws)]
    assert msgs[-1] == {"type": "value", "key": order, "kind": "string", "value": "now a string"}
    ws.close()


def test_a_missing_key_snapshots_as_none_then_appears(watcher_herald, r):
    server = watcher_herald()
    key = unique("later")
    ws = ws_connect(watch_url(server, keys=[key]))
    values, answer = watched(ws)
    assert values[key] == {"type": "value", "key": key, "kind": "none", "value": None}
    assert answer == {"type": "watching", "keys": [key], "patterns": []}
    r("RPUSH", key, "x", "y")
    assert next_of(ws) == {"type": "value", "key": key, "kind": "list", "value": ["x", "y"]}
    ws.close()


def test_unwatch_stops_the_values(watcher_herald, r):
    server = watcher_herald()
    a, b = unique("a"), unique("b")
    ws = ws_connect(server.ws_url + "/subscribe")
    watch(ws, keys=[a, b])
    watched(ws)
    ws.send(json.dumps({"op": "unwatch", "keys": [a], "id": 2}))
    assert recv_json(ws) == {"type": "unwatched", "keys": [a], "patterns": [], "id": 2}
    r("SET", a, "1")
    r("SET", b, "2")
    assert next_of(ws) == {"type": "value", "key": b, "kind": "string", "value": "2"}
    ws.send(json.dumps({"op": "unwatch"}))
    assert recv_json(ws) == {"type": "unwatched", "keys": [b], "patterns": []}
    r("SET", b, "3")
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)
    ws.close()


# --------------------------------------------------------------------------- kinds and caps

def test_every_kind_of_value(watcher_herald, r):
    server = watcher_herald()
    s, z, l, st, raw = (unique(p) for p in ("set", "zset", "list", "stream", "raw"))
    r("SADD", s, "b", "a", "c")
    r("ZADD", z, "2.5", "b", "1", "a", "+inf", "top")
    r("RPUSH", l, "1", "2", "")
    r("XADD", st, "1-1", "f", "v")
    r("XADD", st, "1-2", "g", "w")
    r("SET", raw, b"\xff\x00ok")
    ws = ws_connect(server.ws_url + "/subscribe")
    watch(ws, keys=[s, z, l, st, raw])
    values, _ = watched(ws)
    assert values[s]["value"] == ["a", "b", "c"]
    assert values[z]["value"] == [["a", 1], ["b", 2.5], ["top", "inf"]]
    assert values[l]["value"] == ["1", "2", ""]
    assert values[st] == {"type": "value", "key": st, "kind": "stream",
                          "value": [{"id": "1-1", "fields": {"f": "v"}}, {"id": "1-2", "fields": {"g": "w"}}]}
    assert values[raw]["encoding"] == "base64"
    assert base64.b64decode(values[raw]["value"]) == b"\xff\x00ok"
    ws.close()


def test_values_over_max_watch_value_are_told_by_size(watcher_herald, r):
    server = watcher_herald("--max-watch-value", "1k")
    big, many, small = unique("big"), unique("many"), unique("small")
    r("SET", big, "x" * 5000)
    r.pipeline([("RPUSH", many, *range(2000))])
    r("SET", small, "fits")
    ws = ws_connect(watch_url(server, keys=[big, many, small]))
    values, _ = watched(ws)
    assert values[big] == {"type": "value", "key": big, "kind": "string", "truncated": True, "size": 5000}
    assert values[many]["truncated"] is True and values[many]["kind"] == "list" and "value" not in values[many]
    assert values[many]["size"] > 1024
    assert values[small]["value"] == "fits"
    # Shrunk under the cap: the value itself again.
    r("SET", big, "short")
    assert next_of(ws) == {"type": "value", "key": big, "kind": "string", "value": "short"}
    ws.close()


def test_many_writes_to_one_key_are_read_far_fewer_times(watcher_herald, r):
    """Coalescing: a burst of 5,000 INCRs on one key costs a handful of reads, and the watcher
    ends on the last value."""
    server = watcher_herald(loops=1)
    key = unique("hot")
    ws = ws_connect(watch_url(server, keys=[key]))
    watched(ws)
    reads_before = metric(server, "herald_watch_reads_total")
    r.pipeline([("INCR", key)] * 5000)
    last = None
    deadline = time.monotonic() + 10
    while last != "5000" and time.monotonic() < deadline:
        last = next_of(ws)["value"]
    assert last == "5000"
    reads = metric(server, "herald_watch_reads_total") - reads_before
    assert reads < 2500, f"{reads} reads for 5000 writes"
    ws.close()


def metric(server, name):
    """The value of an unlabelled metric."""
    _, _, body = http("GET", server.base_url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in /metrics")


def test_a_client_that_stops_reading_still_ends_on_the_last_value(watcher_herald, r):
    """Values that do not fit a slow client's queue are not piled up: the key is read again
    for it once its queue drains, so it still ends on Redis's value."""
    server = watcher_herald("--max-outbound", "16k", loops=1)
    key = unique("slow")
    ws = ws_connect(watch_url(server, keys=[key]), max_queue=1, compression=None)  # "x" * 8000 compresses to nothing
    watched(ws)
    for i in range(200):
        r("SET", key, f"{i:04d}" + "x" * 8000)
        time.sleep(0.002)
    last = f"{199:04d}" + "x" * 8000
    count = 0
    value = None
    deadline = time.monotonic() + 15
    while value != last and time.monotonic() < deadline:
        value = next_of(ws, timeout=15)["value"]
        count += 1
    assert value == last
    ws.close()


def test_a_stalled_pattern_watcher_is_resynced_not_remembered_key_by_key(watcher_herald, r):
    """A client watching a busy pattern that stops reading would make Herald remember every
    key changed meanwhile, without bound. Past ten times --max-watch-keys keys Herald forgets
    them and, once the client reads again, resyncs it: a `gap` for the pattern, then fresh
    values (the first --max-watch-keys keys, as after a lost link), then `watching`. Every value
    sent after the gap is Redis's. (Before: no gap; each of the 300 keys was remembered and
    read again.)"""
    server = watcher_herald("--max-outbound", "16k", "--max-watch-keys", "20", loops=1)
    prefix = unique("busy")
    # Uncompressed: 4 KB of "x" would compress to a few bytes and never fill the queue.
    ws = ws_connect(watch_url(server, patterns=[f"{prefix}:*"]), max_queue=1, compression=None)
    assert watched(ws)[1]["type"] == "watching"
    keys = [f"{prefix}:{i:03d}" for i in range(300)]  # 300 keys changed: over the 200 remembered
    for key in keys:
        r("SET", key, key + ":" + "x" * 4000)
    time.sleep(0.5)
    seen_gap = False
    after_gap = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = recv_json(ws, max(0.05, deadline - time.monotonic()))
        if msg["type"] == "gap":
            assert msg == {"type": "gap", "kind": "watch", "pattern": f"{prefix}:*"}, msg
            seen_gap = True
            after_gap = {}
        elif msg["type"] == "value" and seen_gap:
            after_gap[msg["key"]] = msg["value"]
        elif msg["type"] == "watching" and seen_gap:
            assert msg["patterns"] == [f"{prefix}:*"], msg
            break
    else:
        pytest.fail(f"no gap and resync within 20 s (gap seen: {seen_gap})")
    # The resync sends at most 20 keys; values of other keys read meanwhile may come too.
    assert after_gap, "fresh values after the gap"
    for key, value in after_gap.items():
        assert value == key + ":" + "x" * 4000
    ws.close()


def test_a_refreshed_token_that_drops_a_watch_ends_it(watcher_herald, r):
    server = watcher_herald("--jwt-secret", SECRET.decode())
    key = "order:" + unique("r")
    ws = ws_connect(f"{server.ws_url}/subscribe?watch={key}&token=" + make_jwt(claims(watch=["order:*"])))
    watched(ws)
    ws.send(json.dumps({"op": "refresh", "token": make_jwt(claims(watch=["other:*"])), "id": 1}))
    assert recv_json(ws) == {"type": "unsubscribed", "kind": "watch", "names": [key], "reason": "forbidden"}
    assert recv_json(ws)["type"] == "refreshed"
    r("SET", key, "after")
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)
    ws.close()


# --------------------------------------------------------------------------- patterns

def test_pattern_snapshots_through_scan_then_follows_new_keys(watcher_herald, r):
    server = watcher_herald()
    prefix = unique("cart")
    for i in range(3):
        r("SET", f"{prefix}:{i}", str(i))
    r("SET", f"herald:{prefix}:x", "internal")
    ws = ws_connect(server.ws_url + "/subscribe")
    watch(ws, patterns=[f"{prefix}:*"], id=3)
    values, answer = watched(ws)
    assert answer == {"type": "watching", "keys": [], "patterns": [f"{prefix}:*"], "id": 3}
    assert {k: v["value"] for k, v in values.items()} == {f"{prefix}:{i}": str(i) for i in range(3)}
    r("HSET", f"{prefix}:new", "n", "1")
    assert next_of(ws) == {"type": "value", "key": f"{prefix}:new", "kind": "hash", "value": {"n": "1"}}
    r("DEL", f"{prefix}:0")
    assert next_of(ws) == {"type": "deleted", "key": f"{prefix}:0"}
    ws.close()


def test_herald_keys_are_not_watchable(watcher_herald, r):
    server = watcher_herald()
    ws = ws_connect(server.ws_url + "/subscribe")
    watch(ws, keys=["herald:processing:x"])
    msg = recv_json(ws)
    assert msg["type"] == "error" and msg["code"] == "reserved_name"
    # A pattern that reaches Herald's keys never shows them.
    watch(ws, patterns=["her*"], id=2)
    values, answer = watched(ws)
    assert answer["type"] == "watching"
    r("SET", "herald:zz-" + unique("k"), "x")
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)
    ws.close()


# --------------------------------------------------------------------------- errors

def test_watch_unavailable_names_the_setting(start_herald, start_redis):
    plain = start_redis()
    server = start_herald(redis_url=plain.url)
    ws = ws_connect(server.ws_url + "/subscribe")
    watch(ws, keys=["k"], id=4)
    msg = recv_json(ws)
    assert msg["type"] == "error" and msg["code"] == "watch_unavailable" and msg["id"] == 4
    assert "notify-keyspace-events" in msg["message"] and "KA" in msg["message"]
    assert "--keyspace-events" in msg["message"]
    ws.close()


def test_keyspace_events_flag_turns_them_on_keeping_what_was_set(start_herald, start_redis):
    redis = start_redis(extra_args=("--notify-keyspace-events", "Ex"))
    server = start_herald("--keyspace-events", redis_url=redis.url)
    r = Resp(redis.port)
    ws = ws_connect(watch_url(server, keys=["k1"]))
    values, answer = watched(ws)
    assert answer["type"] == "watching", answer
    setting = r("CONFIG", "GET", "notify-keyspace-events")[1].decode()
    assert "E" in setting and "K" in setting and ("A" in setting or set("g$lshzxet") <= set(setting))
    r("SET", "k1", "v")
    assert next_of(ws)["value"] == "v"
    ws.close()
    r.close()


def test_watch_too_broad(watcher_herald, r):
    server = watcher_herald("--max-watch-keys", "5")
    prefix = unique("wide")
    r.pipeline([("SET", f"{prefix}:{i}", i) for i in range(8)])
    ws = ws_connect(server.ws_url + "/subscribe")
    for pattern in ("*", "**", "?*"):
        watch(ws, patterns=[pattern])
        msg = recv_json(ws)
        assert msg["type"] == "error" and msg["code"] == "watch_too_broad", msg
    watch(ws, patterns=[f"{prefix}:*"], id=9)
    msg = recv_json(ws)
    assert msg["type"] == "error" and msg["code"] == "watch_too_broad" and msg["id"] == 9, msg
    assert "--max-watch-keys" in msg["message"]
    # Nothing of the refused watch is held: a change there reaches no one.
    r("SET", f"{prefix}:0", "changed")
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)
    # `*` in the query is refused before the upgrade.
    status, _, body = http("GET", server.base_url + "/events?watch_pattern=*", headers={"Accept": "text/event-stream"})
    assert status == 400 and json.loads(body)["error"] == "watch_too_broad"
    ws.close()


def test_watches_count_against_max_subscriptions(watcher_herald):
    server = watcher_herald("--max-subscriptions", "3")
    ws = ws_connect(server.ws_url + "/subscribe?channel=c1")
    recv_json(ws)
    watch(ws, keys=["a", "b"])
    watched(ws)
    watch(ws, keys=["c"], id=2)
    msg = recv_json(ws)
    assert msg["type"] == "error" and msg["code"] == "too_many_subscriptions" and msg["id"] == 2
    ws.close()


# --------------------------------------------------------------------------- grants

def test_jwt_watch_claim_grants_keys(watcher_herald, r):
    server = watcher_herald("--jwt-secret", SECRET.decode())
    token = make_jwt(claims(subscribe=["*"], watch=["order:*"]))
    ws = ws_connect(server.ws_url + "/subscribe?token=" + token)
    watch(ws, keys=["session:1"], id=1)
    msg = recv_json(ws)
    assert msg == {"type": "error", "code": "forbidden", "message": "this credential does not allow watching session:1", "id": 1}
    # A pattern is granted only when the globs contain it.
    watch(ws, patterns=["order*"], id=2)
    assert recv_json(ws)["code"] == "forbidden"
    watch(ws, keys=["order:1"], patterns=["order:9*"], id=3)
    _, answer = watched(ws)
    assert answer["type"] == "watching"
    ws.close()
    # A token without a watch claim watches nothing, whatever its subscribe globs.
    bare = make_jwt(claims(subscribe=["*"]))
    status, _, body = http("GET", f"{server.base_url}/events?watch=order:1&token={bare}", headers={"Accept": "text/event-stream"})
    assert status == 403 and json.loads(body)["error"] == "forbidden"
    ws = ws_connect(f"{server.ws_url}/subscribe?watch=order:1&token={bare}")
    msg = recv_json(ws)
    assert msg["code"] == "forbidden"
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1008
    ws.close()


def test_hook_is_asked_with_kind_key(watcher_herald, r):
    backend = Backend()
    try:
        backend.policy = lambda q: (403, b"") if q.get("name") == "secret" else (200, b"")
        server = watcher_herald("--hook-url", backend.url, loops=1)
        ws = ws_connect(watch_url(server, keys=["open"], patterns=["pub:*"]))
        _, answer = watched(ws)
        assert answer["type"] == "watching"
        assert backend.asked("subscribe", kind="key", name="open")
        assert backend.asked("subscribe", kind="key_pattern", name="pub:*")
        watch(ws, keys=["secret"], id=5)
        msg = recv_json(ws)
        assert msg["type"] == "error" and msg["code"] == "forbidden" and msg["id"] == 5
        ws.close()
    finally:
        backend.stop()


# --------------------------------------------------------------------------- SSE

def test_event_stream_watch(watcher_herald, r):
    server = watcher_herald()
    key = unique("sse")
    r("SET", key, "one")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"GET /events?watch={key} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    buf = b""

    def events():
        nonlocal buf
        out = []
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            data = [l[6:] for l in block.split(b"\n") if l.startswith(b"data: ")]
            if data:
                out.append(json.loads(b"\n".join(data)))
        return out

    seen = []

    def read_until(pred):
        nonlocal buf
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen.extend(events())
            if any(pred(e) for e in seen):
                return
            buf += sock.recv(65536)
        raise AssertionError(f"not seen; got {seen}")

    read_until(lambda e: e.get("type") == "watching")
    assert {"type": "value", "key": key, "kind": "string", "value": "one"} in seen
    r("SET", key, "two")
    read_until(lambda e: e.get("value") == "two")
    sock.close()


# --------------------------------------------------------------------------- a lost link

def test_a_lost_link_sends_fresh_values(watcher_herald, r):
    server = watcher_herald(loops=1)
    key, prefix = unique("k"), unique("p")
    r("SET", key, "before")
    r("SET", f"{prefix}:1", "x")
    ws = ws_connect(watch_url(server, keys=[key], patterns=[f"{prefix}:*"]))
    watched(ws)
    # Drop Herald's subscriber links and change the values while they are down: the changes'
    # notifications are lost, so only a fresh read after the reconnect can tell them.
    r("CLIENT", "KILL", "TYPE", "pubsub")
    r("SET", key, "during")
    r("DEL", f"{prefix}:1")
    r("SET", f"{prefix}:2", "y")
    got = {}
    gap = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (got.get(key) == "during" and f"{prefix}:2" in got and gap):
        msg = recv_json(ws, 10)
        if msg["type"] == "gap":
            assert msg == {"type": "gap", "kind": "watch", "pattern": f"{prefix}:*"}
            gap = True
        elif msg["type"] == "value":
            got[msg["key"]] = msg["value"]
    assert got.get(key) == "during" and got.get(f"{prefix}:2") == "y" and gap, got
    ws.close()


# --------------------------------------------------------------------------- cluster

@pytest.fixture(scope="module")
def cluster():
    c = launch_redis_cluster(3)
    yield c
    c.stop()


def test_cluster_watches_every_master(start_herald, cluster):
    server = start_herald("--keyspace-events", redis_url=cluster.url, loops=1)
    # One key per master.
    keys, owners = [], set()
    i = 0
    while len(owners) < 3:
        k = f"ck{i}"
        i += 1
        if cluster.owner(k) not in owners:
            owners.add(cluster.owner(k))
            keys.append(k)
    for k in keys:
        cluster.cli(cluster.owner(k), "SET", k, "0")
    ws = ws_connect(watch_url(server, keys=keys, patterns=["ck*"]))
    values, answer = watched(ws, timeout=10)
    assert answer["type"] == "watching", answer
    assert {k: values[k]["value"] for k in keys} == {k: "0" for k in keys}
    for k in keys:
        cluster.cli(cluster.owner(k), "SET", k, "1")
    got = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(got.get(k) != "1" for k in keys):
        msg = next_of(ws, timeout=10)
        got[msg["key"]] = msg.get("value")
    assert {k: got.get(k) for k in keys} == {k: "1" for k in keys}
    ws.close()


# --------------------------------------------------------------------------- convergence

def test_200_watchers_converge_on_50_keys_after_10000_writes(watcher_herald, notifying_redis, r):
    """The issue's test: 200 watchers of 50 keys while another client makes 10,000 random
    writes; once the writes stop, every watcher's last value of every key equals Redis's, byte
    for byte. The time that takes is measured and printed; the bound asserted is generous (a
    shared, noisy machine)."""
    server = watcher_herald(loops=2)
    prefix = unique("conv")
    keys = [f"{prefix}:{i}" for i in range(50)]
    kinds = ["string", "hash", "set", "zset", "list"]

    def write(rng):
        i = rng.randrange(50)
        k = keys[i]
        kind = kinds[i % 5]
        n = rng.randrange(1000)
        if rng.random() < 0.03:
            return ("DEL", k)
        return {
            "string": lambda: ("SET", k, f"v{n}") if rng.random() < 0.5 else ("APPEND", k, f"+{n}"),
            "hash": lambda: ("HSET", k, f"f{n % 7}", f"v{n}"),
            "set": lambda: ("SADD", k, f"m{n % 20}") if rng.random() < 0.6 else ("SREM", k, f"m{n % 20}"),
            "zset": lambda: ("ZINCRBY", k, n % 5, f"m{n % 9}"),
            "list": lambda: ("RPUSH", k, f"e{n}") if rng.random() < 0.6 else ("LPOP", k),
        }[kind]()

    state = [dict() for _ in range(200)]

    async def watcher(i, ready):
        from websockets.asyncio.client import connect
        async with connect(watch_url(server, keys=keys), max_size=None, open_timeout=30) as ws:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "watching":
                    ready.set_result(True)
                elif msg["type"] in ("value", "deleted", "expired"):
                    state[i][msg["key"]] = held(msg)

    async def main():
        loop = asyncio.get_running_loop()
        readies = [loop.create_future() for _ in range(200)]
        tasks = [asyncio.create_task(watcher(i, readies[i])) for i in range(200)]
        await asyncio.wait_for(asyncio.gather(*readies), 60)
        rng = random.Random(13)
        commands = [write(rng) for _ in range(10_000)]
        writer = Resp(notifying_redis.port)
        # The writes in batches, as a busy app would make them, not one pipeline.
        for start in range(0, len(commands), 100):
            await loop.run_in_executor(None, writer.pipeline, commands[start:start + 100])
        stopped = time.monotonic()
        expected = {k: value_of(r, k) for k in keys}
        converged_at = None
        while time.monotonic() - stopped < 30:
            if all(s.get(k) == expected[k] for s in state for k in keys):
                converged_at = time.monotonic()
                break
            await asyncio.sleep(0.005)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        return expected, stopped, converged_at

    expected, stopped, converged_at = asyncio.run(main())
    wrong = [(i, k, s.get(k), expected[k]) for i, s in enumerate(state) for k in keys if s.get(k) != expected[k]]
    assert not wrong, f"{len(wrong)} stale values, e.g. {wrong[:3]}"
    elapsed_ms = (converged_at - stopped) * 1000
    print(f"\nconvergence after the last write: {elapsed_ms:.1f} ms (200 watchers x 50 keys, 10,000 writes)")
    assert elapsed_ms < 5000
