#!/usr/bin/env python3
"""`make soak`: a few minutes of steady publishing with WebSocket subscribers joining and leaving.

Starts a private redis-server and Herald (HERALD_BIN, default .build/debug/herald) on free
loopback ports, then:

  1. warm-up (SOAK_WARMUP s, default 15): the load below, then every client leaves;
     Herald's open fds (/proc/PID/fd) and RSS are measured: the START figures;
  2. soak (SOAK_SECONDS s, default 180): the same load; a line every SOAK_SAMPLE s (default 10)
     with fds, RSS and counts while it runs;
  3. every client leaves; fds and RSS are measured again: the END figures.

The load: SOAK_PUBLISHERS (default 4) keep-alive HTTP connections publishing SOAK_RATE messages
a second in all (default 200) with `POST /publish/{channel}` (sharded ones with ?sharded=true),
and SOAK_SUBSCRIBERS (default 40) WebSocket slots, each one session after another: subscribe to
a random mix of channels, patterns and shards (through the query string or control messages),
stay 0.5-6 s, then leave: a close handshake, an `unsubscribe` first, or a dropped TCP connection.

It fails (exit 1) when:
  - fds at END exceed START by more than SOAK_FD_MARGIN (default 20);
  - RSS at END exceeds START by more than max(SOAK_RSS_MARGIN_PCT % (default 25),
    SOAK_RSS_MARGIN_MIB MiB (default 20));
  - a subscriber missed a message it should have had (published after its subscription was
    confirmed and answered 200 more than SOAK_GRACE s (default 0.5) before it unsubscribed or
    left), got one twice, or got one it never subscribed to; or got `dropped`/`gap`/`error`;
  - a publish did not answer 200, or Herald died, or /healthz does not answer at the end;
  - Redis still lists channels (PUBSUB CHANNELS / SHARDCHANNELS) or patterns (NUMPAT) once
    every client left.
"""

from __future__ import annotations

import asyncio
import bisect
import fnmatch
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


SOAK_SECONDS = env_float("SOAK_SECONDS", 180)
WARMUP = env_float("SOAK_WARMUP", 15)
SAMPLE = env_float("SOAK_SAMPLE", 10)
RATE = env_float("SOAK_RATE", 200)
PUBLISHERS = int(env_float("SOAK_PUBLISHERS", 4))
SUBSCRIBERS = int(env_float("SOAK_SUBSCRIBERS", 40))
LOOPS = int(env_float("SOAK_LOOPS", 2))
FD_MARGIN = int(env_float("SOAK_FD_MARGIN", 20))
RSS_MARGIN_PCT = env_float("SOAK_RSS_MARGIN_PCT", 25)
RSS_MARGIN_MIB = env_float("SOAK_RSS_MARGIN_MIB", 20)
GRACE = env_float("SOAK_GRACE", 0.5)
SEED = int(env_float("SOAK_SEED", time.time()))
HERALD_BIN = Path(os.environ.get("HERALD_BIN") or REPO / ".build" / "debug" / "herald").resolve()

CHANNELS = [f"soak:c{i}" for i in range(8)]
PATTERNS = [f"soak:p{k}:*" for k in range(4)]
PATTERN_CHANNELS = [f"soak:p{k}:{j}" for k in range(4) for j in range(4)]
SHARDS = [f"soak:s{i}" for i in range(4)]


