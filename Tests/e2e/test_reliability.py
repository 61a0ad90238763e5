"""Faults and load (issue 4, items 1, 2 and 6): a Redis outage with 100 pub/sub and 5 stream
subscribers, slow consumers under a flood (drop with a notice, or close 1008) with bounded
memory, and a SIGTERM drain under publishing load.

Every test starts its own redis-server and Herald."""

from __future__ import annotations

import asyncio
import http.client as httpclient
import json
import os
import signal
import socket
import struct
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import (
    RawWebSocket,
    assert_json_error,
    http,
    http_json,
    open_subscriber,
    recv_json,
    unique,
    wait_until,
    ws_accept,
    ws_connect,
    ws_handshake_request,
)


# --------------------------------------------------------------------------- helpers

def rss_bytes(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def metric(server, name) -> float:
    status, _, body = http("GET", server.base_url + "/metrics")
    assert status == 200
    total = 0.0
    found = False
    for line in body.decode().splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"metric {name} missing from /metrics"
    return total


def xadd(server, key, fields):
    status, _, answer = http_json("POST", f"{server.base_url}/streams/{key}", json.dumps(fields),
                                  {"Content-Type": "application/json"})
    assert status == 200, f"POST /streams/{key} answered {status} {answer}"
    return answer["id"]


def ws_ping(ws, ident):
    ws.send(json.dumps({"op": "ping", "id": ident}))


def read_messages(ws, count, timeout, context):
    """`count` JSON messages from a websockets client (fails with what came so far)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"{context}: received {len(got)} of {count} messages: {got[-5:]}")
        try:
            got.append(json.loads(ws.recv(timeout=remaining)))
        except TimeoutError:
            continue
    return got


class RawSlowClient(RawWebSocket):
    """A raw WebSocket client whose socket has a tiny receive buffer, so that once it stops
    reading, Herald's queue for it fills up after a few KiB."""

    def __init__(self, port, path, rcvbuf=4096, timeout=5.0):  # noqa: D107 - no super().__init__
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        request, key = ws_handshake_request(path)
        self.sock.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed during the handshake: {buf!r}"
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        self.handshake = head.decode("latin-1")
        assert self.handshake.startswith("HTTP/1.1 101"), self.handshake
        assert ws_accept(key) in self.handshake, self.handshake
        self.closed = False

    def next_json(self, timeout=5.0):
        _, opcode, payload = self.recv_frame(timeout)
        assert opcode in (0x1, 0x8), f"unexpected opcode {opcode}: {payload[:100]!r}"
        if opcode == 0x8:
            return {"__close__": struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None}
        return json.loads(payload)


def drain_slow(slow: RawSlowClient, channel, published, timeout=15.0):
    """Read what was buffered for a client that stopped reading, until its messages plus the
    counts of its dropped notices account for all `published` ones. Returns (sequence numbers
    of the messages, dropped notices, bytes of message frames), in arrival order."""
    seqs, notices, size = [], [], 0
    deadline = time.monotonic() + timeout
    while len(seqs) + sum(notices) < published:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            _, opcode, frame = slow.recv_frame(remaining)
        except TimeoutError:
            pytest.fail(f"slow client: {len(seqs)} messages and dropped notices {notices} account "
                        f"for {len(seqs) + sum(notices)} of the {published} published")
        assert opcode == 0x1, f"slow client: opcode {opcode} {frame[:100]!r}"
        msg = json.loads(frame)
        if msg.get("type") == "dropped":
            assert set(msg) == {"type", "count"} and isinstance(msg["count"], int) and msg["count"] > 0, msg
            notices.append(msg["count"])
            continue
        assert msg.get("type") == "message" and msg.get("channel") == channel, msg
        seq = int(msg["data"][:6])
        assert msg["data"] == payload(seq), f"slow client: corrupted message {frame[:80]!r}"
        assert not seqs or seq > seqs[-1], f"slow client: {seq} after {seqs[-1]}"
        seqs.append(seq)
        size += len(frame)
    return seqs, notices, size


# --------------------------------------------------------------------------- 1. Redis outage

N_PUBSUB = 100
N_STREAM = 5


def test_redis_outage_fails_fast_then_resubscribes_and_resumes(start_redis, start_herald, tmp_path):
    # Appendonly with fsync always: the stream survives redis-server being SIGKILLed.
    aof = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    redis = start_redis(extra_args=aof)
    server = start_herald(redis_url=redis.url)  # 2 loops
    tag = os.urandom(3).hex()
    channels = [f"out-{tag}-{i}" for i in range(10)]
    pattern = f"outp-{tag}-*"
    shards = [f"outs-{tag}-{i}" for i in range(5)]
    stream = f"outst-{tag}"

    def plan(i):
        """Subscriptions of pub/sub client i: a channel, a pattern for half, a shard for a quarter."""
        return ([channels[i % 10]], [pattern] if i % 2 == 0 else [], [shards[i % 5]] if i % 4 == 0 else [])

    with ThreadPoolExecutor(16) as pool:
        subs = list(pool.map(lambda i: open_subscriber(server, *plan(i)), range(N_PUBSUB)))
    stream_subs = [ws_connect(f"{server.ws_url}/subscribe?" + urllib.parse.urlencode(
        {"stream": stream, "from": "0"})) for _ in range(N_STREAM)]
    ws_pub = ws_connect(f"{server.ws_url}/subscribe")
    everyone = subs + stream_subs + [ws_pub]

    def expected_for(i, round_name):
        chans, pats, shs = plan(i)
        out = [{"type": "message", "channel": c, "data": f"{round_name}-{c}"} for c in chans]
        out += [{"type": "pmessage", "pattern": pattern, "channel": f"outp-{tag}-x",
                 "data": f"{round_name}-pattern"} for _ in pats]
        out += [{"type": "smessage", "channel": s, "data": f"{round_name}-{s}"} for s in shs]
        return out

    def publish_round(round_name):
        for c in channels:
            status, _, a = http_json("POST", f"{server.base_url}/publish/{c}", f"{round_name}-{c}")
            assert status == 200, a
        status, _, a = http_json("POST", f"{server.base_url}/publish/outp-{tag}-x", f"{round_name}-pattern")
        assert status == 200, a
        for s in shards:
            status, _, a = http_json("POST", f"{server.base_url}/publish/{s}?sharded=true", f"{round_name}-{s}")
            assert status == 200, a

    def check_round(round_name):
        for i, ws in enumerate(subs):
            want = expected_for(i, round_name)
            got = read_messages(ws, len(want), 10, f"pub/sub client {i} ({plan(i)}), {round_name}")
            key = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
            assert sorted(got, key=key) == sorted(want, key=key), f"client {i} {plan(i)}: {got}"

    def check_no_extra(clients, label):
        """Each client's next message is the pong to a ping sent now (nothing duplicated)."""
        for i, ws in enumerate(clients):
            ws_ping(ws, f"{label}-{i}")
        for i, ws in enumerate(clients):
            msg = recv_json(ws, 10)
            assert msg == {"type": "pong", "id": f"{label}-{i}"}, f"{label} client {i}: got {msg}"

    written = []
    received = [[] for _ in stream_subs]

    def read_stream_entries(upto):
        for k, ws in enumerate(stream_subs):
            while len(received[k]) < upto:
                msg = recv_json(ws, 10)
                assert msg.get("type") == "entry" and msg.get("stream") == stream, (
                    f"stream client {k}: expected an entry, got {msg}")
                received[k].append(msg["id"])
            assert received[k] == written[:upto], f"stream client {k}: ids differ from the ones written"

    try:
        # Before: everything flows.
        publish_round("before")
        check_round("before")
        for n in range(40):
            written.append(xadd(server, stream, {"n": str(n)}))
        read_stream_entries(40)

        # Redis dies.
        redis.proc.kill()
        redis.proc.wait(5)
        killed_at = time.monotonic()

        # Publishes fail fast with 503 redis_unavailable (the first ones race the link drop),
        # for as long as the outage lasts (2 s: several reconnect attempts fail meanwhile).
        attempt = 0
        while time.monotonic() - killed_at < 2.0:
            started = time.monotonic()
            status, _, data = http("POST", f"{server.base_url}/publish/{channels[attempt % 10]}",
                                   b"lost", timeout=5)
            took = time.monotonic() - started
            assert_json_error(status, data, 503, "redis_unavailable", f"publish #{attempt} during the outage")
            assert took < 1.0, f"publish #{attempt} during the outage took {took:.2f}s"
            attempt += 1
            time.sleep(0.02)
        status, _, data = http("POST", f"{server.base_url}/publish", json.dumps(
            {"messages": [{"channel": channels[1], "message": "lost"}]}), {"Content-Type": "application/json"})
        assert status == 503, f"batch publish during the outage answered {status} {data!r}"
        status, _, data = http("POST", f"{server.base_url}/streams/{stream}", b'{"lost":"1"}',
                               {"Content-Type": "application/json"}, timeout=5)
        assert status == 503, f"XADD during the outage answered {status} {data!r}"
        ws_pub.send(json.dumps({"op": "publish", "channel": channels[0], "message": "lost", "id": "p"}))
        answer = recv_json(ws_pub, 5)
        assert answer.get("type") == "error" and answer.get("code") == "redis_unavailable", answer
        assert answer.get("id") == "p", answer

        def not_ready():
            status, _, body = http_json("GET", server.base_url + "/readyz", timeout=2)
            return status == 503 and body.get("status") == "not_ready"
        wait_until(not_ready, timeout=3, what="/readyz to answer 503 not_ready")
        assert time.monotonic() - killed_at < 5
        status, _, _ = http("GET", server.base_url + "/healthz")
        assert status == 200, "liveness must not depend on Redis"

        # Redis comes back on the same port with its data (AOF).
        restarted = start_redis(port=redis.port, extra_args=aof)
        restarted_at = time.monotonic()
        assert restarted.cli("XLEN", stream).strip() == "40", "the AOF did not keep the stream"
        wait_until(lambda: http("GET", server.base_url + "/readyz", timeout=2)[0] == 200, timeout=10,
                   interval=0.05, what="/readyz 200 after Redis came back")
        # The reconnect delay is capped (5 s + 20 % jitter) whatever the outage length.
        ready_after = time.monotonic() - restarted_at
        print(f"outage: {attempt} publishes refused; ready {ready_after:.2f}s after the restart")
        assert ready_after < 6.5, f"ready {ready_after:.1f}s after Redis came back"

        # Every live subscription is restored, and each subscriber hears of the gap.
        for i, ws in enumerate(subs):
            chans, pats, shs = plan(i)
            want = ([{"type": "gap", "kind": "channel", "channel": c} for c in chans]
                    + [{"type": "gap", "kind": "pattern", "pattern": p} for p in pats]
                    + [{"type": "gap", "kind": "shard", "channel": s} for s in shs])
            got = read_messages(ws, len(want), 15, f"gap notices of client {i}")
            key = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
            assert sorted(got, key=key) == sorted(want, key=key), f"client {i} {plan(i)}: {got}"
        # No Redis-level duplicates: one subscription per loop and topic.
        numsub = restarted.cli("PUBSUB", "NUMSUB", *channels).split()
        assert all(int(n) <= 2 for n in numsub[1::2]), f"PUBSUB NUMSUB after restore: {numsub}"

        # After recovery, every subscriber receives what is published, once.
        publish_round("after")
        check_round("after")
        for n in range(40, 80):
            written.append(xadd(server, stream, {"n": str(n)}))
        # Stream subscribers got every entry exactly once, across the outage, in order.
        read_stream_entries(80)

        # Nobody was disconnected: every socket still answers.
        check_no_extra(subs + stream_subs + [ws_pub], "alive")
    finally:
        for ws in everyone:
            ws.close()


# --------------------------------------------------------------------------- 2. slow consumers

FLOOD = 5000
PAYLOAD = 1024
HEALTHY = 100
RSS_BOUND = 64 << 20


def payload(seq):
    head = f"{seq:06d}:"
    return head + "x" * (PAYLOAD - len(head))


class HealthyClients:
    """100 asyncio websockets subscribers on a background event loop; each records the
    sequence numbers it receives (and whether each message was exactly as published)."""

    def __init__(self, url, n, channel):
        self.url, self.n, self.channel = url, n, channel
        self.counts = [0] * n
        self.bad = []
        self.order_errors = []
        self.last = [-1] * n
        self.ready = threading.Event()
        self.error = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop_event = None

    def start(self):
        self.thread.start()
        assert self.ready.wait(60), "healthy clients did not connect"
        if self.error:
            raise self.error

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.ready.set()

    async def _main(self):
        from websockets.asyncio.client import connect
        self.stop_event = asyncio.Event()
        clients = []
        for start in range(0, self.n, 25):
            clients += await asyncio.gather(*(
                connect(self.url, open_timeout=30, ping_interval=None, max_size=None,
                        compression=None, max_queue=None)
                for _ in range(start, min(self.n, start + 25))))
        for ws in clients:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first == {"type": "subscribed", "kind": "channel", "names": [self.channel]}, first
        self.ready.set()
        readers = [asyncio.create_task(self._read(i, ws)) for i, ws in enumerate(clients)]
        await self.stop_event.wait()
        for t in readers:
            t.cancel()
        for ws in clients:
            await ws.close()

    async def _read(self, i, ws):
        prefix = len('{"type":"message","channel":"') + len(self.channel) + len('","data":"')
        while True:
            text = await ws.recv()
            msg = json.loads(text)
            if msg.get("type") != "message" or msg.get("channel") != self.channel:
                self.bad.append((i, text[:200]))
                continue
            data = msg["data"]
            seq = int(data[:6])
            if data != payload(seq):
                self.bad.append((i, text[:prefix + 20]))
            if seq != self.last[i] + 1:
                self.order_errors.append((i, self.last[i], seq))
            self.last[i] = seq
            self.counts[i] += 1

    def stop(self):
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)


