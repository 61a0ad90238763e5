#!/usr/bin/env python3
"""`make chaos`: real processes, real faults, and a count of every message.

Starts (scripts/chaos/topology.py) a Redis primary with one replica, three sentinels and two
Heralds (HERALD_BIN, default .build/debug/herald) on loopback, then runs clients of every kind
against them for CHAOS_SECONDS (default 120) while faults are injected on a schedule:

  primary_kill    SIGKILL of the Redis primary: with a Herald that knows sentinels
                  (`herald --help` mentions them) the sentinels fail over and Herald follows
                  (redis+sentinel:// URL); otherwise Herald talks to the primary directly and the
                  primary is restarted on the same port (its AOF, fsynced on every write, keeps
                  what it acknowledged);
  primary_pause   SIGSTOP of the primary for CHAOS_PAUSE s (default 6.5: longer than Herald's 5 s
                  link reply timeout), then SIGCONT;
  herald_kill     SIGKILL of one Herald, restarted a second later (its clients go to the other);
  client_cut      every WebSocket client's TCP connection cut in the middle of a frame it sends.

CHAOS_SHORT=1 runs one fault of each kind in about 30 s (`make test` does, Tests/e2e/test_chaos.py).

Clients (one asyncio process; writers are threads with keep-alive HTTP connections): channel and
pattern subscribers, stream readers that resume with from=<last id>, a consumer group of three,
queue workers that ack, and writers of sequence-numbered payloads (publishers, stream and group
appenders, a queue pusher) that record which writes Herald acknowledged. Writers ask for
`replicas=1` when Herald supports it (a probe append: a 200 naming "replicas", else not).

At the end it checks, per kind, and exits 1 on any failure:
  - streams: every acknowledged entry read by every reader, in id order; a repeat only ever as
    the same id;
  - pub/sub: every acknowledged message a subscriber missed falls in a window covered by a gap
    (Herald's `gap` notice, or the subscriber's own reconnect);
  - groups and queues: every acknowledged item processed at least once (redeliveries counted);
  - each Herald's fds and RSS back near its baseline (taken when it was ready, before clients).
It also reports, per fault, the time to the first delivery of an item written after it (p50/p99)
and whether /readyz was red meanwhile. Results: .build/chaos/results.json and results.md.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import platform
import random
import shutil
import signal
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import topology  # noqa: E402
from topology import REPO, log  # noqa: E402

from websockets.asyncio.client import connect  # noqa: E402


def env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


SHORT = os.environ.get("CHAOS_SHORT") not in (None, "", "0")
CLUSTER = os.environ.get("CHAOS_CLUSTER") not in (None, "", "0")
SECONDS = env_float("CHAOS_SECONDS", 30 if SHORT else 120)
PAUSE = env_float("CHAOS_PAUSE", 6.5)
DRAIN = env_float("CHAOS_DRAIN", 40)
FD_MARGIN = int(env_float("CHAOS_FD_MARGIN", 16))
RSS_MARGIN_MIB = env_float("CHAOS_RSS_MARGIN_MIB", 24)
RSS_MARGIN_PCT = env_float("CHAOS_RSS_MARGIN_PCT", 50)
LOOPS = int(env_float("CHAOS_LOOPS", 2))
SEED = int(env_float("CHAOS_SEED", time.time()))
OUT = Path(os.environ.get("CHAOS_OUT") or REPO / ".build" / "chaos")
RUN_DIR = OUT / ("run-cluster" if CLUSTER else "run")  # every process's files and raw.json
RESULTS = "results-cluster" if CLUSTER else "results"
HERALD_BIN = Path(os.environ.get("HERALD_BIN") or REPO / ".build" / "debug" / "herald").resolve()

CHANNELS = ["chaos:c0", "chaos:c1"]
SHARDS = ["chaos:sh0", "chaos:sh1"]  # sharded channels (cluster runs)
PATTERN = "chaos:c*"
STREAM = "chaos:s"
GROUP_STREAM = "chaos:g"
GROUP = "workers"
QUEUE = "chaos:q"
FAULT_KINDS = ["client_cut", "primary_kill", "primary_pause", "herald_kill"]
if CLUSTER:
    FAULT_KINDS.append("slot_migrate")

now = time.monotonic
T0 = now()
T0_WALL = time.time()


def rel(t):
    """A monotonic time as seconds since the writers started (T0 is reset then)."""
    return round(t - T0, 3)


# --------------------------------------------------------------------------- writers

class Writer(threading.Thread):
    """Writes payload 0, 1, 2, ... one at a time over keep-alive HTTP, switching Herald when a
    request fails. Records per seq: when it was sent, and whether Herald acknowledged it."""

    def __init__(self, name, ports, path_for, body_for, rate, acked_if):
        super().__init__(daemon=True, name=name)
        self.label = name
        self.ports = ports
        self.path_for = path_for
        self.body_for = body_for
        self.interval = 1.0 / rate
        self.acked_if = acked_if  # (status, json) -> (acked: bool, extra)
        self.sent = {}  # seq -> monotonic time sent
        self.acked = {}  # seq -> extra (e.g. the entry id)
        self.answered = {}  # seq -> monotonic time its acknowledgement arrived
        self.failed = {}  # seq -> reason
        self.stop = threading.Event()
        self.idx = 0
        self.conn = None

    def request(self, seq):
        port = self.ports[self.idx]
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body, ctype = self.body_for(seq)
        self.conn.request("POST", self.path_for(seq), body=body,
                          headers={"Content-Type": ctype})
        resp = self.conn.getresponse()
        data = resp.read()
        try:
            answer = json.loads(data or b"null")
        except ValueError:
            answer = None
        return resp.status, answer

    def run(self):
        seq = 0
        while not self.stop.is_set():
            started = now()
            self.sent[seq] = started
            try:
                status, answer = self.request(seq)
                ok, extra = self.acked_if(status, answer)
                if ok:
                    self.acked[seq] = extra
                    self.answered[seq] = now()
                else:
                    self.failed[seq] = f"{status} {answer}"
                    if status in (502, 503, 504):
                        self.switch()
            except (OSError, http.client.HTTPException) as exc:
                self.failed[seq] = repr(exc)
                self.switch()
            seq += 1
            self.stop.wait(max(0.0, self.interval - (now() - started)))
        if self.conn:
            self.conn.close()

    def switch(self):
        if self.conn:
            self.conn.close()
        self.conn = None
        self.idx = (self.idx + 1) % len(self.ports)


def json_body(seq):
    return json.dumps({"seq": seq}).encode(), "application/json"


def text_body(seq):
    return str(seq).encode(), "text/plain"


def publish_ack(status, answer):
    return status == 200, (answer or {}).get("receivers") if isinstance(answer, dict) else None


def make_append_ack(replicas):
    def ack(status, answer):
        if status != 200 or not isinstance(answer, dict) or "id" not in answer:
            return False, None
        if replicas and int(answer.get("replicas", 0)) < 1:
            return False, None
        return True, answer["id"]
    return ack


def make_push_ack(replicas):
    def ack(status, answer):
        if status != 200:
            return False, None
        if replicas and (not isinstance(answer, dict) or int(answer.get("replicas", 0)) < 1):
            return False, None
        return True, None
    return ack


# --------------------------------------------------------------------------- WebSocket clients

class Client:
    """A WebSocket client that reconnects (to the other Herald first) whenever it is cut off.

    `log` holds what it received in order: ("m", key, seq, t) deliveries and ("gap", key, t,
    source) markers; `reconnects` counts connections after the first."""

    kind = "client"

    def __init__(self, name, ports, start_idx):
        self.name = name
        self.ports = ports
        self.idx = start_idx
        self.ws = None
        self.log = []
        self.connections = 0
        self.reconnects = 0
        self.errors = []
        self.stopping = False
        self.confirmed_at = None  # first time the subscription was live
        self.cuts = 0

    def query(self):
        raise NotImplementedError

    async def on_open(self, ws):
        pass

    async def on_message(self, ws, msg):
        raise NotImplementedError

    def on_close(self):
        pass

    async def run(self):
        while not self.stopping:
            port = self.ports[self.idx]
            url = f"ws://127.0.0.1:{port}/subscribe?{self.query()}"
            try:
                async with connect(url, open_timeout=3, close_timeout=2, ping_interval=3,
                                   ping_timeout=6, max_size=None) as ws:
                    self.ws = ws
                    self.connections += 1
                    if self.connections > 1:
                        self.reconnects += 1
                    await self.on_open(ws)
                    async for raw in ws:
                        await self.on_message(ws, json.loads(raw))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any loss of the connection: reconnect
                if not self.stopping:
                    self.errors.append((now(), repr(exc)[:200]))
            self.ws = None
            self.on_close()
            if self.stopping:
                break
            self.idx = (self.idx + 1) % len(self.ports)
            await asyncio.sleep(0.1 + random.random() * 0.3)

    def cut_mid_frame(self):
        """Send the head and half the payload of a masked text frame, then reset the TCP
        connection: Herald sees a frame that never ends."""
        ws = self.ws
        if ws is None or ws.transport is None:
            return False
        payload = json.dumps({"op": "ping", "id": "cut" * 20}).encode()
        mask = os.urandom(4)
        head = struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            ws.transport.write(head + masked[: len(masked) // 2])
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:  # RST rather than FIN
                sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_LINGER,
                                struct.pack("ii", 1, 0))
            ws.transport.abort()
        except (OSError, RuntimeError):
            return False
        self.cuts += 1
        return True

    async def close(self):
        self.stopping = True
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception:  # noqa: BLE001
                pass

    def deliveries(self):
        return [e for e in self.log if e[0] == "m"]


class Subscriber(Client):
    """A channel (or pattern) subscriber. Its own reconnects are gaps it knows of: a marker is
    logged for each of its keys when the new subscription is confirmed."""

    def __init__(self, name, ports, start_idx, channel=None, pattern=None, shard=None):
        super().__init__(name, ports, start_idx)
        self.channel = channel or shard
        self.pattern = pattern
        self.kind = "pattern" if pattern else ("shard" if shard else "pubsub")
        self.herald_gaps = 0

    def query(self):
        if self.pattern:
            return f"pattern={self.pattern}"
        return f"{'shard' if self.kind == 'shard' else 'channel'}={self.channel}"

    async def on_message(self, ws, msg):
        t = now()
        typ = msg.get("type")
        if typ in ("message", "pmessage", "smessage"):
            self.log.append(("m", msg["channel"], int(msg["data"]), t))
        elif typ == "subscribed":
            if self.confirmed_at is None:
                self.confirmed_at = t
            else:
                self.log.append(("gap", "*", t, "reconnect"))
        elif typ == "gap":
            self.herald_gaps += 1
            self.log.append(("gap", "*", t, "herald"))
        elif typ == "dropped":
            self.log.append(("gap", "*", t, "dropped"))
        else:
            self.errors.append((t, f"unexpected {msg}"))


class StreamReader(Client):
    """Reads STREAM from the start, and after every reconnect from the last id it received."""

    kind = "stream"

    def __init__(self, name, ports, start_idx):
        super().__init__(name, ports, start_idx)
        self.last_id = None
        self.entries = []  # (id, seq, t) in arrival order

    def query(self):
        return f"stream={STREAM}&from={self.last_id or '0'}"

    async def on_open(self, ws):
        if self.confirmed_at is None:
            self.confirmed_at = now()

    async def on_message(self, ws, msg):
        t = now()
        if msg.get("type") == "entry":
            seq = int(msg["fields"]["seq"])
            self.entries.append((msg["id"], seq, t))
            self.log.append(("m", STREAM, seq, t))
            if self.last_id is None or id_key(msg["id"]) > id_key(self.last_id):
                self.last_id = msg["id"]
        elif msg.get("type") == "gap":
            self.errors.append((t, f"stream gap notice {msg}"))
        else:
            self.errors.append((t, f"unexpected {msg}"))


class GroupConsumer(Client):
    kind = "group"

    def __init__(self, name, ports, start_idx):
        super().__init__(name, ports, start_idx)
        self.entries = []  # (id, seq, t)

    def query(self):
        return f"stream={GROUP_STREAM}&group={GROUP}&consumer={self.name}&from=0"

    async def on_message(self, ws, msg):
        t = now()
        typ = msg.get("type")
        if typ == "entry":
            seq = int(msg["fields"]["seq"])
            self.entries.append((msg["id"], seq, t))
            self.log.append(("m", GROUP_STREAM, seq, t))
            await ws.send(json.dumps({"op": "ack", "stream": GROUP_STREAM, "ids": [msg["id"]]}))
        elif typ in ("acked",):
            pass
        elif typ == "error":
            self.errors.append((t, f"error {msg}"))
        else:
            self.errors.append((t, f"unexpected {msg}"))


class QueueWorker(Client):
    """Pops one item at a time and acks it; an answer that does not come is given up on."""

    kind = "queue"

    def __init__(self, name, ports, start_idx):
        super().__init__(name, ports, start_idx)
        self.items = []  # (seq, t)
        self.pops = 0
        self.pop_sent_at = None

    def query(self):
        return f"queue={QUEUE}"

    async def pop(self, ws):
        self.pops += 1
        self.pop_sent_at = now()
        await ws.send(json.dumps({"op": "pop", "wait": 2, "id": f"pop-{self.pops}"}))

    async def on_open(self, ws):
        await self.pop(ws)

    async def on_message(self, ws, msg):
        t = now()
        typ = msg.get("type")
        if typ == "item":
            seq = int(msg["data"])
            self.items.append((seq, t))
            self.log.append(("m", QUEUE, seq, t))
            await ws.send(json.dumps({"op": "ack", "queue": QUEUE, "tag": msg["tag"],
                                      "id": f"ack-{msg['tag']}"}))
            await self.pop(ws)
        elif typ == "empty":
            await self.pop(ws)
        elif typ == "acked":
            pass
        elif typ == "error":
            if str(msg.get("id", "")).startswith("pop-"):
                await asyncio.sleep(0.2)
                await self.pop(ws)
            elif msg.get("code") != "lease_lost":
                self.errors.append((t, f"error {msg}"))
        else:
            self.errors.append((t, f"unexpected {msg}"))

    async def watchdog(self):
        """A pop unanswered 10 s after its wait ended: drop the connection and start over."""
        while not self.stopping:
            await asyncio.sleep(1)
            ws = self.ws
            if ws is not None and self.pop_sent_at and now() - self.pop_sent_at > 12:
                self.errors.append((now(), "pop unanswered for 12 s: reconnecting"))
                self.pop_sent_at = None
                ws.transport.abort()


def id_key(entry_id):
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


# --------------------------------------------------------------------------- faults, readiness

class ReadyWatch(threading.Thread):
    """Polls every Herald's /readyz every 100 ms: (t, herald name, status; 0 = no answer)."""

    def __init__(self, heralds):
        super().__init__(daemon=True)
        self.heralds = heralds
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for h in self.heralds:
                self.samples.append((now(), h.name, topology.http_status(h.port, "/readyz", 1.0)))
            self.stop.wait(0.1)

    def red_between(self, t0, t1):
        return sorted({name for t, name, status in self.samples if t0 <= t <= t1 and status != 200})


