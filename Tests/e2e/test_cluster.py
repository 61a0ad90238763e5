"""Herald in front of a real 3-master Redis Cluster (the session's `redis_cluster`).

Keyed commands (streams, queues, sharded publishes, worker BLMOVEs) must reach the owner of each
key's slot on every master; classic pub/sub keeps working across nodes; Herald follows MOVED and
ASK when a slot moves under it; and a sharded channel's subscriber survives a live migration of
the channel's slot with no silent loss.
"""

import http.client as httpclient
import json
import re
import threading
import time
import urllib.parse

import pytest

from conftest import (
    RawWebSocket,
    assert_silent,
    http,
    http_json,
    launch_herald,
    open_subscriber,
    publish,
    recv_json,
    unique,
    wait_until,
    ws_connect,
)

ID_RE = re.compile(r"^\d+-\d+$")
LOOPS = 2


# --------------------------------------------------------------------------- fixtures, helpers

@pytest.fixture(scope="module")
def cherald(redis_cluster):
    """A private Herald in cluster mode: --loops 2 --redis <the three seeds, comma-separated>."""
    server = launch_herald(redis_url=redis_cluster.url, loops=LOOPS)
    yield server
    server.stop()


def quoted(name):
    return urllib.parse.quote(name, safe="")


def xadd(herald, key, fields):
    status, _, answer = http_json("POST", f"{herald.base_url}/streams/{quoted(key)}",
                                  json.dumps(fields), {"Content-Type": "application/json"})
    assert status == 200, f"POST /streams/{key} answered {status} {answer}"
    assert set(answer) == {"stream", "id"} and answer["stream"] == key, answer
    assert ID_RE.match(answer["id"]), answer
    return answer["id"]


def xrange_entries(herald, key, **params):
    qs = urllib.parse.urlencode(params)
    url = f"{herald.base_url}/streams/{quoted(key)}" + (f"?{qs}" if qs else "")
    status, _, answer = http_json("GET", url)
    assert status == 200, f"GET /streams/{key}?{qs} answered {status} {answer}"
    assert answer["stream"] == key and isinstance(answer["entries"], list), answer
    return answer["entries"]


def push(herald, name, item):
    status, _, answer = http_json("POST", f"{herald.base_url}/queues/{quoted(name)}", item)
    assert status == 200, f"POST /queues/{name} answered {status} {answer}"
    assert set(answer) == {"queue", "length"} and answer["queue"] == name, answer
    return answer["length"]


def pop(herald, name, wait=None, timeout=15.0):
    url = f"{herald.base_url}/queues/{quoted(name)}" + (f"?wait={wait}" if wait is not None else "")
    return http("GET", url, timeout=timeout)


def cluster_lrange(cluster, key):
    out = cluster.cli(cluster.owner(key), "LRANGE", key, 0, -1)
    return [line for line in out.splitlines() if line]


def processing_lists(cluster, queue):
    """Herald's processing lists for `queue`: they share its hash tag, so they live on its owner."""
    out = cluster.cli(cluster.owner(queue), "KEYS", f"herald:processing:{{{queue}}}:{len(queue.encode())}:{queue}:*")
    return [line for line in out.splitlines() if line]


def other_master(cluster, port):
    return next(p for p in cluster.ports if p != port)


def shard_subscribers(cluster, port, channel):
    """PUBSUB SHARDNUMSUB on one node: how many of its clients SSUBSCRIBEd `channel`."""
    out = cluster.cli(port, "PUBSUB", "SHARDNUMSUB", channel).splitlines()
    return int(out[1]) if len(out) >= 2 else 0