def publish_batch(conn, channel, first, count):
    body = json.dumps({"messages": [{"channel": channel, "message": payload(s)}
                                    for s in range(first, first + count)]})
    conn.request("POST", "/publish", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    assert resp.status == 200, f"batch publish answered {resp.status} {data[:300]!r}"
    results = json.loads(data)["results"]
    assert len(results) == count and all("receivers" in r for r in results), results[:3]


KERNEL_ALLOWANCE = 1 << 20


def test_slow_consumer_buffering_is_bounded_by_max_outbound(start_redis, start_herald):
    """--max-outbound 64k: a client that keeps up for a while, then stalls (8 KiB receive
    buffer), should cost Herald about 64 KiB plus a modest kernel send buffer, not megabytes.
    What it gets once it reads again is what was buffered for it (the rest was dropped)."""
    redis = start_redis()
    server = start_herald("--max-outbound", "64k", redis_url=redis.url)
    ch = unique("flood-bound")
    slow = RawSlowClient(server.port, f"/subscribe?channel={ch}")
    conn = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        assert slow.next_json() == {"type": "subscribed", "kind": "channel", "names": [ch]}
        # A healthy phase: it reads every message as it comes.
        healthy_phase = 1000
        for first in range(0, healthy_phase, 25):
            publish_batch(conn, ch, first, 25)
            for seq in range(first, first + 25):
                assert slow.next_json() == {"type": "message", "channel": ch, "data": payload(seq)}
        # Then it stalls while the flood goes on.
        for first in range(healthy_phase, healthy_phase + FLOOD, 25):
            publish_batch(conn, ch, first, 25)
        seqs, notices, buffered = drain_slow(slow, ch, FLOOD)
        assert notices and len(seqs) + sum(notices) == FLOOD, (len(seqs), notices)
        print(f"stalled client: {len(seqs)} messages ({buffered / 2**20:.2f} MiB) were buffered for it, "
              f"dropped {notices}")
        assert buffered <= (64 << 10) + KERNEL_ALLOWANCE, (
            f"a client that stalled still had {len(seqs)} messages ({buffered / 2**20:.2f} MiB) "
            f"buffered for it with --max-outbound 64k (allowance: 64 KiB + "
            f"{KERNEL_ALLOWANCE >> 20} MiB of kernel buffers); Herald's socket send buffer is "
            f"presumably left to autotune up to net.ipv4.tcp_wmem's max")
    finally:
        conn.close()
        slow.close()


def test_slow_consumer_is_dropped_with_notice_healthy_ones_get_everything(start_redis, start_herald):
    redis = start_redis()
    server = start_herald("--max-outbound", "64k", redis_url=redis.url)
    ch = unique("flood")
    slow = RawSlowClient(server.port, f"/subscribe?channel={ch}")
    healthy = HealthyClients(f"{server.ws_url}/subscribe?channel={ch}", HEALTHY, ch)
    conn = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        assert slow.next_json() == {"type": "subscribed", "kind": "channel", "names": [ch]}
        healthy.start()
        # From here on the slow client reads nothing. Herald's RSS is sampled every 10 ms.
        rss_before = rss_bytes(server.proc.pid)
        rss_samples = [rss_before]
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.01):
                try:
                    rss_samples.append(rss_bytes(server.proc.pid))
                except OSError:
                    return
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        batch = 25
        started = time.monotonic()
        for first in range(0, FLOOD, batch):
            # Healthy consumers keep up: at most two batches in flight for any of them (the
            # slow one is never waited for).
            target = first - batch
            if target > 0:
                deadline = time.monotonic() + 20
                while min(healthy.counts) < target:
                    assert time.monotonic() < deadline, (
                        f"healthy clients stalled: min {min(healthy.counts)} of {target}, "
                        f"order errors {healthy.order_errors[:5]}, bad {healthy.bad[:3]}")
                    time.sleep(0.002)
            publish_batch(conn, ch, first, batch)
        wait_until(lambda: min(healthy.counts) == FLOOD or healthy.bad or healthy.order_errors,
                   timeout=30, interval=0.01, what="every healthy client to receive the flood")
        flood_seconds = time.monotonic() - started
        sampling.set()
        sampler.join(2)
        rss_peak = max(rss_samples)

        assert not healthy.bad, f"healthy clients got unexpected frames: {healthy.bad[:5]}"
        assert not healthy.order_errors, f"out of order / missing (client, last, got): {healthy.order_errors[:5]}"
        assert healthy.counts == [FLOOD] * HEALTHY, f"healthy counts {sorted(set(healthy.counts))}"
        growth = rss_peak - rss_before
        assert growth < RSS_BOUND, (
            f"Herald's RSS grew by {growth / 2**20:.1f} MiB during the flood "
            f"({rss_before / 2**20:.1f} -> {rss_peak / 2**20:.1f} MiB), bound {RSS_BOUND >> 20} MiB")
        assert metric(server, "herald_messages_dropped_total") > 0

        # The slow client finally reads: an in-order subset, and dropped notices (sent each time
        # its queue drained after a drop) that account for everything it missed.
        seqs, notices, _ = drain_slow(slow, ch, FLOOD)
        assert notices, f"no dropped notice; the slow client got {len(seqs)} of {FLOOD}"
        assert len(seqs) + sum(notices) == FLOOD, (
            f"slow client got {len(seqs)} messages and notices of {notices} dropped; "
            f"{FLOOD} were published")
        # It is a normal subscriber again (and nothing else was pending for it).
        publish_batch(conn, ch, FLOOD, 1)
        assert slow.next_json(5) == {"type": "message", "channel": ch, "data": payload(FLOOD)}
        print(f"flood of {FLOOD} x {PAYLOAD} B to {HEALTHY}+1 clients in {flood_seconds:.1f}s; "
              f"RSS {rss_before / 2**20:.1f} -> {rss_peak / 2**20:.1f} MiB; slow client got "
              f"{len(seqs)}, dropped {notices}")
    finally:
        healthy.stop()
        conn.close()
        slow.close()