class Chaos:
    def __init__(self, topo, replicas: bool, cluster_faults=None):
        self.topo = topo
        self.replicas = replicas
        self.faults = []  # dicts: kind, t, end, detail
        self.herald_turn = 0
        self.cluster = cluster_faults  # cluster.ClusterFaults in a cluster run

    def schedule(self):
        if SHORT:
            span = SECONDS - 4
            return [(2 + span * i / len(FAULT_KINDS), kind) for i, kind in enumerate(FAULT_KINDS)]
        step = 12.0
        out, t, i = [], 5.0, 0
        while t < SECONDS - 8:
            out.append((t, FAULT_KINDS[i % len(FAULT_KINDS)]))
            t += step + (PAUSE if FAULT_KINDS[i % len(FAULT_KINDS)] == "primary_pause" else 0)
            i += 1
        return out

    async def run(self, t_start, clients):
        for at, kind in self.schedule():
            delay = t_start + at - now()
            if delay > 0:
                await asyncio.sleep(delay)
            fault = {"kind": kind, "t": now(), "detail": ""}
            log(f"fault at {fault['t'] - t_start:5.1f}s: {kind}")
            await getattr(self, kind)(fault, clients)
            fault["end"] = now()
            self.faults.append(fault)

    async def client_cut(self, fault, clients):
        cut = sum(1 for c in clients if c.cut_mid_frame())
        fault["detail"] = f"{cut} connections cut mid-frame"

    async def primary_kill(self, fault, clients):
        if self.cluster:
            return await self.cluster.primary_kill(fault, asyncio.sleep, asyncio.to_thread)
        node = self.topo.master_node()
        node.kill()
        if self.topo.sentinel_mode:
            other = self.topo.other_node(node)
            deadline = now() + 30
            while now() < deadline and self.topo.master_node() is node:
                await asyncio.sleep(0.1)
            promoted = self.topo.master_node()
            fault["detail"] = (f"{node.name} killed; sentinels promoted {promoted.name} after "
                               f"{now() - fault['t']:.1f}s")
            await asyncio.sleep(1)
            await asyncio.to_thread(node.start, other.port)
        else:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(node.start)
            fault["detail"] = f"{node.name} killed, restarted on its port after 1 s"

    async def primary_pause(self, fault, clients):
        if self.cluster:
            return await self.cluster.primary_pause(fault, asyncio.sleep, asyncio.to_thread,
                                                    PAUSE)
        node = self.topo.master_node()
        node.signal(signal.SIGSTOP)
        node.paused = True
        await asyncio.sleep(PAUSE)
        node.signal(signal.SIGCONT)
        node.paused = False
        fault["detail"] = f"{node.name} stopped for {PAUSE:g} s"

    async def slot_migrate(self, fault, clients):
        await self.cluster.slot_migrate(fault, asyncio.sleep, asyncio.to_thread)

    async def herald_kill(self, fault, clients):
        h = self.topo.heralds[self.herald_turn % 2]
        self.herald_turn += 1
        h.kill()
        await asyncio.sleep(1.0)
        h.start()
        await asyncio.to_thread(h.wait_ready, 20, False)
        h.baseline = h.measure()
        fault["detail"] = f"{h.name} killed, restarted after 1 s"


