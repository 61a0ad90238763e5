"""Consumer groups over WebSocket: created on demand, entries split across consumers and acked by
the client, a reconnecting consumer gets its own pending entries back, and entries left by a
consumer that vanished are claimed (XAUTOCLAIM) and delivered to a live one."""

import asyncio
import http.client as httpclient
import json
import threading
import time
import urllib.parse
from collections import defaultdict

import pytest
from websockets.asyncio.client import connect as async_connect

from conftest import (
    assert_json_error,
    assert_silent,
    http_json,
    parse_responses,
    raw_exchange,
    recv_json,
    unique,
    wait_until,
    ws_connect,
    ws_handshake_request,
)

GROUP = "billing"


# --------------------------------------------------------------------------- helpers

def group_url(herald, stream, consumer, group=GROUP, **params):
    query = {"stream": stream, "group": group, "consumer": consumer, **params}
    return f"{herald.ws_url}/subscribe?{urllib.parse.urlencode(query)}"


def xadd(herald, key, fields):
    status, _, answer = http_json("POST", f"{herald.base_url}/streams/{key}", json.dumps(fields),
                                  {"Content-Type": "application/json"})
    assert status == 200, answer
    return answer["id"]


def groups_of(redis, stream):
    """Group names from XINFO GROUPS (empty when the key does not exist)."""
    out = redis.cli("XINFO", "GROUPS", stream, check=False).splitlines()
    return [out[i + 1] for i, line in enumerate(out[:-1]) if line == "name"]


def consumers_of(redis, stream, group=GROUP):
    out = redis.cli("XINFO", "CONSUMERS", stream, group, check=False).splitlines()
    return [out[i + 1] for i, line in enumerate(out[:-1]) if line == "name"]


def pending_count(redis, stream, group=GROUP):
    return int(redis.cli("XPENDING", stream, group).splitlines()[0])


