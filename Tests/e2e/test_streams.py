"""Redis streams through Herald: XADD/XRANGE over HTTP, replay + live tail over WebSocket,
resume from the last id seen (with a gap notice after a trim), one XREAD link per loop."""

import asyncio
import datetime
import http.client as httpclient
import json
import random
import re
import threading
import time
import urllib.parse

import pytest
from websockets.asyncio.client import connect as async_connect

from conftest import (
    RawWebSocket,
    assert_json_error,
    assert_silent,
    connected_clients,
    http,
    http_json,
    parse_responses,
    raw_exchange,
    recv_json,
    unique,
    wait_until,
    ws_connect,
    ws_handshake_request,
)

ID_RE = re.compile(r"^\d+-\d+$")


# --------------------------------------------------------------------------- helpers

def id_key(entry_id):
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def xadd(herald, key, fields=None, raw=None, maxlen=None):
    """POST /streams/{key}; returns the new id (checks the answer's exact shape)."""
    path = f"/streams/{urllib.parse.quote(key, safe='')}"
    if maxlen is not None:
        path += f"?maxlen={maxlen}"
    if fields is not None:
        status, _, answer = http_json("POST", herald.base_url + path, json.dumps(fields),
                                      {"Content-Type": "application/json"})
    else:
        status, _, answer = http_json("POST", herald.base_url + path, raw)
    assert status == 200, f"POST {path} answered {status} {answer}"
    assert set(answer) == {"stream", "id"} and answer["stream"] == key, answer
    assert ID_RE.match(answer["id"]), answer
    return answer["id"]