# --------------------------------------------------------------------------- checks

def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def check_pubsub(sub: Subscriber, publishers, t_end):
    """Every acknowledged message the subscriber missed must lie in a window a gap marker
    covers. A publisher switches Herald when a request fails, and a request whose outcome was
    unknown may run in Redis after later ones, so Redis's order is only known between
    acknowledged messages: s ran after r when r was acknowledged before s was sent. A missing
    s is covered when a gap marker lies after every delivery known to have run before s and
    before every delivery known to have run after it."""
    result = {"client": sub.name, "acked": 0, "received": 0, "lost_in_gap": 0,
              "lost_without_gap": [], "lost_unacked": 0, "duplicates": 0, "out_of_order": 0,
              "herald_gaps": sub.herald_gaps, "reconnects": sub.reconnects}
    keys = CHANNELS if sub.pattern else [sub.channel]
    for channel in keys:
        pub = publishers[channel]
        sent, answered = pub.sent, pub.answered
        events = [e for e in sub.log if e[0] == "gap" or e[1] == channel]
        position = {}  # seq -> index in events
        latest_sent = 0.0
        for i, e in enumerate(events):
            if e[0] != "m":
                continue
            seq = e[2]
            if seq in position:
                result["duplicates"] += 1
                continue
            position[seq] = i
            # Delivered after a message that was sent only once this one was acknowledged.
            if seq in answered and answered[seq] < latest_sent:
                result["out_of_order"] += 1
            latest_sent = max(latest_sent, sent.get(seq, 0.0))
        gap_at = [i for i, e in enumerate(events) if e[0] == "gap"]
        delivered = sorted((i, seq) for seq, i in position.items())
        result["received"] += len(delivered)
        # Only what was published once this subscriber was live and before the writers stopped.
        wanted = [s for s, t in sent.items() if t >= sub.confirmed_at and t <= t_end]
        for seq in wanted:
            acked = seq in pub.acked
            if acked:
                result["acked"] += 1
            if seq in position:
                continue
            if not acked:
                result["lost_unacked"] += 1
                continue
            before = max((i for i, r in delivered if r in answered and answered[r] < sent[seq]),
                         default=-1)
            after = min((i for i, r in delivered if sent[r] > answered[seq]),
                        default=len(events))
            if any(before < g < after for g in gap_at):
                result["lost_in_gap"] += 1
            else:
                result["lost_without_gap"].append(seq)
                result.setdefault("lost_context", []).append({
                    "channel": channel, "seq": seq, "sent": rel(sent[seq]),
                    "acked": rel(answered[seq]),
                    "delivered_before": [events[before][2], rel(events[before][3])]
                    if before >= 0 else None,
                    "delivered_after": [events[after][2], rel(events[after][3])]
                    if after < len(events) else None,
                    "gaps": [[rel(events[g][2]), events[g][3]] for g in gap_at]})
    result["ok"] = not result["lost_without_gap"] and not result["duplicates"] \
        and not result["out_of_order"]
    return result