def test_slow_consumer_close_policy_closes_with_1008(start_redis, start_herald):
    redis = start_redis()
    server = start_herald("--max-outbound", "64k", "--slow-consumer", "close", redis_url=redis.url)
    ch = unique("flood-close")
    slow = RawSlowClient(server.port, f"/subscribe?channel={ch}")
    healthy = open_subscriber(server, channels=[ch])
    conn = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        assert slow.next_json() == {"type": "subscribed", "kind": "channel", "names": [ch]}
        published = 0
        healthy_seen = 0
        # Publish until Herald gives up on the slow client (it counts the delivery it refused).
        while metric(server, "herald_messages_dropped_total") == 0:
            assert published < FLOOD, "the slow client was never closed"
            publish_batch(conn, ch, published, 50)
            published += 50
            # The healthy one keeps reading.
            for msg in read_messages(healthy, 50, 10, "healthy client"):
                assert msg == {"type": "message", "channel": ch, "data": payload(healthy_seen)}, msg
                healthy_seen += 1
        # Drain the slow socket now: in-order messages, then a close frame 1008.
        seqs = []
        while True:
            msg = slow.next_json(10)
            if "__close__" in msg:
                code = msg["__close__"]
                break
            assert msg.get("type") == "message", msg
            seqs.append(int(msg["data"][:6]))
        assert code == 1008, f"slow client closed with {code}, expected 1008"
        assert seqs == list(range(len(seqs))), "the slow client's messages are not an in-order prefix"
        assert len(seqs) < published
        slow.send_frame(0x8, struct.pack("!H", 1000), mask=True)
        assert slow.wait_eof(5), "Herald did not close the TCP connection after the close handshake"
        # The healthy subscriber is untouched.
        publish_batch(conn, ch, published, 1)
        for msg in read_messages(healthy, 1, 5, "healthy client after the close"):
            assert msg == {"type": "message", "channel": ch, "data": payload(published)}, msg
    finally:
        healthy.close()
        conn.close()
        slow.close()