def recv_group_entries(ws, n, stream, timeout=5.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        msg = recv_json(ws, max(0.01, deadline - time.monotonic()))
        assert msg.get("type") == "entry", f"expected an entry, got {msg}"
        assert msg.get("stream") == stream and msg.get("group") == GROUP, msg
        got.append(msg)
    return got


def ack(ws, stream, ids, req_id):
    ws.send(json.dumps({"op": "ack", "stream": stream, "ids": ids, "id": req_id}))
    return recv_json(ws)


# --------------------------------------------------------------------------- basics

def test_group_created_on_demand_delivers_and_acks(herald, redis_server):
    stream = unique("jobs")
    ws = ws_connect(group_url(herald, stream, "w1", **{"from": "0"}))
    try:
        # XGROUP CREATE ... MKSTREAM: the stream and the group exist before any entry.
        wait_until(lambda: groups_of(redis_server, stream) == [GROUP], timeout=5,
                   what="the group to be created")
        assert redis_server.cli("TYPE", stream).strip() == "stream"
        first = xadd(herald, stream, {"task": "invoice", "n": 1})
        msg = recv_json(ws)
        assert msg == {"type": "entry", "stream": stream, "group": GROUP, "id": first,
                       "fields": {"n": "1", "task": "invoice"}}
        assert pending_count(redis_server, stream) == 1
        assert ack(ws, stream, [first], {"req": 7}) == {
            "type": "acked", "stream": stream, "count": 1, "id": {"req": 7}}
        assert pending_count(redis_server, stream) == 0
        # Acking again: Redis counts 0.
        assert ack(ws, stream, [first], 8) == {"type": "acked", "stream": stream, "count": 0, "id": 8}
        assert consumers_of(redis_server, stream) == ["w1"]
    finally:
        ws.close()


def test_new_group_starts_at_the_end_unless_from_is_given(herald, redis_server):
    stream = unique("jobs")
    old = [xadd(herald, stream, {"old": i}) for i in range(3)]
    ws = ws_connect(group_url(herald, stream, "w1"))
    try:
        wait_until(lambda: groups_of(redis_server, stream) == [GROUP], timeout=5,
                   what="the group to be created")
        new = xadd(herald, stream, {"new": 1})
        assert recv_json(ws)["id"] == new
        assert_silent(ws, 0.3)
    finally:
        ws.close()

    # Another group created from an id gets the entries after it.
    ws = ws_connect(group_url(herald, stream, "w1", group="audit", **{"from": old[0]}))
    try:
        got = [m["id"] for m in (recv_json(ws) for _ in range(3))]
        assert got == old[1:] + [new]
        assert_silent(ws, 0.3)
    finally:
        ws.close()


def test_own_pending_entries_come_back_on_reconnect(herald, redis_server):
    stream = unique("jobs")
    ids = [xadd(herald, stream, {"n": i}) for i in range(3)]
    ws = ws_connect(group_url(herald, stream, "w1", **{"from": "0"}))
    try:
        first = recv_group_entries(ws, 3, stream)
        assert [m["id"] for m in first] == ids
    finally:
        ws.close()  # nothing acked
    assert pending_count(redis_server, stream) == 3

    # Another consumer does not get them (they are w1's, and not idle for --claim-idle yet).
    other = ws_connect(group_url(herald, stream, "w2"))
    try:
        wait_until(lambda: "w2" in consumers_of(redis_server, stream), timeout=5,
                   what="w2 to join the group")
        assert_silent(other, 0.5)
    finally:
        other.close()

    ws = ws_connect(group_url(herald, stream, "w1"))
    try:
        again = recv_group_entries(ws, 3, stream)
        assert again == first, "the reconnected consumer must get its pending entries back"
        assert ack(ws, stream, ids, 1) == {"type": "acked", "stream": stream, "count": 3, "id": 1}
        assert pending_count(redis_server, stream) == 0
        # New entries after the pending ones.
        new = xadd(herald, stream, {"n": 3})
        assert recv_json(ws)["id"] == new
    finally:
        ws.close()


def test_prefetch_bounds_unacked_entries(herald, redis_server):
    stream = unique("jobs")
    ids = [xadd(herald, stream, {"n": i}) for i in range(5)]
    ws = ws_connect(group_url(herald, stream, "w1", prefetch=2, **{"from": "0"}))
    try:
        got = recv_group_entries(ws, 2, stream)
        assert [m["id"] for m in got] == ids[:2]
        assert_silent(ws, 1.5)  # more than one claim/fetch tick: still only two unacked
        assert ack(ws, stream, [ids[0]], "a")["count"] == 1
        assert recv_json(ws)["id"] == ids[2]
        assert_silent(ws, 0.3)
        assert ack(ws, stream, ids[1:3], "b")["count"] == 2
        got = recv_group_entries(ws, 2, stream)
        assert [m["id"] for m in got] == ids[3:]
    finally:
        ws.close()


@pytest.mark.parametrize("message", [
    {"op": "ack", "stream": "OTHER", "ids": ["1-0"]},
    {"op": "ack", "stream": "STREAM", "ids": ["not-an-id"]},
    {"op": "ack", "stream": "STREAM", "ids": []},
    {"op": "ack", "stream": "STREAM", "ids": [5]},
    {"op": "ack", "stream": "STREAM"},
])
def test_bad_acks_are_errors(herald, message):
    stream = unique("jobs")
    message = {k: (stream if v == "STREAM" else unique("x") if v == "OTHER" else v)
               for k, v in message.items()}
    message["id"] = 9
    ws = ws_connect(group_url(herald, stream, "w1"))
    try:
        ws.send(json.dumps(message))
        err = recv_json(ws)
        assert (err.get("type"), err.get("code"), err.get("id")) == ("error", "bad_request", 9), err
        ws.send(json.dumps({"op": "ping", "id": 10}))
        assert recv_json(ws) == {"type": "pong", "id": 10}
    finally:
        ws.close()


@pytest.mark.parametrize("query", [
    "stream=s&group=g",
    "stream=s&group=g&consumer=",
    "stream=s&consumer=w1",
    "group=g&consumer=w1",
    "stream=s&group=&consumer=w1",
    "stream=s&group=g&consumer=w1&prefetch=0",
    "stream=s&group=g&consumer=w1&prefetch=10001",
    "stream=s&group=g&consumer=w1&prefetch=abc",
])
def test_bad_group_options_are_400(herald, redis_server, query):
    request, _ = ws_handshake_request("/subscribe?" + query)
    raw = raw_exchange(herald.port, request, until=lambda b: len(parse_responses(b)[0]) >= 1)
    responses, _ = parse_responses(raw)
    assert responses, f"no answer to the handshake {query}: {raw!r}"
    assert_json_error(responses[0].status, responses[0].body, 400, "bad_request", query)
    assert groups_of(redis_server, "s") == []


def test_group_on_a_key_of_another_type(herald, redis_server):
    key = unique("alist")
    redis_server.cli("RPUSH", key, "x")
    ws = ws_connect(group_url(herald, key, "w1"))
    try:
        err = recv_json(ws)
        assert (err.get("type"), err.get("code"), err.get("stream")) == ("error", "wrong_type", key), err
        assert err.get("message")
        ws.send(json.dumps({"op": "ping", "id": 1}))
        assert recv_json(ws) == {"type": "pong", "id": 1}
    finally:
        ws.close()
    assert redis_server.cli("TYPE", key).strip() == "list"


# --------------------------------------------------------------------------- 3 consumers, 1,000 entries, one killed

N_ENTRIES = 1000
PREFETCH = 10       # small, so that busy consumers leave entries to the others
WORK_SECONDS = 0.005  # a live consumer "works" this long on an entry before acking it
KILL_AFTER = 400    # the victim stops acking once this many entries were written...
VICTIM_HOLDS = 5    # ... and is killed holding at least this many unacked entries


class Writer(threading.Thread):
    def __init__(self, herald, stream, total, seconds):
        super().__init__(daemon=True)
        self.herald, self.stream, self.total, self.seconds = herald, stream, total, seconds
        self.ids = []
        self.error = None

    def run(self):
        conn = httpclient.HTTPConnection("127.0.0.1", self.herald.port, timeout=10)
        try:
            start = time.monotonic()
            for i in range(self.total):
                conn.request("POST", f"/streams/{self.stream}", body=json.dumps({"n": i}),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
                assert resp.status == 200, body
                self.ids.append(json.loads(body)["id"])
                lag = start + (i + 1) * self.seconds / self.total - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            conn.close()


def test_three_consumers_thousand_entries_one_killed(start_redis, start_herald):
    redis = start_redis()
    herald = start_herald("--claim-idle", "1", redis_url=redis.url, loops=2)
    stream = unique("jobs")

    acks = defaultdict(list)          # entry id -> [(consumer, count from the acked answer)]
    delivered = defaultdict(list)     # consumer -> [(entry id, monotonic time)]
    killed = {}                       # "at": monotonic time, "held": ids unacked at the kill
    problems = []

    def url(consumer):
        return group_url(herald, stream, consumer, prefetch=PREFETCH, **{"from": "0"})

    def check_entry(consumer, msg):
        if msg.get("type") != "entry" or msg.get("stream") != stream or msg.get("group") != GROUP:
            problems.append((consumer, msg))
            return False
        delivered[consumer].append((msg["id"], time.monotonic()))
        return True

    def check_acked(consumer, msg):
        if msg.get("type") != "acked" or msg.get("stream") != stream or msg.get("count") not in (0, 1):
            problems.append((consumer, msg))
            return
        acks[msg["id"]].append((consumer, msg["count"]))

    async def live(consumer, done):
        ws = await async_connect(url(consumer), open_timeout=10, ping_interval=None, max_size=None)
        try:
            while not done.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except asyncio.TimeoutError:
                    continue
                msg = json.loads(raw)
                if msg.get("type") == "acked":
                    check_acked(consumer, msg)
                elif check_entry(consumer, msg):
                    await asyncio.sleep(WORK_SECONDS)
                    await ws.send(json.dumps({"op": "ack", "stream": stream, "ids": [msg["id"]],
                                              "id": msg["id"]}))
        finally:
            await ws.close()

    async def victim(writer):
        ws = await async_connect(url("victim"), open_timeout=10, ping_interval=None, max_size=None)
        sent_acks, answered, held = 0, 0, []
        # Work normally until the writer is midway, then stop acking and get killed.
        while not (answered == sent_acks and len(held) >= VICTIM_HOLDS):
            msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if msg.get("type") == "acked":
                check_acked("victim", msg)
                answered += 1
            elif check_entry("victim", msg):
                if not held and (len(writer.ids) < KILL_AFTER or not sent_acks):
                    await asyncio.sleep(WORK_SECONDS)
                    sent_acks += 1
                    await ws.send(json.dumps({"op": "ack", "stream": stream, "ids": [msg["id"]],
                                              "id": msg["id"]}))
                else:
                    held.append(msg["id"])
        # Killed: the TCP connection is torn down, no close frame, nothing acked any more.
        ws.transport.abort()
        killed["at"] = time.monotonic()
        killed["held"] = held
        killed["acked"] = answered
        killed["written"] = len(writer.ids)

    def all_acked():
        return sum(1 for v in acks.values() if any(c == 1 for _, c in v)) >= N_ENTRIES

    async def scenario():
        done = asyncio.Event()
        writer = Writer(herald, stream, N_ENTRIES, 2.5)
        victim_task = asyncio.ensure_future(victim(writer))
        live_tasks = [asyncio.ensure_future(live(c, done)) for c in ("w1", "w2")]
        await asyncio.to_thread(wait_until, lambda: len(consumers_of(redis, stream)) == 3,
                                10, 0.05, "three consumers in the group")
        writer.start()
        try:
            await asyncio.wait_for(victim_task, 20)
            assert len(writer.ids) < N_ENTRIES, "the victim was killed after the writer finished"
            deadline = time.monotonic() + 30
            while not all_acked() and time.monotonic() < deadline:
                for task in live_tasks:
                    if task.done():
                        task.result()  # raises what went wrong
                await asyncio.sleep(0.1)
        finally:
            done.set()
            await asyncio.gather(*live_tasks, return_exceptions=True)
            await asyncio.to_thread(writer.join, 15)
        assert writer.error is None, f"the writer failed: {writer.error!r}"
        for task in live_tasks:
            task.result()
        return writer.ids

    written = asyncio.run(asyncio.wait_for(scenario(), 75))
    assert problems == [], f"unexpected messages: {problems[:5]}"
    assert len(written) == N_ENTRIES

    # Every entry acked exactly once (XACK answered count 1 exactly once for it).
    once = {i: [c for c, n in acks.get(i, []) if n == 1] for i in written}
    missing = [i for i, who in once.items() if not who]
    twice = {i: who for i, who in once.items() if len(who) > 1}
    assert not missing, f"{len(missing)} entries never acked, e.g. {missing[:5]}"
    assert not twice, f"entries acked more than once: {list(twice.items())[:5]}"
    assert set(acks) <= set(written), "acks for ids never written"
    assert pending_count(redis, stream) == 0

    # The victim's unacked entries were claimed and delivered to live consumers after the kill.
    held = killed["held"]
    assert len(held) >= VICTIM_HOLDS
    for entry_id in held:
        assert once[entry_id][0] in ("w1", "w2"), (entry_id, once[entry_id])
        later = [c for c in ("w1", "w2") for i, t in delivered[c] if i == entry_id and t > killed["at"]]
        assert later, f"{entry_id} held by the victim was not redelivered to a live consumer"
    # Killed midway, after acking some; the entries were split across all three consumers.
    assert KILL_AFTER <= killed["written"] < N_ENTRIES, killed["written"]
    assert killed["acked"] > 0, "the victim acked nothing before it was killed"
    assert sum(1 for who in once.values() if who == ["victim"]) == killed["acked"]
    for consumer in ("w1", "w2", "victim"):
        assert delivered[consumer], f"{consumer} received nothing"
    assert herald.proc.poll() is None