def check_stream(reader: StreamReader, appender: Writer, id_of_seq, must_have_all):
    acked = {seq: eid for seq, eid in appender.acked.items()}
    seen = {}
    dup_same_id = 0
    out_of_order = 0
    last = None
    for eid, seq, _ in reader.entries:
        if eid in seen:
            dup_same_id += 1
            continue
        if last is not None and id_key(eid) <= id_key(last):
            out_of_order += 1
        last = eid
        seen[eid] = seq
        id_of_seq.setdefault(seq, set()).add(eid)
    got = set(seen)
    missing = [seq for seq, eid in acked.items() if eid not in got]
    wrong = [seq for seq, eid in acked.items() if eid in got and seen[eid] != seq]
    read_pct = 100.0 * (len(acked) - len(missing)) / len(acked) if acked else 100.0
    return {"client": reader.name, "acked": len(acked), "read": len(got),
            "read_pct_of_acked": round(read_pct, 3), "missing": missing[:50],
            "missing_count": len(missing), "wrong_payload": wrong[:50],
            "duplicates_same_id": dup_same_id, "out_of_order": out_of_order,
            "reconnects": reader.reconnects,
            "ok": (not missing or not must_have_all) and not wrong and not out_of_order}


def check_processed(name, clients, writer: Writer, durable):
    """Every acknowledged write processed at least once by one of `clients` (when the writes
    were `durable`: else a failover may legitimately lose some, which are reported)."""
    processed = {}
    for c in clients:
        for e in c.deliveries():
            processed[e[2]] = processed.get(e[2], 0) + 1
    acked = set(writer.acked)
    missing = sorted(s for s in acked if s not in processed)
    total = sum(processed.values())
    return {"kind": name, "acked": len(acked), "processed": len(processed),
            "deliveries": total, "redeliveries": total - len(processed),
            "missing": missing[:50], "missing_count": len(missing),
            "unacked_processed": len([s for s in processed if s not in acked]),
            "reconnects": sum(c.reconnects for c in clients),
            "durable": durable, "ok": not missing or not durable}