# --------------------------------------------------------------------------- 6. drain under load

class RedisWatcher(threading.Thread):
    """A subscriber straight on Redis (PSUBSCRIBE): the ground truth of what was published."""

    def __init__(self, port, pattern):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"PSUBSCRIBE {pattern}\r\n".encode())
        self.buf = b""
        confirm = self._read_reply()
        assert confirm[0] == b"psubscribe", confirm
        self.messages = []  # (channel, payload) in Redis order
        self.stopped = False

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            return [self._read_reply() for _ in range(int(rest))]
        if kind == b"$":
            n = int(rest)
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b":":
            return int(rest)
        return rest

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                reply = self._read_reply()
            except socket.timeout:
                continue
            except (EOFError, OSError):
                return
            if reply[0] == b"pmessage":
                self.messages.append((reply[2].decode(), reply[3].decode()))

    def stop(self):
        self.stopped = True
        self.join(2)
        self.sock.close()


N_PUBLISHERS = 20
N_DRAIN_SUBS = 50


def test_sigterm_drain_under_load(start_redis, start_herald):
    redis = start_redis()
    server = start_herald(redis_url=redis.url)
    tag = os.urandom(3).hex()
    channels = [f"drain-{tag}-{k}" for k in range(N_PUBLISHERS)]
    watcher = RedisWatcher(redis.port, f"drain-{tag}-*")
    watcher.start()

    # 50 subscribers, each read continuously by its own thread until Herald closes it.
    subs = [open_subscriber(server, channels=[channels[i % N_PUBLISHERS]]) for i in range(N_DRAIN_SUBS)]
    sub_msgs = [[] for _ in subs]
    sub_close = [None] * len(subs)

    def read_sub(i):
        try:
            while True:
                sub_msgs[i].append(json.loads(subs[i].recv(timeout=15)))
        except ConnectionClosed as exc:
            sub_close[i] = exc.rcvd.code if exc.rcvd is not None else "no close frame"
        except TimeoutError:
            sub_close[i] = "still open 15 s later"

    readers = [threading.Thread(target=read_sub, args=(i,), daemon=True) for i in range(len(subs))]
    for t in readers:
        t.start()

    # 20 keep-alive publishers, each on its own channel with numbered messages.
    acked = [[] for _ in range(N_PUBLISHERS)]  # payloads answered 200
    answers = [[] for _ in range(N_PUBLISHERS)]  # (status, body) of every response received
    violations = []
    unacked = [[] for _ in range(N_PUBLISHERS)]  # payloads that got no answer (connection error)
    errors = {}  # payload -> the error its request met
    stop = threading.Event()

    def publisher(k):
        conn = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=10)
        seq = 0
        while not stop.is_set():
            body = f"{k}:{seq}"
            seq += 1
            resp = None
            try:
                conn.request("POST", f"/publish/{channels[k]}", body=body)
                resp = conn.getresponse()
                data = resp.read()
            except ConnectionRefusedError:
                return  # the listener is gone
            except (OSError, httpclient.HTTPException) as exc:
                if resp is not None:  # the answer started, then broke off
                    violations.append(f"publisher {k}: truncated answer ({resp.status}): {exc!r}")
                    conn.close()
                    continue
                if isinstance(exc, (httpclient.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    # No answer at all: never acknowledged (it may or may not have been published).
                    unacked[k].append(body)
                    errors[body] = repr(exc)
                    conn.close()
                    continue
                if isinstance(exc, httpclient.HTTPException):
                    violations.append(f"publisher {k}: malformed answer: {exc!r}")
                    conn.close()
                    continue
                unacked[k].append(body)  # another socket error before any answer
                errors[body] = repr(exc)
                conn.close()
                if server.proc.poll() is not None:
                    return
                continue
            try:
                decoded = json.loads(data)
            except ValueError:
                violations.append(f"publisher {k}: {resp.status} body is not JSON: {data[:200]!r}")
                continue
            answers[k].append((resp.status, decoded))
            if resp.status == 200:
                if decoded.get("channel") != channels[k] or not isinstance(decoded.get("receivers"), int):
                    violations.append(f"publisher {k}: 200 with body {decoded}")
                acked[k].append(body)
        conn.close()

    pubs = [threading.Thread(target=publisher, args=(k,), daemon=True) for k in range(N_PUBLISHERS)]
    for t in pubs:
        t.start()
    try:
        wait_until(lambda: sum(map(len, acked)) >= 400 and all(sub_msgs), timeout=20, interval=0.02,
                   what="publishers and subscribers to be in full flow")
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = server.proc.wait(timeout=6)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            pytest.fail(f"herald still running 6 s after SIGTERM under load; output:\n{server.log()}")
        exit_after = time.monotonic() - signalled
        assert code == 0, f"herald exited {code} after SIGTERM; output:\n{server.log()}"
    finally:
        stop.set()
        for t in pubs:
            t.join(15)
        for t in readers:
            t.join(20)

    try:
        assert not violations, violations[:10]
        statuses = {}
        for k in range(N_PUBLISHERS):
            for status, decoded in answers[k]:
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    violations.append(f"publisher {k}: {status} {decoded}")
        assert not violations, (
            f"requests in flight at SIGTERM must be answered (200), got: {violations[:10]}; "
            f"statuses {statuses}")

        # Ground truth: every acknowledged publish reached Redis (no 200 for something unpublished).
        total_acked = sum(map(len, acked))
        published = {}
        wait_until(lambda: len(watcher.messages) >= total_acked, timeout=5,
                   what=f"Redis to show the {total_acked} acknowledged publishes")
        settled = [len(watcher.messages), time.monotonic()]

        def feed_settled():  # Herald is gone: nothing more can arrive; wait 0.3 s of quiet
            if len(watcher.messages) != settled[0]:
                settled[:] = [len(watcher.messages), time.monotonic()]
            return time.monotonic() - settled[1] >= 0.3
        wait_until(feed_settled, timeout=5, interval=0.05, what="the Redis feed to settle")
        for channel, body in watcher.messages:
            published.setdefault(channel, []).append(body)
        for k in range(N_PUBLISHERS):
            missing = [b for b in acked[k] if b not in set(published.get(channels[k], []))]
            assert not missing, f"publisher {k}: acknowledged but never published: {missing[:5]}"
            # Redis saw this publisher's messages once each, in the order they were sent.
            seqs = [int(b.split(":")[1]) for b in published.get(channels[k], [])]
            assert all(a < b for a, b in zip(seqs, seqs[1:])), f"publisher {k}: Redis saw {seqs[:20]}"

        # Every WebSocket was closed with 1001 after receiving only published messages, in order.
        assert all(c == 1001 for c in sub_close), f"close codes: {sub_close}"
        for i, msgs in enumerate(sub_msgs):
            ch = channels[i % N_PUBLISHERS]
            datas = [m.get("data") for m in msgs]
            assert all(m.get("type") == "message" and m.get("channel") == ch for m in msgs), msgs[:3]
            truth = published.get(ch, [])
            pos = {b: n for n, b in enumerate(truth)}
            assert all(d in pos for d in datas), f"subscriber {i} got something never published"
            assert [pos[d] for d in datas] == sorted(pos[d] for d in datas), f"subscriber {i}: out of order"

        # A request Herald took in (Redis executed it) was answered: the drain closes only idle
        # connections, so what went unanswered never reached Redis.
        for k in range(N_PUBLISHERS):
            lost = [b for b in unacked[k] if b in set(published.get(channels[k], []))]
            assert not lost, (f"publisher {k}: published by Herald (Redis delivered it) but the "
                              f"connection closed without an answer: {[(b, errors[b]) for b in lost]}; "
                              f"{total_acked} acknowledged, {sum(map(len, unacked))} unanswered")
        print(f"drain: {total_acked} publishes acknowledged, {sum(map(len, unacked))} unanswered, exit after "
              f"{exit_after:.2f}s, statuses {statuses}")
    finally:
        watcher.stop()
        for ws in subs:
            ws.close()