def log(msg):
    print(f"soak: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- processes

def resp_command(port, *args, timeout=5.0):
    """One Redis command over RESP; returns the decoded reply (str, int, list, or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            b = str(a).encode()
            out += f"${len(b)}\r\n".encode() + b + b"\r\n"
        s.sendall(out)
        f = s.makefile("rb")

        def read():
            line = f.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:]
            if kind == b"+":
                return rest.decode()
            if kind == b"-":
                raise RuntimeError(rest.decode())
            if kind == b":":
                return int(rest)
            if kind == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = f.read(n + 2)[:-2]
                return data.decode("utf-8", "replace")
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise RuntimeError(f"unexpected RESP {line!r}")

        return read()


def stop(proc, timeout=10):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def start_redis(workdir):
    redis = shutil.which("redis-server")
    if not redis:
        sys.exit("soak: redis-server not found (run `make deps`)")
    port = free_port()
    proc = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--loglevel", "warning"],
                            stdout=open(workdir / "redis.log", "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=workdir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if resp_command(port, "PING", timeout=1) == "PONG":
                return proc, port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    sys.exit("soak: redis-server did not start: " + (workdir / "redis.log").read_text()[-2000:])


def http_get(port, path, timeout=3.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0


def start_herald(workdir, redis_port):
    if not HERALD_BIN.exists():
        sys.exit(f"soak: no Herald binary at {HERALD_BIN}: run `make build` (or set HERALD_BIN)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    args = [str(HERALD_BIN), "--host", "127.0.0.1", "--port", str(port),
            "--redis", f"redis://127.0.0.1:{redis_port}", "--loops", str(LOOPS),
            "--public", str(REPO / "public"), "--log-level", "warning"]
    logfile = workdir / "herald.log"
    proc = subprocess.Popen(args, stdout=open(logfile, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, cwd=REPO)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"soak: herald exited with {proc.returncode}: {logfile.read_text()[-3000:]}")
        try:
            if http_get(port, "/healthz") == 200 and http_get(port, "/readyz") == 200:
                return proc, port, logfile
        except OSError:
            pass
        time.sleep(0.1)
    stop(proc)
    sys.exit("soak: herald did not become ready: " + logfile.read_text()[-3000:])


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def mib(kib):
    return kib / 1024.0


# --------------------------------------------------------------------------- load

@dataclass
class Published:
    channel: str
    sharded: bool
    start: float
    ack: float = 0.0


@dataclass
class Session:
    mode: str  # "query" or "control"
    ending: str  # "close", "unsubscribe" or "abort"
    wanted: dict  # kind -> [names]
    start: dict = field(default_factory=dict)  # (kind, name) -> time Herald confirmed it
    end: float = 0.0  # time the client unsubscribed or left
    received: list = field(default_factory=list)  # (kind, channel, seq)
    anomalies: list = field(default_factory=list)
    connected: bool = False


class Load:
    def __init__(self, port, shards_supported):
        self.port = port
        self.shards = shards_supported
        self.published: dict[int, Published] = {}
        self.seq = 0
        self.sessions: list[Session] = []
        self.failures: list[str] = []
        self.publish_connections = 0
        self.running = False
        self.connected_now = 0
        self.rng = random.Random(SEED)

    # ---- publishers: keep-alive HTTP/1.1, one request at a time per connection

    async def publisher(self, rate):
        interval = 1.0 / rate
        reader = writer = None
        next_at = time.monotonic()
        try:
            while self.running:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    self.publish_connections += 1
                sharded = self.shards and self.rng.random() < 0.15
                if sharded:
                    channel = self.rng.choice(SHARDS)
                else:
                    channel = self.rng.choice(CHANNELS + PATTERN_CHANNELS)
                self.seq += 1
                seq = self.seq
                body = f"m{seq}".encode()
                path = "/publish/" + urllib.parse.quote(channel, safe="") + ("?sharded=true" if sharded else "")
                record = Published(channel, sharded, time.monotonic())
                self.published[seq] = record
                writer.write(f"POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                status = int(head.split(b" ", 2)[1])
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                answer = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
                if status != 200:
                    del self.published[seq]
                    self.failures.append(f"publish to {channel} answered {status} {answer[:200]!r}")
                else:
                    record.ack = time.monotonic()
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader = writer = None
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_at = time.monotonic()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            self.failures.append(f"publisher connection failed: {exc!r}")
        finally:
            if writer is not None:
                writer.close()

    # ---- subscribers

    def pick(self):
        rng = self.rng
        wanted = {
            "channel": rng.sample(CHANNELS, rng.randint(0, 3)),
            "pattern": rng.sample(PATTERNS, rng.randint(0, 2)),
            "shard": rng.sample(SHARDS, rng.randint(0, 1)) if self.shards else [],
        }
        if not any(wanted.values()):
            wanted["channel"] = [rng.choice(CHANNELS)]
        r = rng.random()
        ending = "unsubscribe" if r < 0.3 else "abort" if r < 0.4 else "close"
        return Session(mode=rng.choice(["query", "control"]), ending=ending,
                       wanted={k: v for k, v in wanted.items() if v})

    async def subscriber_slot(self):
        from websockets.asyncio.client import connect
        while self.running:
            s = self.pick()
            self.sessions.append(s)
            query = []
            if s.mode == "query":
                query = [(k, n) for k, names in s.wanted.items() for n in names]
            url = f"ws://127.0.0.1:{self.port}/subscribe" + ("?" + urllib.parse.urlencode(query) if query else "")
            try:
                async with connect(url, open_timeout=10, close_timeout=3, max_size=None) as ws:
                    s.connected = True
                    self.connected_now += 1
                    try:
                        await self.session(ws, s)
                    finally:
                        self.connected_now -= 1
            except Exception as exc:  # noqa: BLE001 - any failure of a session is a finding
                if not (s.ending == "abort" and s.end):
                    s.anomalies.append(f"session failed: {exc!r}")
            await asyncio.sleep(self.rng.uniform(0, 0.2))

    async def session(self, ws, s: Session):
        pending = {kind: set(names) for kind, names in s.wanted.items()}
        ops = {"channel": ("subscribe", "channels"), "pattern": ("psubscribe", "patterns"),
               "shard": ("ssubscribe", "channels")}
        if s.mode == "control":
            for i, (kind, names) in enumerate(s.wanted.items()):
                op, key = ops[kind]
                await ws.send(json.dumps({"op": op, key: names, "id": i}))

        def handle(raw):
            msg = json.loads(raw)
            t = msg.get("type")
            if t == "subscribed":
                for name in msg["names"]:
                    s.start.setdefault((msg["kind"], name), time.monotonic())
                    pending.get(msg["kind"], set()).discard(name)
            elif t in ("message", "pmessage", "smessage"):
                kind = {"message": "channel", "pmessage": "pattern", "smessage": "shard"}[t]
                name = msg.get("pattern", msg["channel"])
                s.received.append((kind, name, msg["channel"], int(msg["data"][1:])))
            elif t == "unsubscribed":
                pass
            else:
                s.anomalies.append(f"unexpected answer {msg}")

        # Wait for every confirmation (10 s at most), then stay a while reading.
        deadline = time.monotonic() + 10
        while any(pending.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                s.anomalies.append(f"subscriptions never confirmed: {pending}")
                return
            handle(await asyncio.wait_for(ws.recv(), left))
        stay_until = time.monotonic() + self.rng.uniform(0.5, 6.0)
        while self.running and time.monotonic() < stay_until:
            try:
                handle(await asyncio.wait_for(ws.recv(), min(1.0, max(0.01, stay_until - time.monotonic()))))
            except asyncio.TimeoutError:
                continue
        s.end = time.monotonic()
        if s.ending == "unsubscribe":
            await ws.send(json.dumps({"op": "unsubscribe", "id": "bye"}))
            # Read until every kind's `unsubscribed` answer came; deliveries may still arrive.
            kinds = set(s.wanted)
            deadline = time.monotonic() + 5
            while kinds and time.monotonic() < deadline:
                raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
                msg = json.loads(raw)
                if msg.get("type") == "unsubscribed":
                    kinds.discard(msg.get("kind"))
                else:
                    handle(raw)
            if kinds:
                s.anomalies.append(f"no unsubscribed answer for {kinds}")
        elif s.ending == "abort":
            ws.transport.abort()

    async def run(self, seconds, sample_cb=None):
        self.running = True
        pubs = [asyncio.create_task(self.publisher(RATE / PUBLISHERS)) for _ in range(PUBLISHERS)]
        subs = [asyncio.create_task(self.subscriber_slot()) for _ in range(SUBSCRIBERS)]
        started = time.monotonic()
        next_sample = started + SAMPLE
        while time.monotonic() - started < seconds:
            await asyncio.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - started))))
            if sample_cb and time.monotonic() >= next_sample:
                sample_cb(time.monotonic() - started, self)
                next_sample += SAMPLE
            if self.failures:
                break
        self.running = False
        await asyncio.wait(pubs + subs, timeout=30)
        for t in pubs + subs:
            t.cancel()

    # ---- delivery check

    def check(self):
        """Returns (expected, received, missing, unexpected, duplicates, anomalies, examples)."""
        expected = got = missing = unexpected = duplicates = 0
        anomalies = []
        # (sharded, channel) -> (publish start times, [(seq, record)]), in publish order.
        index: dict = {}
        for seq, p in sorted(self.published.items(), key=lambda item: item[1].start):
            starts, records = index.setdefault((p.sharded, p.channel), ([], []))
            starts.append(p.start)
            records.append((seq, p))
        examples = []
        for s in self.sessions:
            anomalies += s.anomalies
            seen = set()
            for kind, name, channel, seq in s.received:
                key = (kind, name, seq)
                if key in seen:
                    duplicates += 1
                seen.add(key)
                p = self.published.get(seq)
                ok = p is not None and p.channel == channel and name in s.wanted.get(kind, []) and (
                    (kind == "shard") == p.sharded) and (
                    fnmatch.fnmatchcase(channel, name) if kind == "pattern" else channel == name)
                if not ok:
                    unexpected += 1
                    if len(examples) < 5:
                        examples.append(f"unexpected {kind} {name} {channel} m{seq}")
            if not s.end:
                continue
            for (kind, name), start in s.start.items():
                if kind == "shard":
                    streams = [index.get((True, name), ([], []))]
                elif kind == "pattern":
                    streams = [v for (sharded, ch), v in index.items() if not sharded and fnmatch.fnmatchcase(ch, name)]
                else:
                    streams = [index.get((False, name), ([], []))]
                for starts, records in streams:
                    for i in range(bisect.bisect_right(starts, start), len(starts)):
                        seq, p = records[i]
                        if p.start >= s.end:
                            break
                        if not p.ack or p.ack >= s.end - GRACE:
                            continue
                        expected += 1
                        if (kind, name, seq) in seen:
                            got += 1
                        else:
                            missing += 1
                            if len(examples) < 10:
                                examples.append(f"missing m{seq} on {p.channel} for {kind} {name} "
                                                f"(published {p.start - start:.3f}s after confirmation, "
                                                f"acked {s.end - p.ack:.3f}s before the client left)")
        return expected, got, missing, unexpected, duplicates, anomalies, examples


# --------------------------------------------------------------------------- main

def redis_leftovers(redis_port, shards):
    channels = [c for c in resp_command(redis_port, "PUBSUB", "CHANNELS") if c.startswith("soak:")]
    numpat = resp_command(redis_port, "PUBSUB", "NUMPAT")
    shard_channels = resp_command(redis_port, "PUBSUB", "SHARDCHANNELS") if shards else []
    return channels, numpat, shard_channels


def quiesce(pid, redis_port, shards, timeout=10.0):
    """Waits (after every client left) until Redis lists no subscription and Herald's fd count
    stops changing; returns (fds, rss KiB, leftovers)."""
    deadline = time.monotonic() + timeout
    last = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        fds = fd_count(pid)
        left = redis_leftovers(redis_port, shards)
        if fds != last:
            last, stable_since = fds, time.monotonic()
        if not left[0] and not left[1] and not left[2] and time.monotonic() - stable_since >= 2.0:
            break
        time.sleep(0.25)
    time.sleep(0.5)
    return fd_count(pid), rss_kib(pid), redis_leftovers(redis_port, shards)


def main():
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    redis_proc = herald_proc = None
    try:
        import websockets  # noqa: F401 - fail early with a clear message
    except ImportError:
        sys.exit("soak: the Python package `websockets` is missing (run with .venv/bin/python after `make deps`)")
    try:
        redis_proc, redis_port = start_redis(workdir)
        version = resp_command(redis_port, "INFO", "server")
        redis_version = next((l.split(":", 1)[1].strip() for l in version.splitlines() if l.startswith("redis_version:")), "?")
        shards = int(redis_version.split(".")[0]) >= 7 if redis_version[0].isdigit() else False
        herald_proc, port, herald_log = start_herald(workdir, redis_port)
        pid = herald_proc.pid
        log(f"Herald pid {pid} ({HERALD_BIN}, {LOOPS} loops) on :{port}; redis-server {redis_version} on :{redis_port}; seed {SEED}")
        log(f"load: {PUBLISHERS} keep-alive publishers at {RATE:g} msg/s in all, {SUBSCRIBERS} subscriber slots "
            f"(channels, patterns{', shards' if shards else ''}); warm-up {WARMUP:g} s, soak {SOAK_SECONDS:g} s")
        idle_fds, idle_rss = fd_count(pid), rss_kib(pid)
        log(f"idle before any load: {idle_fds} fds, RSS {mib(idle_rss):.1f} MiB")

        failures = []
        warm = Load(port, shards)
        asyncio.run(warm.run(WARMUP))
        start_fds, start_rss, start_left = quiesce(pid, redis_port, shards)
        log(f"START (after {WARMUP:g} s warm-up, all clients gone): {start_fds} fds, RSS {mib(start_rss):.1f} MiB")

        def sample(t, load):
            if herald_proc.poll() is not None:
                load.failures.append(f"herald exited with {herald_proc.returncode}")
                return
            log(f"  t={t:5.0f}s  fds {fd_count(pid):4d}  RSS {mib(rss_kib(pid)):6.1f} MiB  "
                f"ws connected {load.connected_now:3d}  sessions {len(load.sessions):5d}  published {len(load.published):6d}")

        soak = Load(port, shards)
        soak.rng.seed(SEED + 1)
        soak.seq = 10_000_000  # distinct message numbers from the warm-up
        t0 = time.monotonic()
        asyncio.run(soak.run(SOAK_SECONDS, sample))
        elapsed = time.monotonic() - t0
        if herald_proc.poll() is not None:
            failures.append(f"herald exited with {herald_proc.returncode} during the soak")
            end_fds, end_rss, end_left = 0, 0, redis_leftovers(redis_port, shards)
        else:
            end_fds, end_rss, end_left = quiesce(pid, redis_port, shards)
        log(f"END   (after {elapsed:.0f} s soak, all clients gone): {end_fds} fds, RSS {mib(end_rss):.1f} MiB")

        # ---- verdicts
        fd_growth = end_fds - start_fds
        rss_growth = end_rss - start_rss
        rss_limit = max(start_rss * RSS_MARGIN_PCT / 100.0, RSS_MARGIN_MIB * 1024)
        failures += warm.failures + soak.failures
        if herald_proc.poll() is None:
            if fd_growth > FD_MARGIN:
                failures.append(f"fds grew by {fd_growth} (> +{FD_MARGIN})")
            if rss_growth > rss_limit:
                failures.append(f"RSS grew by {mib(rss_growth):.1f} MiB (> +{mib(rss_limit):.1f} MiB)")
            try:
                if http_get(port, "/healthz") != 200:
                    failures.append("/healthz did not answer 200 at the end")
            except OSError as exc:
                failures.append(f"/healthz failed at the end: {exc!r}")
        for label, left in (("after warm-up", start_left), ("at the end", end_left)):
            channels, numpat, shard_channels = left
            if channels or numpat or shard_channels:
                failures.append(f"Redis still has subscriptions {label}: PUBSUB CHANNELS {channels}, "
                                f"NUMPAT {numpat}, SHARDCHANNELS {shard_channels}")

        totals = [0] * 5
        anomalies, examples = [], []
        for load in (warm, soak):
            e, g, m, u, d, a, x = load.check()
            totals = [t + v for t, v in zip(totals, (e, g, m, u, d))]
            anomalies += a
            examples += x
        expected, got, missing, unexpected, duplicates = totals
        sessions = warm.sessions + soak.sessions
        by_mode = {m: sum(1 for s in sessions if s.mode == m) for m in ("query", "control")}
        by_end = {e: sum(1 for s in sessions if s.ending == e) for e in ("close", "unsubscribe", "abort")}
        published = len(warm.published) + len(soak.published)
        if missing:
            failures.append(f"{missing} deliveries missing")
        if unexpected:
            failures.append(f"{unexpected} unexpected deliveries")
        if duplicates:
            failures.append(f"{duplicates} duplicate deliveries")
        if anomalies:
            failures.append(f"{len(anomalies)} session anomalies, e.g. {anomalies[:3]}")
        if expected == 0:
            failures.append("no delivery was expected: the load did not run")

        print()
        print("soak figures")
        print(f"  {'':34s} {'fds':>5s} {'RSS MiB':>9s}")
        print(f"  {'idle (before any load)':34s} {idle_fds:5d} {mib(idle_rss):9.1f}")
        print(f"  {'START (after warm-up, clients gone)':34s} {start_fds:5d} {mib(start_rss):9.1f}")
        print(f"  {'END (after soak, clients gone)':34s} {end_fds:5d} {mib(end_rss):9.1f}")
        pct = 100.0 * rss_growth / start_rss if start_rss else 0.0
        print(f"  {'growth START -> END':34s} {fd_growth:+5d} {mib(rss_growth):+9.1f} ({pct:+.1f}%)")
        print(f"  {'allowed':34s} {FD_MARGIN:+5d} {mib(rss_limit):+9.1f} (max of {RSS_MARGIN_PCT:g}% and {RSS_MARGIN_MIB:g} MiB)")
        print(f"  soak time {elapsed:.0f} s (+{WARMUP:g} s warm-up); publishes {published} answered 200 over "
              f"{warm.publish_connections + soak.publish_connections} keep-alive connections")
        print(f"  subscriber sessions {len(sessions)} (query {by_mode['query']}, control messages {by_mode['control']}; "
              f"left by close {by_end['close']}, unsubscribe first {by_end['unsubscribe']}, dropped TCP {by_end['abort']})")
        print(f"  deliveries: expected {expected}, received {got}, missing {missing}, unexpected {unexpected}, "
              f"duplicates {duplicates}")
        for x in examples[:10]:
            print(f"    {x}")
        channels, numpat, shard_channels = end_left
        print(f"  Redis after every client left: PUBSUB CHANNELS {channels}, NUMPAT {numpat}, SHARDCHANNELS {shard_channels}")
        if failures:
            print("\nsoak: FAIL")
            for f in failures:
                print(f"  - {f}")
            tail = herald_log.read_text(errors="replace")[-3000:]
            if tail.strip():
                print("herald log (tail):\n" + tail)
            return 1
        print("\nsoak: PASS")
        return 0
    finally:
        stop(herald_proc)
        stop(redis_proc)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
