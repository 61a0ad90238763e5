#!/usr/bin/env python3
"""Presence cost with N members of one channel (issue 10, item 5).

Starts a private redis-server and one Herald (HERALD_BIN, default .build/debug/herald; use a
release build for figures worth quoting), opens N WebSockets (PRESENCE_MEMBERS, default 1000)
that all join one channel's presence, then measures PROBES probe members (default 20), one at a
time: the time from opening the socket until its own join arrives, until every one of the N
members has heard that join, and (after it closes) until every member has heard its leave. The
Redis cost comes from `INFO commandstats` deltas: commands per join and per leave (the EVAL
and the commands the script runs), and per second while idle (lease renewal and reaping).
Prints the figures; stops what it started, by PID.
"""
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERALD_BIN = os.environ.get("HERALD_BIN", os.path.join(ROOT, ".build/debug/herald"))
MEMBERS = int(os.environ.get("PRESENCE_MEMBERS", "1000"))
PROBES = int(os.environ.get("PRESENCE_PROBES", "20"))
TTL = os.environ.get("PRESENCE_TTL", "30")
CHANNEL = "bench-room"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True).stdout


def commandstats(port):
    """{command: calls} from INFO commandstats."""
    calls = {}
    for line in cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            calls[name] = int(rest.split("calls=", 1)[1].split(",", 1)[0])
    return calls


def delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


class Members:
    """N open members; counts, per client id, how many members heard its join and its leave."""

    def __init__(self):
        self.heard = {}  # (type, client) -> count
        self.tasks = []

    async def reader(self, ws):
        async for text in ws:
            m = json.loads(text)
            if m.get("type") in ("join", "leave"):
                key = (m["type"], m["client"])
                self.heard[key] = self.heard.get(key, 0) + 1

    async def wait_heard(self, kind, client, count, timeout=60):
        deadline = time.monotonic() + timeout
        while self.heard.get((kind, client), 0) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind} of {client}: {self.heard.get((kind, client), 0)}/{count} heard")
            await asyncio.sleep(0.001)


async def own_join(ws):
    while True:
        m = json.loads(await ws.recv())
        if m.get("type") == "join":
            return m["client"]


async def main():
    import websockets
    rport, hport = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    log = tempfile.NamedTemporaryFile(prefix="herald-presence-bench-", suffix=".log", delete=False)
    herald = None
    try:
        time.sleep(0.3)
        herald = subprocess.Popen([HERALD_BIN, "--port", str(hport), "--redis", f"redis://127.0.0.1:{rport}",
                                   "--presence-ttl", TTL], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{hport}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        url = f"ws://127.0.0.1:{hport}/subscribe?channel={CHANNEL}&presence=true"
        members = Members()
        started = time.monotonic()
        for i in range(MEMBERS):
            ws = await websockets.connect(url + f"&user=u{i}", max_queue=None)
            await own_join(ws)
            members.tasks.append(asyncio.create_task(members.reader(ws)))
        print(f"{MEMBERS} members joined one by one in {time.monotonic() - started:.1f} s "
              f"({MEMBERS * (MEMBERS - 1) // 2} join events delivered meanwhile)")
        await asyncio.sleep(1)

        joins, fanned, leaves = [], [], []
        before = commandstats(rport)
        for i in range(PROBES):
            t0 = time.monotonic()
            ws = await websockets.connect(url + f"&user=probe{i}")
            client = await own_join(ws)
            joins.append(time.monotonic() - t0)
            await members.wait_heard("join", client, MEMBERS)
            fanned.append(time.monotonic() - t0)
            t1 = time.monotonic()
            await ws.close()
            await members.wait_heard("leave", client, MEMBERS)
            leaves.append(time.monotonic() - t1)
        used = delta(before, commandstats(rport))
        used.pop("info", None)
        idle_before = commandstats(rport)
        await asyncio.sleep(10)
        idle = delta(idle_before, commandstats(rport))
        idle.pop("info", None)

        ms = lambda xs: f"median {statistics.median(xs) * 1000:.1f} ms, max {max(xs) * 1000:.1f} ms"
        print(f"join, socket open to own join event:      {ms(joins)}")
        print(f"join, socket open to all {MEMBERS} members heard it: {ms(fanned)}")
        print(f"leave, close to all {MEMBERS} members heard it:    {ms(leaves)}")
        per = {k: v / PROBES for k, v in sorted(used.items())}
        print(f"Redis commands per join + leave (script inner calls included): "
              f"{sum(per.values()):.1f} {json.dumps(per)}")
        print(f"Redis commands per second while idle (renewal, reaping): "
              f"{sum(idle.values()) / 10:.1f} {json.dumps({k: v / 10 for k, v in sorted(idle.items())})}")
        for t in members.tasks:
            t.cancel()
    finally:
        if herald:
            herald.terminate()
            herald.wait(10)
        redis.terminate()
        redis.wait(10)
        os.unlink(log.name)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