class KeepAliveWriter:
    """Appends entries over one keep-alive HTTP connection (field `n` = sequence number)."""

    def __init__(self, herald, key):
        self.conn = httpclient.HTTPConnection("127.0.0.1", herald.port, timeout=10)
        self.path = f"/streams/{urllib.parse.quote(key, safe='')}"
        self.key = key

    def add(self, fields, query=""):
        self.conn.request("POST", self.path + query, body=json.dumps(fields),
                          headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200, f"POST {self.path}{query} answered {resp.status} {body[:300]!r}"
        answer = json.loads(body)
        assert answer["stream"] == self.key and ID_RE.match(answer["id"]), answer
        return answer["id"]

    def close(self):
        self.conn.close()


class BackgroundWriter(threading.Thread):
    """Appends `total` entries `{"n": i}` over ~`seconds`, recording every id in order."""

    def __init__(self, herald, key, total=300, seconds=3.0):
        super().__init__(daemon=True)
        self.herald, self.key, self.total, self.seconds = herald, key, total, seconds
        self.ids = []
        self.error = None
        self.done = threading.Event()

    def run(self):
        writer = KeepAliveWriter(self.herald, self.key)
        try:
            start = time.monotonic()
            for i in range(self.total):
                self.ids.append(writer.add({"n": str(i)}))
                # Spread the writes evenly over `seconds`.
                lag = start + (i + 1) * self.seconds / self.total - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            writer.close()
            self.done.set()

    def finish(self, timeout=20):
        assert self.done.wait(timeout), "the writer did not finish"
        assert self.error is None, f"the writer failed: {self.error!r}"
        assert len(self.ids) == self.total


def get_range(herald, key, **params):
    qs = urllib.parse.urlencode(params)
    url = f"{herald.base_url}/streams/{urllib.parse.quote(key, safe='')}" + (f"?{qs}" if qs else "")
    return http_json("GET", url)


def range_ids(herald, key, **params):
    status, _, answer = get_range(herald, key, **params)
    assert status == 200, f"GET /streams/{key}?{params} answered {status} {answer}"
    assert answer["stream"] == key and isinstance(answer["entries"], list), answer
    for entry in answer["entries"]:
        assert entry["type"] == "entry" and entry["stream"] == key, entry
    return [e["id"] for e in answer["entries"]]


def stream_url(herald, streams, **params):
    query = [("stream", s) for s in streams] + list(params.items())
    return f"{herald.ws_url}/subscribe?{urllib.parse.urlencode(query)}"


def recv_entries(ws, count, timeout=10.0, until_id=None):
    """Read `count` messages (or until `until_id` arrived); every one must be an entry."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and not (until_id and got and got[-1]["id"] == until_id):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"received {len(got)} entries, expected {count} (until {until_id}); "
                        f"last {got[-3:]}")
        msg = recv_json(ws, remaining)
        assert msg.get("type") == "entry", f"expected an entry, got {msg}"
        got.append(msg)
    return got


def raw_entries(ws: RawWebSocket, until, timeout=10.0):
    """Entries from a RawWebSocket until `until(entries)` holds."""
    got = []
    deadline = time.monotonic() + timeout
    while not until(got):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"raw client received {len(got)} entries only; last {got[-3:]}")
        _, opcode, payload = ws.recv_frame(remaining)
        assert opcode == 0x1, f"expected a text frame, got opcode {opcode}: {payload[:200]!r}"
        msg = json.loads(payload)
        assert msg.get("type") == "entry", f"expected an entry, got {msg}"
        got.append(msg)
    return got


def assert_exactly_once_in_order(seen_ids, written_ids, context):
    dups = {i for i in seen_ids if seen_ids.count(i) > 1} if len(set(seen_ids)) != len(seen_ids) else set()
    assert not dups, f"{context}: duplicated ids {sorted(dups, key=id_key)[:10]}"
    missing = [i for i in written_ids if i not in set(seen_ids)]
    assert not missing, f"{context}: missing {len(missing)} ids, first {missing[:5]}"
    assert seen_ids == written_ids, f"{context}: order differs"


def iso(ms, offset_hours=0, fraction=True):
    tz = datetime.timezone(datetime.timedelta(hours=offset_hours))
    t = datetime.datetime.fromtimestamp(ms / 1000, tz)
    text = t.isoformat(timespec="milliseconds" if fraction else "seconds")
    return text.replace("+00:00", "Z")


def handshake_answer(port, path):
    request, _ = ws_handshake_request(path)
    raw = raw_exchange(port, request, until=lambda b: len(parse_responses(b)[0]) >= 1)
    responses, _ = parse_responses(raw)
    assert responses, f"no answer to the handshake {path}: {raw!r}"
    return responses[0]


# --------------------------------------------------------------------------- POST /streams

def test_append_json_fields_and_raw_body(herald, redis_server):
    key = unique("orders")
    first = xadd(herald, key, {"item": "book", "qty": 2, "meta": {"gift": True, "tags": ["a", 1]},
                               "note": None, "text": "caf\u00e9 \"q\""})
    second = xadd(herald, key, raw=b"plain bytes, not JSON")
    # JSON body without the JSON content type is raw data too.
    third = xadd(herald, key, raw=b'{"looks":"like json"}')
    assert id_key(first) < id_key(second) < id_key(third)

    flat = redis_server.cli("XRANGE", key, first, first).splitlines()
    assert flat[0] == first
    fields = dict(zip(flat[1::2], flat[2::2]))
    assert fields == {"item": "book", "qty": "2", "meta": '{"gift":true,"tags":["a",1]}',
                      "note": "null", "text": 'caf\u00e9 "q"'}

    status, _, answer = get_range(herald, key)
    assert status == 200
    assert answer == {"stream": key, "entries": [
        {"type": "entry", "stream": key, "id": first,
         "fields": {"item": "book", "meta": '{"gift":true,"tags":["a",1]}', "note": "null",
                    "qty": "2", "text": 'caf\u00e9 "q"'}},
        {"type": "entry", "stream": key, "id": second, "fields": {"data": "plain bytes, not JSON"}},
        {"type": "entry", "stream": key, "id": third, "fields": {"data": '{"looks":"like json"}'}},
    ]}


def test_append_keeps_the_field_order_sent(herald, redis_server):
    """Fields are stored and read back in the order the client wrote them, not sorted."""
    key = unique("ordered")
    entry = xadd(herald, key, {"zeta": 1, "alpha": "a", "mid": True})
    flat = redis_server.cli("XRANGE", key, entry, entry).splitlines()
    assert flat[1::2] == ["zeta", "alpha", "mid"], flat
    status, _, answer = get_range(herald, key)
    assert status == 200
    assert list(answer["entries"][0]["fields"]) == ["zeta", "alpha", "mid"], answer


def test_append_maxlen_trims_approximately(herald, redis_server):
    key = unique("capped")
    writer = KeepAliveWriter(herald, key)
    try:
        for i in range(250):
            writer.add({"n": str(i)}, "?maxlen=10")
    finally:
        writer.close()
    length = int(redis_server.cli("XLEN", key))
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): never below 10, and far
    # below the 250 appended.
    assert 10 <= length <= 150, f"XLEN {length} after 250 appends with maxlen=10"
    ids = range_ids(herald, key, count=10000)
    assert len(ids) == length


@pytest.mark.parametrize("query", ["?maxlen=abc", "?maxlen=-1", "?maxlen=1.5", "?maxlen="])
def test_append_bad_maxlen(herald, redis_server, query):
    key = unique("capped")
    status, _, body = http("POST", f"{herald.base_url}/streams/{key}{query}", b"x")
    assert_json_error(status, body, 400, "bad_request", f"POST /streams/{key}{query}")
    assert redis_server.cli("EXISTS", key).strip() == "0"


@pytest.mark.parametrize("body", ["[1,2]", "{}", '"text"', "42", "null", "{not json", ""])
def test_append_json_body_must_be_an_object(herald, redis_server, body):
    key = unique("orders")
    status, _, answer = http("POST", f"{herald.base_url}/streams/{key}", body,
                             {"Content-Type": "application/json"})
    assert_json_error(status, answer, 400, "bad_request", f"JSON body {body!r}")
    assert redis_server.cli("EXISTS", key).strip() == "0"


def test_wrong_key_type_is_409(herald, redis_server):
    key = unique("alist")
    redis_server.cli("RPUSH", key, "x")
    status, _, body = http("POST", f"{herald.base_url}/streams/{key}", b"data")
    assert_json_error(status, body, 409, "wrong_type", "XADD onto a list")
    status, _, body = http("POST", f"{herald.base_url}/streams/{key}", '{"a":"b"}',
                           {"Content-Type": "application/json"})
    assert_json_error(status, body, 409, "wrong_type", "XADD (JSON) onto a list")
    status, _, body = http("GET", f"{herald.base_url}/streams/{key}")
    assert_json_error(status, body, 409, "wrong_type", "XRANGE on a list")
    assert redis_server.cli("LRANGE", key, 0, -1).split() == ["x"]


# --------------------------------------------------------------------------- GET /streams

def test_range_by_id_with_count_and_exclusive_from(herald):
    key = unique("orders")
    writer = KeepAliveWriter(herald, key)
    try:
        ids = [writer.add({"n": str(i)}) for i in range(120)]
    finally:
        writer.close()

    status, _, answer = get_range(herald, key, count=3)
    assert status == 200
    assert answer["entries"] == [{"type": "entry", "stream": key, "id": ids[i],
                                  "fields": {"n": str(i)}} for i in range(3)]
    # Default count is 100, oldest first.
    assert range_ids(herald, key) == ids[:100]
    assert range_ids(herald, key, count=10000) == ids
    assert range_ids(herald, key, **{"from": "0"}, count=500) == ids
    # `from` as an id is exclusive: the entries after it (a resume / the next page).
    assert range_ids(herald, key, **{"from": ids[4]}, count=3) == ids[5:8]
    assert range_ids(herald, key, **{"from": ids[99]}) == ids[100:]
    assert range_ids(herald, key, **{"from": ids[-1]}) == []
    # `to` as an id is inclusive.
    assert range_ids(herald, key, to=ids[6]) == ids[:7]
    assert range_ids(herald, key, **{"from": ids[2], "to": ids[6]}) == ids[3:7]
    assert range_ids(herald, key, **{"from": ids[6], "to": ids[2]}) == []
    # A stream that does not exist is empty, not an error.
    assert range_ids(herald, unique("nothing")) == []


def test_range_by_unix_ms_and_iso_time_on_known_ids(herald, redis_server):
    """Entries with chosen ids (their ms part is the time) make the bounds exact."""
    key = unique("timed")
    t = 1732460000000  # 2024-11-24T14:53:20.000Z
    chosen = [f"{t - 1}-0", f"{t}-0", f"{t}-1", f"{t + 999}-0", f"{t + 1000}-0", f"{t + 86_400_000}-0"]
    for entry_id in chosen:
        redis_server.cli("XADD", key, entry_id, "id", entry_id)

    assert iso(t) == "2024-11-24T14:53:20.000Z"
    # from: digits are Unix ms, inclusive of the whole millisecond.
    assert range_ids(herald, key, **{"from": str(t)}) == chosen[1:]
    assert range_ids(herald, key, **{"from": str(t + 1)}) == chosen[3:]
    # from: ISO-8601, with or without fraction, in UTC or with an offset.
    assert range_ids(herald, key, **{"from": "2024-11-24T14:53:20Z"}) == chosen[1:]
    assert range_ids(herald, key, **{"from": iso(t)}) == chosen[1:]
    assert range_ids(herald, key, **{"from": iso(t + 999)}) == chosen[3:]
    assert range_ids(herald, key, **{"from": iso(t, offset_hours=2)}) == chosen[1:]
    assert range_ids(herald, key, **{"from": "2024-11-24T15:53:20+01:00"}) == chosen[1:]
    assert range_ids(herald, key, **{"from": "2024-11-25T14:53:20Z"}) == chosen[5:]
    # to: ms and ISO are inclusive of the whole millisecond.
    assert range_ids(herald, key, to=str(t)) == chosen[:3]
    assert range_ids(herald, key, to=str(t - 1)) == chosen[:1]
    assert range_ids(herald, key, to=iso(t + 999)) == chosen[:4]
    assert range_ids(herald, key, **{"from": iso(t), "to": str(t + 1000)}) == chosen[1:5]
    assert range_ids(herald, key, **{"from": str(t), "to": iso(t + 999)}, count=2) == chosen[1:3]
    # Mixed: from a time, to an id.
    assert range_ids(herald, key, **{"from": str(t), "to": chosen[3]}) == chosen[1:4]


def test_range_by_time_around_real_entries(herald):
    """Entries appended now, in two batches a few ms apart; the bounds come from their ids."""
    key = unique("clock")
    writer = KeepAliveWriter(herald, key)
    try:
        before = [writer.add({"batch": "a", "n": str(i)}) for i in range(5)]
        last_ms = id_key(before[-1])[0]
        wait_until(lambda: time.time() * 1000 > last_ms + 5, timeout=2, interval=0.002,
                   what="the clock to move on")
        after = [writer.add({"batch": "b", "n": str(i)}) for i in range(5)]
    finally:
        writer.close()
    boundary = last_ms + 1
    assert id_key(after[0])[0] >= boundary, (before, after)
    # The server clock is this machine's: the entries are stamped around now.
    assert abs(id_key(after[-1])[0] - time.time() * 1000) < 60_000

    assert range_ids(herald, key, **{"from": str(boundary)}) == after
    assert range_ids(herald, key, **{"from": iso(boundary)}) == after
    assert range_ids(herald, key, to=str(last_ms)) == before
    assert range_ids(herald, key, to=iso(last_ms)) == before
    first_ms = id_key(before[0])[0]
    assert range_ids(herald, key, **{"from": iso(first_ms), "to": iso(id_key(after[-1])[0])}) == before + after
    assert range_ids(herald, key, **{"from": str(id_key(after[-1])[0] + 1)}) == []


@pytest.mark.parametrize("param,value,code", [
    ("from", "abc", "bad_id"),
    ("from", "12-x", "bad_id"),
    ("from", "1-2-3", "bad_id"),
    ("from", "$", "bad_id"),
    ("from", "2024-13-45T99:00:00Z", "bad_id"),
    ("from", "yesterday", "bad_id"),
    ("from", "2024-02-30T00:00:00Z", "bad_id"),
    ("to", "nope", "bad_id"),
    ("to", "5-", "bad_id"),
    ("to", "2024-11-24T25:61:00Z", "bad_id"),
    ("count", "0", "bad_request"),
    ("count", "10001", "bad_request"),
    ("count", "-5", "bad_request"),
    ("count", "ten", "bad_request"),
])
def test_range_bad_inputs(herald, param, value, code):
    key = unique("orders")
    xadd(herald, key, {"a": "b"})
    url = f"{herald.base_url}/streams/{key}?{urllib.parse.urlencode({param: value})}"
    status, _, body = http("GET", url)
    assert_json_error(status, body, 400, code, f"GET {url}")


# --------------------------------------------------------------------------- WebSocket: replay + tail

def test_subscribe_replays_history_then_tails(herald):
    key = unique("orders")
    ids = [xadd(herald, key, {"n": str(i)}) for i in range(3)]
    ws = ws_connect(stream_url(herald, [key], **{"from": "0"}))
    try:
        got = recv_entries(ws, 3)
        assert got == [{"type": "entry", "stream": key, "id": ids[i], "fields": {"n": str(i)}}
                       for i in range(3)]
        new = xadd(herald, key, raw=b"live one")
        assert recv_json(ws) == {"type": "entry", "stream": key, "id": new,
                                 "fields": {"data": "live one"}}
        assert_silent(ws, 0.3)
    finally:
        ws.close()


def test_subscribe_from_id_time_and_last_event_id(herald, redis_server):
    key = unique("orders")
    t = 1732460000000
    chosen = [f"{t - 5}-0", f"{t}-0", f"{t}-1", f"{t + 10}-0"]
    for entry_id in chosen:
        redis_server.cli("XADD", key, entry_id, "id", entry_id)

    def first_ids(url, n, headers=None):
        ws = ws_connect(url, additional_headers=headers) if headers else ws_connect(url)
        try:
            got = [m["id"] for m in recv_entries(ws, n)]
            assert_silent(ws, 0.3)
            return got
        finally:
            ws.close()

    assert first_ids(stream_url(herald, [key], **{"from": chosen[1]}), 2) == chosen[2:]
    assert first_ids(stream_url(herald, [key], **{"from": str(t)}), 3) == chosen[1:]
    assert first_ids(stream_url(herald, [key], **{"from": iso(t + 1)}), 1) == chosen[3:]
    # Last-Event-ID works like from (an SSE-style resume).
    assert first_ids(stream_url(herald, [key]), 1, {"Last-Event-ID": chosen[2]}) == chosen[3:]


def test_subscribe_several_streams(herald):
    a, b = unique("sa"), unique("sb")
    ida = xadd(herald, a, {"s": "a"})
    idb = xadd(herald, b, {"s": "b"})
    ws = ws_connect(stream_url(herald, [a, b], **{"from": "0"}))
    try:
        got = recv_entries(ws, 2)
        assert sorted((m["stream"], m["id"]) for m in got) == sorted([(a, ida), (b, idb)])
        ida2 = xadd(herald, a, {"s": "a2"})
        idb2 = xadd(herald, b, {"s": "b2"})
        got = recv_entries(ws, 2)
        assert sorted((m["stream"], m["id"], m["fields"]["s"]) for m in got) == sorted(
            [(a, ida2, "a2"), (b, idb2, "b2")])
    finally:
        ws.close()


def test_subscribe_default_is_only_new_entries(herald):
    key = unique("orders")
    for i in range(3):
        xadd(herald, key, {"old": str(i)})
    ws = ws_connect(stream_url(herald, [key]))
    try:
        # No confirmation is sent for a stream: append probes until the tail delivers one.
        probes = []

        def live():
            probes.append(xadd(herald, key, {"probe": str(len(probes))}))
            try:
                return json.loads(ws.recv(timeout=0.3))
            except TimeoutError:
                return None

        first = wait_until(live, timeout=10, interval=0, what="the live tail to deliver a probe")
        assert first["type"] == "entry" and "probe" in first["fields"], first
        assert first["id"] in probes
        # Then every later probe, in order; never the history.
        rest = recv_entries(ws, 10, timeout=5, until_id=probes[-1]) if first["id"] != probes[-1] else []
        seen = [first["id"]] + [m["id"] for m in rest]
        assert seen == probes[probes.index(first["id"]):]
        assert_silent(ws, 0.3)
    finally:
        ws.close()


def test_replay_and_tail_seam_no_gap_no_duplicate(herald):
    key = unique("seam")
    writer = BackgroundWriter(herald, key, total=300, seconds=3.0)
    writer.start()
    wait_until(lambda: len(writer.ids) >= 100 or writer.done.is_set(), timeout=10,
               what="the writer to append 100 entries")
    assert not writer.done.is_set(), "the writer finished before the subscriber joined mid-flow"
    ws = ws_connect(stream_url(herald, [key], **{"from": "0"}))
    try:
        joined_at = len(writer.ids)
        writer.finish()
        got = recv_entries(ws, 300, timeout=15, until_id=writer.ids[-1])
        seen = [m["id"] for m in got]
        assert_exactly_once_in_order(seen, writer.ids, f"subscriber joined at entry {joined_at}")
        assert [m["fields"]["n"] for m in got] == [str(i) for i in range(300)]
        assert_silent(ws, 0.3)
    finally:
        ws.close()
    assert joined_at < 300


def test_resume_after_drop_mid_flow_misses_nothing(herald):
    key = unique("resume")
    writer = BackgroundWriter(herald, key, total=300, seconds=3.0)
    writer.start()
    wait_until(lambda: len(writer.ids) >= 20, timeout=10, what="the writer to start")
    first = RawWebSocket(herald.port, "/subscribe?" + urllib.parse.urlencode(
        {"stream": key, "from": "0"}))
    try:
        before = raw_entries(first, lambda got: len(got) >= 100)
    finally:
        first.close()  # abrupt: no close frame, entries may be in flight
    dropped_at = len(writer.ids)
    last_seen = before[-1]["id"]
    # The writer keeps appending while the client is away.
    wait_until(lambda: len(writer.ids) >= dropped_at + 30 or writer.done.is_set(), timeout=10,
               what="more entries to be appended while the client is away")
    assert not writer.done.is_set(), "the writer finished before the client came back"
    second = ws_connect(stream_url(herald, [key], **{"from": last_seen}))
    try:
        writer.finish()
        after = recv_entries(second, 300, timeout=15, until_id=writer.ids[-1])
        assert_silent(second, 0.3)
    finally:
        second.close()
    seen = [m["id"] for m in before] + [m["id"] for m in after]
    assert_exactly_once_in_order(seen, writer.ids, f"dropped after {last_seen}")
    assert after[0]["id"] == writer.ids[writer.ids.index(last_seen) + 1]


def test_resume_after_trim_reports_gap(herald, redis_server):
    key = unique("trimmed")
    ids = [xadd(herald, key, {"n": str(i)}) for i in range(5)]
    assert redis_server.cli("XTRIM", key, "MAXLEN", "2").strip() == "3"

    ws = ws_connect(stream_url(herald, [key], **{"from": ids[0]}))
    try:
        gap = recv_json(ws)
        assert gap.get("type") == "gap", f"expected a gap notice first, got {gap}"
        assert {k: gap.get(k) for k in ("stream", "after", "earliest")} == {
            "stream": key, "after": ids[0], "earliest": ids[3]}, gap
        assert isinstance(gap.get("message"), str) and gap["message"], gap
        got = recv_entries(ws, 2)
        assert [m["id"] for m in got] == ids[3:]
        # Then live, as usual.
        new = xadd(herald, key, {"n": "5"})
        assert recv_json(ws)["id"] == new
        assert_silent(ws, 0.3)
    finally:
        ws.close()

    # Resuming from a kept id is no gap: everything after it is still there.
    ws = ws_connect(stream_url(herald, [key], **{"from": ids[3]}))
    try:
        got = recv_entries(ws, 2)
        assert [m["id"] for m in got] == [ids[4], new]
        assert_silent(ws, 0.3)
    finally:
        ws.close()


def test_resume_after_xdel_reports_gap(herald, redis_server):
    key = unique("deleted")
    ids = [xadd(herald, key, {"n": str(i)}) for i in range(5)]
    assert redis_server.cli("XDEL", key, ids[2]).strip() == "1"
    ws = ws_connect(stream_url(herald, [key], **{"from": ids[1]}))
    try:
        gap = recv_json(ws)
        assert gap.get("type") == "gap" and gap.get("stream") == key and gap.get("after") == ids[1], gap
        got = recv_entries(ws, 2)
        assert [m["id"] for m in got] == ids[3:]
    finally:
        ws.close()


@pytest.mark.parametrize("query", [
    "stream=s&from=garbage",
    "stream=s&from=12-x",
    "stream=s&from=2024-02-30T00:00:00Z",
])
def test_subscribe_bad_from_is_400_bad_id(herald, query):
    answer = handshake_answer(herald.port, "/subscribe?" + query)
    assert_json_error(answer.status, answer.body, 400, "bad_id", query)


@pytest.mark.parametrize("query", ["stream=", "stream=s&format=xml"])
def test_subscribe_bad_stream_options_are_400(herald, query):
    answer = handshake_answer(herald.port, "/subscribe?" + query)
    assert_json_error(answer.status, answer.body, 400, "bad_request", query)


def test_subscribe_to_a_key_of_another_type(herald, redis_server):
    key = unique("notastream")
    redis_server.cli("SET", key, "plain")
    for query in ({"from": "0"}, {}):
        ws = ws_connect(stream_url(herald, [key], **query))
        try:
            msg = recv_json(ws)
            assert msg.get("type") == "error" and msg.get("code") == "wrong_type", msg
            assert msg.get("stream") == key and msg.get("message"), msg
            # The connection stays open and usable.
            ws.send(json.dumps({"op": "ping", "id": 1}))
            assert recv_json(ws) == {"type": "pong", "id": 1}
        finally:
            ws.close()


# --------------------------------------------------------------------------- one XREAD link per loop

N_TAILS = 200
LOOPS = 2


def test_200_tailing_clients_share_one_xread_link_per_loop(start_redis, start_herald):
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=LOOPS)
    prefix = f"tail{random.randrange(10**6)}"
    streams = [f"{prefix}-{i}" for i in range(N_TAILS)]

    async def scenario():
        async def open_client(stream):
            return await async_connect(
                f"ws://127.0.0.1:{herald.port}/subscribe?stream={stream}&from=0",
                open_timeout=30, ping_interval=None, compression=None, max_size=None)

        async def next_message(ws, timeout):
            try:
                return json.loads(await asyncio.wait_for(ws.recv(), timeout))
            except asyncio.TimeoutError:
                return None

        clients = []
        try:
            for start in range(0, N_TAILS, 50):
                clients += await asyncio.gather(*(open_client(s) for s in streams[start:start + 50]))

            # Per loop: one command link, one subscriber link, one tail link (+ redis-cli).
            limit = LOOPS * 3 + 2 + 1
            count = connected_clients(redis)
            assert count <= limit, f"{count} Redis connections for {N_TAILS} tailing clients"

            # The tail links are blocked in XREAD: at most one per loop.
            def blocked_xreads():
                return sum(1 for line in redis.cli("CLIENT", "LIST").splitlines()
                           if " flags=b " in f" {line} " and " cmd=xread " in f" {line} ")
            wait_until(lambda: 1 <= blocked_xreads() <= LOOPS, timeout=10,
                       what="blocked XREAD links (at most one per loop)")

            rng = random.Random(11)
            for round_ in range(2):
                sample = rng.sample(range(N_TAILS), 40)
                sent = {}
                for i in sample:
                    status, _, answer = http_json(
                        "POST", f"{herald.base_url}/streams/{streams[i]}",
                        json.dumps({"for": str(i), "round": str(round_)}),
                        {"Content-Type": "application/json"})
                    assert status == 200, answer
                    sent[i] = answer["id"]
                got = await asyncio.gather(*(next_message(clients[i], 10) for i in sample))
                for i, msg in zip(sample, got):
                    assert msg == {"type": "entry", "stream": streams[i], "id": sent[i],
                                   "fields": {"for": str(i), "round": str(round_)}}, (i, msg)
                stray = await asyncio.gather(*(next_message(ws, 0.3) for ws in clients))
                stray = [(streams[i], m) for i, m in enumerate(stray) if m is not None]
                assert stray == [], f"unexpected deliveries: {stray[:5]}"
            count = connected_clients(redis)
            assert count <= limit, f"{count} Redis connections after appends"
        finally:
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), 90))
    assert herald.proc.poll() is None