def recv_until(ws, predicate, timeout=5.0, what="a message"):
    """Read JSON messages until `predicate(msg)`; returns every message read (the last matches)."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no {what} within {timeout}s; got {got[-5:]}")
        msg = recv_json(ws, remaining)
        got.append(msg)
        if predicate(msg):
            return got


# --------------------------------------------------------------------------- readiness

def test_readyz_once_every_master_is_linked(cherald, redis_cluster):
    status, _, body = http_json("GET", cherald.base_url + "/readyz")
    assert (status, body.get("status")) == (200, "ready"), body
    status, _, body = http_json("GET", cherald.base_url + "/healthz")
    assert status == 200 and body == {"status": "ok"}

    # Every master holds Herald's command links (one per loop) besides this redis-cli.
    def herald_clients(port):
        lines = redis_cluster.cli(port, "CLIENT", "LIST").splitlines()
        return [line for line in lines if " cmd=client|list " not in f" {line} "]
    for port in redis_cluster.ports:
        clients = herald_clients(port)
        assert len(clients) >= LOOPS, f"master :{port} has {len(clients)} clients: {clients}"


# --------------------------------------------------------------------------- streams

def test_stream_append_and_range_on_every_master(cherald, redis_cluster):
    keys = redis_cluster.names_on_every_master("orders")
    assert set(keys) == set(redis_cluster.ports)
    written = {}
    for port, key in keys.items():
        written[key] = [xadd(cherald, key, {"n": str(i), "port": str(port)}) for i in range(3)]
    for port, key in keys.items():
        # The entries live on the owner of the key's slot, and only there.
        assert redis_cluster.cli(port, "XLEN", key).strip() == "3"
        for other in redis_cluster.ports:
            if other != port:
                out = redis_cluster.cli(other, "XLEN", key, check=False)
                assert out.startswith("MOVED"), f"XLEN {key} on :{other} answered {out!r}"
        entries = xrange_entries(cherald, key)
        assert entries == [{"type": "entry", "stream": key, "id": written[key][i],
                            "fields": {"n": str(i), "port": str(port)}} for i in range(3)]
        # Ranges by id work as standalone: `from` is exclusive.
        assert [e["id"] for e in xrange_entries(cherald, key, **{"from": written[key][0]})] \
            == written[key][1:]
    # A stream that does not exist is empty.
    assert xrange_entries(cherald, unique("nothing")) == []


def test_stream_tail_replays_then_follows_on_every_master(cherald, redis_cluster):
    keys = redis_cluster.names_on_every_master("tail")
    history = {key: [xadd(cherald, key, {"n": str(i)}) for i in range(2)] for key in keys.values()}
    query = [("stream", key) for key in keys.values()] + [("from", "0")]
    ws = ws_connect(f"{cherald.ws_url}/subscribe?{urllib.parse.urlencode(query)}")
    try:
        got = [recv_json(ws, 10) for _ in range(6)]
        for msg in got:
            assert msg.get("type") == "entry", msg
        for key, ids in history.items():
            assert [m["id"] for m in got if m["stream"] == key] == ids, (key, got)

        # Live appends on each master reach the tail (within the ~50 ms per-slot poll).
        for round_ in range(3):
            live = {key: xadd(cherald, key, {"live": str(round_)}) for key in keys.values()}
            got = [recv_json(ws, 5) for _ in range(3)]
            assert sorted((m["type"], m["stream"], m["id"]) for m in got) == sorted(
                ("entry", key, entry_id) for key, entry_id in live.items()), got
            for m in got:
                assert m["fields"] == {"live": str(round_)}, m
        # No duplicate arrives later (the seam between replay and tail is clean).
        assert_silent(ws, 0.4)
    finally:
        ws.close()


# --------------------------------------------------------------------------- queues

def test_queue_push_and_pop_on_every_master(cherald, redis_cluster):
    queues = redis_cluster.names_on_every_master("jobs")
    for port, name in queues.items():
        assert [push(cherald, name, f"{name}-{i}") for i in range(3)] == [1, 2, 3]
        assert redis_cluster.cli(port, "LLEN", name).strip() == "3"
        status, headers, body = pop(cherald, name)
        assert (status, body) == (200, f"{name}-0".encode()), (status, body)
        # wait= uses BRPOP on the owner: an item present answers at once.
        start = time.monotonic()
        status, _, body = pop(cherald, name, wait=1)
        assert (status, body) == (200, f"{name}-1".encode()), (status, body)
        assert time.monotonic() - start < 0.8
        status, _, body = pop(cherald, name)
        assert (status, body) == (200, f"{name}-2".encode()), (status, body)
        assert pop(cherald, name)[0] == 204

    # A waiting pop on each master: empty ones end with 204 after the wait, and one that gets
    # an item while it waits answers early with it.
    results = {}

    def waiter(name, wait):
        start = time.monotonic()
        status, _, body = pop(cherald, name, wait=wait)
        results[name] = (status, body, time.monotonic() - start)

    names = list(queues.values())
    threads = [threading.Thread(target=waiter, args=(names[0], 1)),
               threading.Thread(target=waiter, args=(names[1], 1)),
               threading.Thread(target=waiter, args=(names[2], 5))]
    for t in threads:
        t.start()
    time.sleep(0.3)
    push(cherald, names[2], "late")
    for t in threads:
        t.join(15)
        assert not t.is_alive(), "a waiting pop did not finish"
    for name in names[:2]:
        status, body, took = results[name]
        assert (status, body) == (204, b""), results[name]
        assert 0.8 <= took < 5, results[name]
    status, body, took = results[names[2]]
    assert (status, body) == (200, b"late") and took < 4, results[names[2]]


def test_queue_worker_pop_and_ack_on_every_master(cherald, redis_cluster):
    queues = redis_cluster.names_on_every_master("work")
    for port, name in queues.items():
        push(cherald, name, "a")
        push(cherald, name, "b")
        ws = ws_connect(f"{cherald.ws_url}/subscribe?{urllib.parse.urlencode({'queue': name})}")
        try:
            ws.send(json.dumps({"op": "pop", "wait": 0, "id": 1}))
            first = recv_json(ws)
            assert (first.get("type"), first.get("queue"), first.get("data"), first.get("id")) \
                == ("item", name, "a", 1), first
            # The processing list carries the queue's hash tag: same slot, same master.
            lists = processing_lists(redis_cluster, name)
            assert len(lists) == 1 and lists[0].startswith(f"herald:processing:{{{name}}}:"), lists
            assert redis_cluster.keyslot(lists[0]) == redis_cluster.keyslot(name)
            assert cluster_lrange(redis_cluster, lists[0]) == ["a"]

            ws.send(json.dumps({"op": "ack", "queue": name, "tag": first["tag"]}))
            assert recv_json(ws) == {"type": "acked", "queue": name, "tag": first["tag"]}
            assert cluster_lrange(redis_cluster, lists[0]) == []

            ws.send(json.dumps({"op": "pop", "wait": 0, "id": 2}))
            second = recv_json(ws)
            assert (second["type"], second["data"], second["id"]) == ("item", "b", 2), second
            ws.send(json.dumps({"op": "ack", "queue": name, "tag": second["tag"]}))
            assert recv_json(ws)["type"] == "acked"

            # A blocking pop (BLMOVE on the owner) that an item ends early.
            ws.send(json.dumps({"op": "pop", "wait": 5, "id": "w"}))
            time.sleep(0.3)
            push(cherald, name, "late")
            third = recv_json(ws, 5)
            assert (third["type"], third["data"], third["id"]) == ("item", "late", "w"), third
            ws.send(json.dumps({"op": "ack", "queue": name, "tag": third["tag"]}))
            assert recv_json(ws)["type"] == "acked"
            ws.send(json.dumps({"op": "pop", "wait": 0, "id": 4}))
            assert recv_json(ws) == {"type": "empty", "queue": name, "id": 4}
        finally:
            ws.close()

    # An unacked item taken by a worker that vanishes goes back to its queue (LMOVE from the
    # processing list to the queue: both keys on one slot).
    name = queues[redis_cluster.ports[1]]
    push(cherald, name, "keep me")
    worker = RawWebSocket(cherald.port, "/subscribe?" + urllib.parse.urlencode({"queue": name}))
    try:
        worker.send_text(json.dumps({"op": "pop", "wait": 0}))
        _, _, payload = worker.recv_frame()
        assert json.loads(payload)["data"] == "keep me"
        assert cluster_lrange(redis_cluster, name) == []
    finally:
        worker.close()  # abrupt: no close frame
    wait_until(lambda: cluster_lrange(redis_cluster, name) == ["keep me"], timeout=5,
               what="the unacked item to be back in the queue")
    wait_until(lambda: processing_lists(redis_cluster, name) == [], timeout=5,
               what="the processing list to be gone")


def test_queue_worker_on_a_name_with_its_own_hash_tag(cherald, redis_cluster):
    """A queue named `work-..{t}` is hashed by `t`: its processing list and lease registry carry
    that tag (not the whole name, which would land elsewhere), so BLMOVE and the lease scripts
    work; the item goes back when the worker vanishes."""
    tag = unique("t")
    name = f"{unique('work')}{{{tag}}}"
    push(cherald, name, "tagged")
    worker = RawWebSocket(cherald.port, "/subscribe?" + urllib.parse.urlencode({"queue": name}))
    owner = redis_cluster.owner(name)
    try:
        worker.send_text(json.dumps({"op": "pop", "wait": 0}))
        _, _, payload = worker.recv_frame()
        assert json.loads(payload)["data"] == "tagged", payload
        lists = [k for k in redis_cluster.cli(owner, "KEYS", f"herald:processing:{{{tag}}}:*").splitlines() if k]
        scope = f"{{{tag}}}:{len(name.encode())}:{name}"
        assert lists == [k for k in lists if k.startswith(f"herald:processing:{scope}:")] and len(lists) == 1, lists
        assert redis_cluster.keyslot(lists[0]) == redis_cluster.keyslot(name)
        registry = f"herald:consumers:{scope}"
        assert redis_cluster.cli(owner, "ZRANGE", registry, 0, -1).split() == lists
    finally:
        worker.close()  # abrupt: no close frame
    wait_until(lambda: cluster_lrange(redis_cluster, name) == ["tagged"], timeout=5,
               what="the unacked item to be back in the tagged queue")
    wait_until(lambda: redis_cluster.cli(owner, "EXISTS", registry).strip() == "0", timeout=5,
               what="the worker's list to be unregistered")


# --------------------------------------------------------------------------- pub/sub

def test_sharded_publish_reaches_subscribers_on_every_master(cherald, redis_cluster):
    shards = redis_cluster.names_on_every_master("s")
    names = list(shards.values())
    ws = open_subscriber(cherald, shards=names)
    try:
        # Herald subscribed each channel at its own owner.
        for port, name in shards.items():
            assert shard_subscribers(redis_cluster, port, name) >= 1, (port, name)
        for port, name in shards.items():
            answer = publish(cherald, name, f"to {port}", sharded=True)
            assert answer["channel"] == name and answer["receivers"] >= 1, answer
            assert recv_json(ws) == {"type": "smessage", "channel": name, "data": f"to {port}"}
        # The JSON form and the WebSocket publish op go to the owner too.
        for name in names:
            status, _, answer = http_json("POST", cherald.base_url + "/publish", json.dumps(
                {"channel": name, "message": {"k": 1}, "sharded": True}),
                {"Content-Type": "application/json"})
            assert status == 200 and answer["receivers"] >= 1, answer
            assert recv_json(ws) == {"type": "smessage", "channel": name, "data": '{"k":1}'}
        for i, name in enumerate(names):
            ws.send(json.dumps({"op": "publish", "channel": name, "message": "op",
                                "sharded": True, "id": i}))
            got = [recv_json(ws), recv_json(ws)]
            assert {"type": "smessage", "channel": name, "data": "op"} in got, got
            answer = next(m for m in got if m.get("type") == "published")
            assert answer["channel"] == name and answer["id"] == i and answer["receivers"] >= 1, got
        # SPUBLISH straight on the owner reaches the subscriber; a classic PUBLISH does not.
        for port, name in shards.items():
            redis_cluster.cli(port, "SPUBLISH", name, "direct")
            assert recv_json(ws) == {"type": "smessage", "channel": name, "data": "direct"}
        assert publish(cherald, names[0], "not sharded")["channel"] == names[0]
        assert_silent(ws, 0.3)
    finally:
        ws.close()
    wait_until(lambda: all(shard_subscribers(redis_cluster, p, n) == 0 for p, n in shards.items()),
               timeout=5, what="Herald to SUNSUBSCRIBE the channels its last client left")


def test_classic_channel_and_pattern_delivery(cherald, redis_cluster):
    channels = redis_cluster.names_on_every_master("news")
    prefix = unique("mail")
    pattern = f"{prefix}-*"
    names = list(channels.values())
    ws = open_subscriber(cherald, channels=names, patterns=[pattern])
    try:
        for name in names:
            answer = publish(cherald, name, f"hello {name}")
            # Receivers counts only the receiving node's subscribers: not checked.
            assert answer["channel"] == name and isinstance(answer["receivers"], int), answer
            assert recv_json(ws) == {"type": "message", "channel": name, "data": f"hello {name}"}
        matching = f"{prefix}-1"
        publish(cherald, matching, "you have mail")
        assert recv_json(ws) == {"type": "pmessage", "pattern": pattern, "channel": matching,
                                 "data": "you have mail"}
        # A PUBLISH on any node is broadcast over the cluster bus to Herald's subscriber link.
        for port in redis_cluster.ports:
            redis_cluster.cli(port, "PUBLISH", names[0], f"via {port}")
            assert recv_json(ws) == {"type": "message", "channel": names[0], "data": f"via {port}"}
            redis_cluster.cli(port, "PUBLISH", f"{prefix}-{port}", "p")
            assert recv_json(ws) == {"type": "pmessage", "pattern": pattern,
                                     "channel": f"{prefix}-{port}", "data": "p"}
        publish(cherald, unique("elsewhere"), "nobody listens")
        assert_silent(ws, 0.3)
    finally:
        ws.close()


# --------------------------------------------------------------------------- redirections

def fresh_requests(herald, n, method, path, body=None, headers=None):
    """`n` requests on fresh connections (the kernel spreads them over Herald's loops, each
    with its own slot table)."""
    return [http_json(method, herald.base_url + path, body, headers) for _ in range(n)]


def test_moved_after_a_slot_migration(cherald, redis_cluster):
    key = unique("moving")
    slot = redis_cluster.keyslot(key)
    before = [xadd(cherald, key, {"n": str(i)}) for i in range(3)]
    queue = f"{{{key}}}-q"  # same slot as the stream
    assert redis_cluster.keyslot(queue) == slot
    push(cherald, queue, "q1")
    src = redis_cluster.owner(key)
    dst = other_master(redis_cluster, src)

    moved = redis_cluster.migrate_slot(slot, dst)
    assert moved == src and redis_cluster.owner(key) == dst
    assert redis_cluster.cli(dst, "XLEN", key).strip() == "3"
    assert redis_cluster.cli(src, "XLEN", key, check=False).startswith("MOVED")

    # Herald's tables still say `src`: every loop gets MOVED, follows it and learns the owner.
    after = []
    for i in range(6):
        [(status, _, answer)] = fresh_requests(cherald, 1, "POST", f"/streams/{quoted(key)}",
                                               json.dumps({"n": f"after-{i}"}),
                                               {"Content-Type": "application/json"})
        assert status == 200 and answer["stream"] == key, (status, answer)
        after.append(answer["id"])
    for status, _, answer in fresh_requests(cherald, 4, "GET", f"/streams/{quoted(key)}"):
        assert status == 200, (status, answer)
        assert [e["id"] for e in answer["entries"]] == before + after
    assert redis_cluster.cli(dst, "XLEN", key).strip() == str(len(before) + len(after))
    # The queue key moved along with the slot.
    assert push(cherald, queue, "q2") == 2
    assert pop(cherald, queue)[2] == b"q1"
    assert pop(cherald, queue, wait=1)[2] == b"q2"
    status, _, body = http_json("GET", cherald.base_url + "/readyz")
    assert status == 200, body


def test_ask_during_a_slot_migration(cherald, redis_cluster):
    key = unique("asking")
    slot = redis_cluster.keyslot(key)
    first = xadd(cherald, key, {"n": "0"})
    src = redis_cluster.owner(key)
    dst = other_master(redis_cluster, src)
    fresh = f"{{{key}}}-new"  # same slot, created while the slot is half-way
    finished = False
    try:
        assert redis_cluster.begin_migration(slot, dst) == src
        assert redis_cluster.move_keys(slot, src, dst) == [key]
        # The source still owns the slot but no longer has the key: it answers ASK.
        assert redis_cluster.cli(src, "XLEN", key, check=False).startswith("ASK"), \
            redis_cluster.cli(src, "XLEN", key, check=False)
        ids = [first]
        for status, _, answer in fresh_requests(cherald, 4, "POST", f"/streams/{quoted(key)}",
                                                json.dumps({"n": "ask"}),
                                                {"Content-Type": "application/json"}):
            assert status == 200 and answer["stream"] == key, (status, answer)
            ids.append(answer["id"])
        for status, _, answer in fresh_requests(cherald, 3, "GET", f"/streams/{quoted(key)}"):
            assert status == 200 and [e["id"] for e in answer["entries"]] == ids, (status, answer)
        new_id = xadd(cherald, fresh, {"created": "during migration"})
        assert redis_cluster.cli(src, "EXISTS", fresh, check=False).startswith("ASK")
        redis_cluster.finish_migration(slot, dst, src)
        finished = True
        assert redis_cluster.cli(dst, "XLEN", key).strip() == str(len(ids))
        assert [e["id"] for e in xrange_entries(cherald, fresh)] == [new_id]
        assert [e["id"] for e in xrange_entries(cherald, key)] == ids
    finally:
        if not finished:
            # Leave the session's cluster consistent for the tests that follow.
            redis_cluster.move_keys(slot, src, dst)
            redis_cluster.finish_migration(slot, dst, src)


# --------------------------------------------------------------------------- live migration

class Publisher(threading.Thread):
    """SPUBLISHes `0, 1, 2, ...` through Herald every ~`period` s on one keep-alive connection,
    recording (seq, start time, status, answer) for each."""

    def __init__(self, herald, channel, period=0.02):
        super().__init__(daemon=True)
        self.herald, self.channel, self.period = herald, channel, period
        self.sent = []
        self.error = None
        self.stop_event = threading.Event()

    def run(self):
        conn = httpclient.HTTPConnection("127.0.0.1", self.herald.port, timeout=10)
        path = f"/publish/{quoted(self.channel)}?sharded=true"
        try:
            seq = 0
            while not self.stop_event.is_set():
                start = time.monotonic()
                conn.request("POST", path, body=str(seq).encode())
                resp = conn.getresponse()
                body = resp.read()
                try:
                    answer = json.loads(body)
                except ValueError:
                    answer = body
                self.sent.append((seq, start, resp.status, answer))
                seq += 1
                time.sleep(max(0.0, start + self.period - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            conn.close()


class Reader(threading.Thread):
    """Reads every message of a subscriber, stamping each with its arrival time."""

    def __init__(self, ws):
        super().__init__(daemon=True)
        self.ws = ws
        self.got = []  # (arrival time, message)
        self.error = None
        self.stop_event = threading.Event()

    def run(self):
        try:
            while not self.stop_event.is_set():
                try:
                    msg = self.ws.recv(timeout=0.1)
                except TimeoutError:
                    continue
                self.got.append((time.monotonic(), json.loads(msg)))
        except BaseException as exc:  # noqa: BLE001 - reported by the test (e.g. a close)
            self.error = exc

    def seqs(self):
        return [int(m["data"]) for _, m in self.got if m.get("type") == "smessage"]


def test_live_migration_of_a_sharded_channel(cherald, redis_cluster):
    channel = unique("live")
    slot = redis_cluster.keyslot(channel)
    src = redis_cluster.owner(channel)
    dst = other_master(redis_cluster, src)

    ws = open_subscriber(cherald, shards=[channel])
    reader = Reader(ws)
    publisher = Publisher(cherald, channel)
    try:
        assert shard_subscribers(redis_cluster, src, channel) == 1
        reader.start()
        publisher.start()
        time.sleep(0.5)
        assert publisher.error is None and publisher.is_alive(), publisher.error
        migration_start = time.monotonic()
        # A pub/sub channel has no keys to MIGRATE: only the slot moves.
        redis_cluster.begin_migration(slot, dst)
        redis_cluster.finish_migration(slot, dst, src)
        migration_end = time.monotonic()
        time.sleep(1.0)
        publisher.stop_event.set()
        publisher.join(10)
        assert not publisher.is_alive(), "the publisher did not stop"
        assert publisher.error is None, f"the publisher failed: {publisher.error!r}"
        last_seq = publisher.sent[-1][0]
        # (a) The subscriber stays connected and gets what is published after the migration.
        wait_until(lambda: reader.error is not None or (reader.seqs() and reader.seqs()[-1] == last_seq),
                   timeout=5, what=f"the subscriber to receive the last message {last_seq}")
        assert reader.error is None, f"the subscriber's connection failed: {reader.error!r}"
        # Herald's subscription now lives at the new owner, and no longer at the old one.
        assert shard_subscribers(redis_cluster, dst, channel) == 1
        assert shard_subscribers(redis_cluster, src, channel) == 0
        reader.stop_event.set()
        reader.join(5)
    finally:
        publisher.stop_event.set()
        reader.stop_event.set()
        publisher.join(5)
        reader.join(5)
        ws.close()

    sent = publisher.sent
    context = (f"slot {slot} moved :{src} -> :{dst}; {len(sent)} published; "
               f"received {[m for _, m in reader.got][:3]}...{[m for _, m in reader.got][-3:]}")
    assert redis_cluster.owner(channel) == dst, context
    after_migration = [s for s in sent if s[1] > migration_end]
    assert len(after_migration) >= 20, f"too few publishes after the migration: {context}"

    # (d) Every SPUBLISH answered 200 throughout (Herald follows MOVED); the last ones reached
    # the re-subscribed link at the new owner.
    bad = [(seq, status, answer) for seq, _, status, answer in sent if status != 200]
    assert not bad, f"SPUBLISH through Herald failed during the migration: {bad[:5]}; {context}"
    for seq, _, _, answer in sent:
        assert answer == {"channel": channel, "receivers": answer.get("receivers")} \
            and isinstance(answer["receivers"], int), answer
    assert sent[-1][3]["receivers"] >= 1, f"the last publish reached nobody: {sent[-1]}"

    # Only deliveries and gap notices for this channel arrive.
    gaps = []
    for index, (at, msg) in enumerate(reader.got):
        if msg.get("type") == "gap":
            assert msg == {"type": "gap", "kind": "shard", "channel": channel}, msg
            gaps.append((index, at))
        else:
            assert msg.get("type") == "smessage" and msg.get("channel") == channel \
                and set(msg) == {"type", "channel", "data"}, msg
    seqs = reader.seqs()
    print(f"live migration: {len(sent)} published, {len(seqs)} delivered, "
          f"gap notices at {[i for i, _ in gaps]}, missing "
          f"{sorted(set(range(sent[-1][0] + 1)) - set(seqs))}; migration took "
          f"{(migration_end - migration_start) * 1000:.0f} ms")
    # Never duplicated, never reordered.
    assert seqs == sorted(set(seqs)), f"duplicates or reordering: {seqs}"
    missing = sorted(set(range(last_seq + 1)) - set(seqs))
    started = {seq: start for seq, start, _, _ in sent}

    # (c) Losses are never silent: anything missing comes with a gap notice for the channel.
    if missing:
        assert gaps, f"messages {missing} were lost with no gap notice; {context}"
        gap_at = gaps[-1][1]
        # Whatever was lost was published before the subscriber heard of the gap, and within
        # the migration window (not before it started).
        late = [seq for seq in missing if started[seq] >= gap_at]
        assert not late, f"messages {late} published after the gap notice were lost; {context}"
        early = [seq for seq in missing if started[seq] < migration_start]
        assert not early, f"messages {early} published before the migration were lost; {context}"

    # (b) From the first post-migration delivery (or the gap notice, whichever came first) on,
    # every message arrives, in order, none missing.
    first_after = next((at for at, m in reader.got if m.get("type") == "smessage"
                        and started[int(m["data"])] > migration_end), None)
    assert first_after is not None, f"nothing published after the migration arrived; {context}"
    cutoff = min([first_after] + [at for _, at in gaps])
    expected = [seq for seq, start, _, _ in sent if start >= cutoff]
    assert expected, context
    tail = [s for s in seqs if s >= expected[0]]
    assert tail == expected, (f"after the subscriber was back, missing "
                              f"{sorted(set(expected) - set(tail))}; {context}")
    # And after the gap notice (if any), deliveries are contiguous up to the last one.
    if gaps:
        after_gap = [int(m["data"]) for _, m in reader.got[gaps[-1][0] + 1:]
                     if m.get("type") == "smessage"]
        assert after_gap and after_gap == list(range(after_gap[0], last_seq + 1)), \
            f"deliveries after the gap notice are not contiguous: {after_gap}; {context}"


# --------------------------------------------------------------------------- more keyed paths

def test_consumer_group_on_every_master(cherald, redis_cluster):
    streams = redis_cluster.names_on_every_master("billing")
    for port, stream in streams.items():
        query = {"stream": stream, "group": "g", "consumer": "w1", "from": "0"}
        ws = ws_connect(f"{cherald.ws_url}/subscribe?{urllib.parse.urlencode(query)}")
        try:
            # XGROUP CREATE ... MKSTREAM on the owner.
            wait_until(lambda: "g" in redis_cluster.cli(port, "XINFO", "GROUPS", stream,
                                                        check=False).splitlines(),
                       timeout=5, what=f"the group on :{port}")
            ids = [xadd(cherald, stream, {"n": str(i)}) for i in range(3)]
            got = [recv_json(ws) for _ in range(3)]
            assert got == [{"type": "entry", "stream": stream, "group": "g", "id": ids[i],
                            "fields": {"n": str(i)}} for i in range(3)], got
            assert redis_cluster.cli(port, "XPENDING", stream, "g").splitlines()[0] == "3"
            ws.send(json.dumps({"op": "ack", "stream": stream, "ids": ids, "id": 1}))
            assert recv_json(ws) == {"type": "acked", "stream": stream, "count": 3, "id": 1}
            assert redis_cluster.cli(port, "XPENDING", stream, "g").splitlines()[0] == "0"
        finally:
            ws.close()


def test_stream_tail_follows_its_key_to_a_new_owner(cherald, redis_cluster):
    key = unique("wandering")
    slot = redis_cluster.keyslot(key)
    ids = [xadd(cherald, key, {"n": str(i)}) for i in range(3)]
    ws = ws_connect(f"{cherald.ws_url}/subscribe?{urllib.parse.urlencode({'stream': key, 'from': '0'})}")
    try:
        assert [recv_json(ws)["id"] for _ in range(3)] == ids
        src = redis_cluster.owner(key)
        redis_cluster.migrate_slot(slot, other_master(redis_cluster, src))
        # Appends after the move (Herald follows MOVED for them) reach the tail, which now
        # reads the key at its new owner: nothing lost, nothing repeated.
        more = [xadd(cherald, key, {"n": str(i)}) for i in range(3, 8)]
        got = [recv_json(ws, 5) for _ in range(5)]
        assert [(m.get("type"), m.get("id")) for m in got] == [("entry", i) for i in more], got
        assert_silent(ws, 0.4)
    finally:
        ws.close()