SHARED_KINDS = ("group", "queue")  # each item goes to one client of the kind


def fault_latencies(faults, clients, writers_of, ready):
    """Per fault: the time from the fault to the first delivery of an item written after it,
    for each subscriber and stream reader (each must see every item), and once per shared kind
    (a consumer group, the queue's workers: any member may get the next item, so one member
    waiting longer says nothing about recovery)."""
    out = []
    for f in faults:
        firsts = []  # (kind, client, delay)
        for c in clients:
            writer_sent = writers_of(c)
            for e in c.deliveries():
                if e[3] < f["t"]:
                    continue
                sent = writer_sent(e[1], e[2])
                if sent is not None and sent >= f["t"]:
                    firsts.append((c.kind, c.name, e[3] - f["t"]))
                    break
        per = [(k, d) for k, _, d in firsts if k not in SHARED_KINDS]
        for k in SHARED_KINDS:
            ds = [d for kk, _, d in firsts if kk == k]
            if ds:
                per.append((k, min(ds)))
        lat = [d for _, d in per]
        recovered = f["t"] + (max(lat) if lat else 0)
        out.append({"kind": f["kind"], "detail": f["detail"], "at_s": rel(f["t"]),
                    "clients_delivered": len(firsts), "clients": len(clients),
                    "latencies_s": [round(d, 3) for d in lat],
                    "p50_s": round(percentile(lat, 50), 3) if lat else None,
                    "p99_s": round(percentile(lat, 99), 3) if lat else None,
                    "by_kind": {k: round(max(d for kk, d in per if kk == k), 3)
                                for k in {k for k, _ in per}},
                    "readyz_red": ready.red_between(f["t"], max(recovered, f["end"]))})
    return out


# --------------------------------------------------------------------------- the run

def probe_replicas(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/streams/chaos:probe?replicas=1&timeout=2000", body=b"x")
        resp = conn.getresponse()
        answer = resp.read()
    finally:
        conn.close()
    if resp.status == 200:
        try:
            return "replicas" in json.loads(answer)
        except ValueError:
            return False
    return False


async def wait_drained(clients, readers, consumers, workers, writers, deadline):
    """Until every acknowledged write reached its readers, or the deadline."""
    s_app, g_app, q_push = writers["stream"], writers["group"], writers["queue"]
    while now() < deadline:
        done = all(c.ws is not None for c in clients)
        ids = set(s_app.acked.values())
        for r in readers:
            done = done and ids <= {e[0] for e in r.entries}
        got_g = {e[1] for c in consumers for e in c.entries}
        done = done and set(g_app.acked) <= got_g
        got_q = {s for w in workers for s, _ in w.items}
        done = done and set(q_push.acked) <= got_q
        if done:
            return True
        await asyncio.sleep(0.5)
    return False


async def run(topo: topology.Topology, replicas: bool):
    ports = [h.port for h in topo.heralds]
    subs = [Subscriber(f"sub-{i}", ports, i % 2, channel=CHANNELS[i % 2]) for i in range(4)]
    psubs = [Subscriber(f"psub-{i}", ports, i % 2, pattern=PATTERN) for i in range(2)]
    ssubs = [Subscriber(f"ssub-{i}", ports, i % 2, shard=SHARDS[i % 2])
             for i in range(4)] if CLUSTER else []
    readers = [StreamReader(f"reader-{i}", ports, i % 2) for i in range(3)]
    consumers = [GroupConsumer(f"consumer-{i}", ports, i % 2) for i in range(3)]
    workers = [QueueWorker(f"worker-{i}", ports, i % 2) for i in range(3)]
    clients = subs + psubs + ssubs + readers + consumers + workers
    tasks = [asyncio.create_task(c.run()) for c in clients]
    tasks += [asyncio.create_task(w.watchdog()) for w in workers]

    # Writers start once every subscriber is live.
    deadline = now() + 20
    while now() < deadline and not all(c.confirmed_at for c in subs + psubs + ssubs + readers):
        await asyncio.sleep(0.05)
    if not all(c.confirmed_at for c in subs + psubs + ssubs + readers):
        raise SystemExit("chaos: clients did not all connect within 20 s")

    rq = "?replicas=1&timeout=2000" if replicas else ""
    publishers = {ch: Writer(f"pub-{ch}", ports, lambda s, ch=ch: f"/publish/{ch}", text_body,
                             40, publish_ack) for ch in CHANNELS}
    if CLUSTER:
        for i, ch in enumerate(SHARDS):
            publishers[ch] = Writer(f"spub-{ch}", ports,
                                    lambda s, ch=ch: f"/publish/{ch}?sharded=true", text_body,
                                    30, publish_ack)
            publishers[ch].idx = i % 2
    writers = {"stream": Writer("append-stream", ports, lambda s: f"/streams/{STREAM}{rq}",
                                json_body, 40, make_append_ack(replicas)),
               "group": Writer("append-group", ports, lambda s: f"/streams/{GROUP_STREAM}{rq}",
                               json_body, 30, make_append_ack(replicas)),
               "queue": Writer("push-queue", ports, lambda s: f"/queues/{QUEUE}{rq}",
                               text_body, 30, make_push_ack(replicas))}
    # The second publisher starts on the other Herald.
    publishers[CHANNELS[1]].idx = 1
    writers["group"].idx = 1
    all_writers = list(publishers.values()) + list(writers.values())

    ready = ReadyWatch(topo.heralds)
    ready.start()
    t_start = now()
    global T0, T0_WALL
    T0 = t_start
    T0_WALL = time.time()
    for w in all_writers:
        w.start()
    cluster_faults = None
    if CLUSTER:
        import cluster
        slots = {name: topo.keyslot(key) for name, key in
                 (("stream", STREAM), ("group", GROUP_STREAM), ("queue", QUEUE),
                  ("shard", SHARDS[0]))}
        cluster_faults = cluster.ClusterFaults(topo, slots)
    chaos = Chaos(topo, replicas, cluster_faults)
    await chaos.run(t_start, clients)
    remaining = t_start + SECONDS - now()
    if remaining > 0:
        await asyncio.sleep(remaining)
    t_end = now()
    for w in all_writers:
        w.stop.set()
    for w in all_writers:
        await asyncio.to_thread(w.join, 15)
    log(f"writers stopped after {t_end - t_start:.1f}s; draining (at most {DRAIN:g}s)")
    drained = await wait_drained(clients, readers, consumers, workers, writers, now() + DRAIN)
    await asyncio.sleep(1.5)  # pub/sub deliveries in flight
    ready.stop.set()
    for c in clients:
        await c.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ checks
    results = {"drained": drained}
    results["pubsub"] = [check_pubsub(s, publishers, t_end) for s in subs]
    results["pattern"] = [check_pubsub(s, publishers, t_end) for s in psubs]
    if ssubs:
        results["shard"] = [check_pubsub(s, publishers, t_end) for s in ssubs]
    id_of_seq = {}
    # Acknowledged writes survive every fault of the run when Herald waited for a replica, or
    # when the one primary is restarted from its fsynced AOF; a failover without replicas=1
    # may lose the last ones (asynchronous replication): reported, not failed.
    durable = replicas or not (topo.sentinel_mode or CLUSTER)
    results["durable"] = durable
    results["stream"] = [check_stream(r, writers["stream"], id_of_seq, durable) for r in readers]
    ambiguous = sorted(s for s, ids in id_of_seq.items() if len(ids) > 1)
    results["stream_same_payload_two_ids"] = ambiguous[:50]
    results["group"] = check_processed("group", consumers, writers["group"], durable)
    results["queue"] = check_processed("queue", workers, writers["queue"], durable)

    sent_of = {STREAM: writers["stream"].sent, GROUP_STREAM: writers["group"].sent,
               QUEUE: writers["queue"].sent}
    for ch in publishers:
        sent_of[ch] = publishers[ch].sent

    def writers_of(client):
        return lambda key, seq: sent_of.get(key, {}).get(seq)

    results["faults"] = fault_latencies(chaos.faults, clients, writers_of, ready)
    results["writes"] = {w.label: {"sent": len(w.sent), "acked": len(w.acked),
                                   "failed": len(w.failed)} for w in all_writers}
    results["client_errors"] = {c.name: c.errors[-5:] for c in clients if c.errors}
    results["duration_s"] = round(t_end - t_start, 1)
    # Everything, for a post-mortem: times are seconds since the writers started.
    raw = {"t0_wall": T0_WALL,  # time.time() when the writers started: to match the logs
           "writers": {w.label: {"sent": {s: rel(t) for s, t in w.sent.items()},
                                 "answered": {s: rel(t) for s, t in w.answered.items()},
                                 "acked": w.acked, "failed": w.failed} for w in all_writers},
           "clients": {c.name: [[e[0], e[1], e[2], rel(e[3])] if e[0] == "m"
                                else [e[0], e[1], rel(e[2]), e[3]] for e in c.log]
                       for c in clients},
           "faults": [{"kind": f["kind"], "t": rel(f["t"]), "end": rel(f["end"])}
                      for f in chaos.faults],
           "readyz": [[rel(t), name, status] for t, name, status in ready.samples]}
    (RUN_DIR / "raw.json").write_text(json.dumps(raw, default=str))
    return results


def measure_end(topo):
    """After the clients left: each Herald's fds and RSS, once its idle links have closed."""
    out = []
    for h in topo.heralds:
        base_fd, base_rss = h.baseline
        deadline = now() + 15
        while True:
            fds, rss = h.measure()
            if fds <= base_fd + FD_MARGIN or now() > deadline:
                break
            time.sleep(0.5)
        rss_limit = base_rss + max(base_rss * RSS_MARGIN_PCT / 100, RSS_MARGIN_MIB * 1024)
        out.append({"herald": h.name, "starts": h.starts, "fds_base": base_fd, "fds_end": fds,
                    "rss_base_mib": round(base_rss / 1024, 1), "rss_end_mib": round(rss / 1024, 1),
                    "ok": fds <= base_fd + FD_MARGIN and rss <= rss_limit})
    return out


def verdicts(results):
    """(kind, ok, summary) rows of the final table."""
    rows = []
    for kind in ("pubsub", "pattern", "shard"):
        if kind not in results:
            continue
        rs = results[kind]
        rows.append((kind, all(r["ok"] for r in rs),
                     f"{len(rs)} subscribers; acked {sum(r['acked'] for r in rs)}, received "
                     f"{sum(r['received'] for r in rs)}, lost inside a gap "
                     f"{sum(r['lost_in_gap'] for r in rs)}, lost with no gap "
                     f"{sum(len(r['lost_without_gap']) for r in rs)}, unacked lost "
                     f"{sum(r['lost_unacked'] for r in rs)}, duplicates "
                     f"{sum(r['duplicates'] for r in rs)}, gap notices "
                     f"{sum(r['herald_gaps'] for r in rs)}, reconnects "
                     f"{sum(r['reconnects'] for r in rs)}"))
    rs = results["stream"]
    ok = all(r["ok"] for r in rs) and not results["stream_same_payload_two_ids"]
    lossy = "" if results["durable"] else \
        " (acknowledged without replicas=1 across failovers: losses reported, not failed)"
    rows.append(("stream", ok,
                 f"{len(rs)} readers; acked {rs[0]['acked']}, read by every reader "
                 f"{min(r['read_pct_of_acked'] for r in rs):g}%, out of order "
                 f"{sum(r['out_of_order'] for r in rs)}, repeats (same id) "
                 f"{sum(r['duplicates_same_id'] for r in rs)}, same payload under two ids "
                 f"{len(results['stream_same_payload_two_ids'])}, reconnects "
                 f"{sum(r['reconnects'] for r in rs)}{lossy}"))
    for kind in ("group", "queue"):
        r = results[kind]
        rows.append((kind, r["ok"],
                     f"acked {r['acked']}, processed {r['acked'] - r['missing_count']} "
                     f"({r['missing_count']} missing), redeliveries {r['redeliveries']}, "
                     f"reconnects {r['reconnects']}{lossy}"))
    # Per fault kind, over every time it was injected and every client that got something
    # written after it: the time to that first delivery, and which Heralds' /readyz went red.
    for kind in FAULT_KINDS:
        fs = [f for f in results["faults"] if f["kind"] == kind]
        if not fs:
            continue
        lat = [d for f in fs for d in f["latencies_s"]]
        reds = [set(f["readyz_red"]) for f in fs]
        red = ", ".join(sorted(set.union(*reds))) or "no"
        if len(fs) > 1 and any(r != reds[0] for r in reds):
            red += " (not every time)"
        details = "; ".join(sorted({f["detail"].split(";")[0] for f in fs}))
        rows.append((f"fault {kind}", True,
                     f"{len(fs)}x: {details}; first delivery after it p50 "
                     f"{fmt_s(percentile(lat, 50))}, p99 {fmt_s(percentile(lat, 99))}; "
                     f"/readyz red: {red}"))
    for h in results["heralds"]:
        rows.append((f"{h['herald']} resources", h["ok"],
                     f"fds {h['fds_base']} -> {h['fds_end']}, RSS {h['rss_base_mib']} -> "
                     f"{h['rss_end_mib']} MiB (baseline taken at its start #{h['starts']})"))
    rows.append(("drain", results["drained"] or not results["durable"],
                 "every acknowledged write reached its readers after the writers stopped"
                 if results["drained"] else f"not everything arrived within {DRAIN:g}s{lossy}"))
    return rows


def fmt_s(v):
    return "-" if v is None else f"{v:.2f}s"


def markdown(results, rows):
    m = results["mode"]
    lines = [f"Mode: **{m['redis']}**, writes acknowledged {m['acks']}; {m['seconds']:g} s, "
             f"{len(results['faults'])} faults; Herald {m['build']}, {m['machine']}.", "",
             "| kind | check | result |", "|---|---|---|"]
    for kind, ok, summary in rows:
        lines.append(f"| {kind} | {'pass' if ok else '**FAIL**'} | {summary} |")
    return "\n".join(lines) + "\n"


def main():
    random.seed(SEED)
    if not HERALD_BIN.exists():
        sys.exit(f"chaos: no Herald binary at {HERALD_BIN}: run `make build` (or set HERALD_BIN)")
    sentinel = not CLUSTER and topology.herald_supports_sentinel(HERALD_BIN)
    workdir = RUN_DIR
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if CLUSTER:
        import cluster
        topo = cluster.ClusterTopology(workdir, HERALD_BIN, loops=LOOPS)
        mode = ("Redis Cluster, 3 masters with a replica each (a master killed and its replica "
                "promoted; a master paused; a live slot migrated)")
    else:
        topo = topology.Topology(workdir, HERALD_BIN, sentinel, loops=LOOPS)
        mode = ("sentinel failover (redis+sentinel://, primary killed and failed over)"
                if sentinel else
                "direct primary (Herald has no sentinel support: primary killed and restarted "
                "on the same port)")
    log(f"mode: {mode}; seed {SEED}; {SECONDS:g} s{' (short)' if SHORT else ''}; "
        f"files in {workdir}")
    try:
        topo.start()
        replicas = probe_replicas(topo.heralds[0].port)
        log("writes ask for replicas=1 (WAIT)" if replicas else
            "writes are acknowledged by the primary alone (Herald has no replicas=N)")
        results = asyncio.run(asyncio.wait_for(run(topo, replicas), SECONDS + DRAIN + 120))
        results["heralds"] = measure_end(topo)
    finally:
        topo.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} " \
              f"{platform.release()}"
    results["mode"] = {"redis": "cluster" if CLUSTER else ("sentinel" if sentinel else "direct"),
                       "description": mode,
                       "acks": "with replicas=1" if replicas else "by the primary (no replicas=N)",
                       "short": SHORT, "seconds": SECONDS, "seed": SEED,
                       "build": HERALD_BIN.parent.name,  # debug or release
                       "machine": machine}
    rows = verdicts(results)
    results["checks"] = [{"kind": k, "ok": ok, "summary": s} for k, ok, s in rows]
    results["ok"] = all(ok for _, ok, _ in rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{RESULTS}.json").write_text(json.dumps(results, indent=2, default=str))
    (OUT / f"{RESULTS}.md").write_text(markdown(results, rows))
    print()
    for kind, ok, summary in rows:
        print(f"{'PASS' if ok else 'FAIL'}  {kind:<22} {summary}")
    print(f"\nchaos: {'PASS' if results['ok'] else 'FAIL'} ({mode}; "
          f"results in {OUT / (RESULTS + '.json')} and {RESULTS}.md)")
    sys.exit(0 if results["ok"] else 1)


if __name__ == "__main__":
    main()
