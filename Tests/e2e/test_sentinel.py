"""Redis Sentinel (issue 12, item 1): `--redis redis+sentinel://...`.

Each test starts real processes on loopback ports: a primary, one replica (`--replicaof`) and
three sentinels (`redis-server <conf> --sentinel`, each with its own writable config file in a
temp dir, since sentinels rewrite it), or, where a sentinel must misbehave, a fake sentinel (a
small Python server speaking RESP). Everything started here is stopped at the end of its test.

Groups:
- the broker through Sentinel (pub/sub, streams, queues);
- failover: SIGKILL of the primary, SIGSTOP of the primary, `SENTINEL FAILOVER` (a graceful
  switch: +switch-master moves the links), a demoted master still named by a stale sentinel
  (its READONLY answer moves the links);
- sentinels that fail: one dead, one that names a replica (ROLE check), one that accepts and
  never answers (the deadline), none at all at start.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (REDIS_SERVER, RedisServer, free_port, http, launch_herald, launch_redis,
                      open_subscriber, publish, recv_json, stop_process, unique, wait_until,
                      ws_connect)

MASTER = "m"
FAILOVER_TIMEOUT = 30.0  # seconds the sentinels get to elect and promote
# Seconds Herald gets to move its links once the sentinels name the new master (they demote a
# live old master only about 10 s later, which would drop the links anyway).
MOVE_DEADLINE = 5.0


# --------------------------------------------------------------------------- processes

def launch_sentinel(master_port, directory: Path, port=None) -> RedisServer:
    """A real sentinel monitoring 127.0.0.1:master_port as `m`, quorum 2, 1 s down-after."""
    port = port or free_port()
    conf = directory / f"sentinel-{port}.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {directory}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 4000\n"
        f"sentinel parallel-syncs {MASTER} 1\n")
    log = directory / f"sentinel-{port}.log"
    proc = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(directory))
    server = RedisServer(port, proc, None, None)
    wait_until(server.ping, timeout=10, what=f"sentinel on {port}")
    return server


def role(server: RedisServer) -> str:
    return server.cli("ROLE", timeout=2, check=False).split("\n", 1)[0].strip()


class Setup:
    """A primary, a replica and three sentinels that know each other."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="herald-sentinel-"))
        self.primary = launch_redis()
        self.replica = launch_redis(extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)])
        self.nodes = [self.primary, self.replica]
        wait_until(lambda: "master_link_status:up" in self.replica.cli("INFO", "replication"),
                   timeout=10, what="the replica to sync")
        self.sentinels = [launch_sentinel(self.primary.port, self.dir) for _ in range(3)]
        for s in self.sentinels:
            wait_until(lambda s=s: str(self.replica.port) in s.cli("SENTINEL", "replicas", MASTER)
                       and s.cli("SENTINEL", "sentinels", MASTER).count("runid") >= 2,
                       timeout=20, what="the sentinels to find the replica and each other")

    def url(self, sentinels=None, db=None):
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in (sentinels or self.sentinels))
        return f"redis+sentinel://{hosts}/{MASTER}" + (f"/{db}" if db is not None else "")

    def master_port(self, via=None) -> int:
        answer = (via or self.sentinels[0]).cli("SENTINEL", "get-master-addr-by-name", MASTER)
        return int(answer.split()[1])

    def node(self, port) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def stop(self):
        for p in self.sentinels + self.nodes:
            stop_process(p.proc)


@pytest.fixture
def setup():
    s = Setup()
    yield s
    s.stop()


@pytest.fixture
def heralds():
    started = []

    def start(*args, **kw):
        h = launch_herald(*args, **kw)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


class FakeSentinel:
    """A RESP server on loopback that plays a sentinel: `get-master-addr-by-name` answers
    `self.master` (a port on 127.0.0.1), SUBSCRIBE and PING are answered as a sentinel would.
    With `silent`, it accepts connections and never answers anything."""

    def __init__(self, master_port=None, silent=False, port=None):
        self.master = master_port
        self.silent = silent
        self.asked = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port or 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            if not self.silent:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _bulk(s):
        b = s.encode()
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while True:
                    parsed = self._parse(buf)
                    if parsed is None:
                        break
                    args, buf = parsed
                    conn.sendall(self._answer([a.lower() for a in args[:1]] + args[1:]))
        except OSError:
            return

    @staticmethod
    def _parse(buf):
        if not buf.startswith(b"*") or b"\r\n" not in buf:
            return None
        head, rest = buf.split(b"\r\n", 1)
        args = []
        for _ in range(int(head[1:])):
            if b"\r\n" not in rest:
                return None
            size_line, rest = rest.split(b"\r\n", 1)
            n = int(size_line[1:])
            if len(rest) < n + 2:
                return None
            args.append(rest[:n].decode())
            rest = rest[n + 2:]
        return args, rest

    def _answer(self, args):
        if args[0] == "sentinel" and len(args) == 3 and args[1].lower() == "get-master-addr-by-name":
            self.asked += 1
            if self.master is None or args[2] != MASTER:
                return b"*-1\r\n"
            return b"*2\r\n" + self._bulk("127.0.0.1") + self._bulk(str(self.master))
        if args[0] == "subscribe":
            return b"*3\r\n" + self._bulk("subscribe") + self._bulk(args[1]) + b":1\r\n"
        if args[0] == "ping":
            return b"*2\r\n" + self._bulk("pong") + self._bulk("")
        return b"-ERR unknown command\r\n"

    def close(self):
        self.closed = True
        self.listener.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def fakes():
    made = []

    def make(*args, **kw):
        f = FakeSentinel(*args, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


# --------------------------------------------------------------------------- helpers

def readyz(h):
    status, _, body = http("GET", h.base_url + "/readyz", timeout=3)
    return status, json.loads(body)


def append(h, key, fields, timeout=5):
    status, _, body = http("POST", f"{h.base_url}/streams/{key}", json.dumps(fields).encode(),
                           {"Content-Type": "application/json"}, timeout=timeout)
    return status, json.loads(body) if body else None


def publish_status(h, channel, message, timeout=5):
    status, _, body = http("POST", f"{h.base_url}/publish/{urllib.parse.quote(channel)}",
                           message.encode(), timeout=timeout)
    return status, json.loads(body) if body else None


def next_of_type(ws, kind, timeout=15.0):
    """Reads frames until one of type `kind`; returns it and what came before."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {kind!r} frame within {timeout}s; got {seen}")
        msg = recv_json(ws, left)
        if msg.get("type") == kind:
            return msg, seen
        seen.append(msg)


def pop_async(h, queue, wait_s):
    result = {}

    def run():
        try:
            result["answer"] = http("GET", f"{h.base_url}/queues/{queue}?wait={wait_s}",
                                    timeout=wait_s + 10)
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


# --------------------------------------------------------------------------- the broker through Sentinel

def test_broker_works_through_sentinel(setup, heralds):
    h = heralds(redis_url=setup.url())
    channel, stream, queue = unique("ch"), unique("st"), unique("q")
    ws = open_subscriber(h, channels=[channel])
    reader = ws_connect(f"{h.ws_url}/subscribe?stream={stream}&from=0")
    try:
        assert publish(h, channel, "hello")["receivers"] >= 1
        assert recv_json(ws)["data"] == "hello"
        status, answer = append(h, stream, {"n": "1"})
        assert status == 200, answer
        entry, _ = next_of_type(reader, "entry")
        assert entry["fields"] == {"n": "1"} and entry["id"] == answer["id"]
        t, result = pop_async(h, queue, 10)
        time.sleep(0.3)
        assert http("POST", f"{h.base_url}/queues/{queue}", b"job-1")[0] == 200
        t.join(15)
        assert result["answer"][0] == 200 and result["answer"][2] == b"job-1", result
        # Everything went to the primary, the node the sentinels name.
        assert setup.primary.cli("XLEN", stream).strip() == "1"
    finally:
        ws.close()
        reader.close()


# --------------------------------------------------------------------------- failover

def test_sigkill_of_the_primary_moves_every_link(setup, heralds):
    h = heralds(redis_url=setup.url())
    channel, stream, queue = unique("ch"), unique("st"), unique("q")
    ws = open_subscriber(h, channels=[channel])
    reader = ws_connect(f"{h.ws_url}/subscribe?stream={stream}&from=0")
    try:
        status, first = append(h, stream, {"n": "1"})
        assert status == 200
        assert next_of_type(reader, "entry")[0]["id"] == first["id"]
        # The entry is on the replica before the primary dies (replication is asynchronous).
        setup.primary.cli("WAIT", "1", "2000")

        ready_log, stop_polling = [], threading.Event()

        def poll_readyz():
            while not stop_polling.is_set():
                try:
                    ready_log.append(readyz(h))
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)

        poller = threading.Thread(target=poll_readyz, daemon=True)
        poller.start()
        waiting, waited = pop_async(h, unique("q"), 30)
        time.sleep(0.3)
        setup.primary.proc.kill()
        setup.primary.proc.wait(5)
        killed_at = time.monotonic()

        # Publishes answer at once meanwhile, 503 while there is no master, never hang.
        outcomes = []
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        while time.monotonic() < deadline:
            started = time.monotonic()
            status, body = publish_status(h, channel, "during", timeout=5)
            assert time.monotonic() - started < 3, "a publish during the failover waited"
            outcomes.append(status)
            if status == 200:
                break
            assert status == 503 and body["error"] == "redis_unavailable", body
            time.sleep(0.1)
        assert outcomes[-1] == 200, f"no publish succeeded within {FAILOVER_TIMEOUT}s: {outcomes}"
        assert 503 in outcomes
        # The pop that waited on the dead master ended with 503, not at its 30 s.
        waiting.join(1)
        assert waited.get("answer", (None,))[0] == 503, waited
        assert role(setup.replica) == "master"
        recovered_in = time.monotonic() - killed_at

        # The subscriber hears of the gap once its subscription is live on the new master,
        # then gets new messages.
        gap, _ = next_of_type(ws, "gap")
        assert gap == {"type": "gap", "kind": "channel", "channel": channel}
        wait_until(lambda: publish(h, channel, "after")["receivers"] >= 1, timeout=10,
                   what="the subscription on the new master")
        msg, _ = next_of_type(ws, "message")
        assert msg["data"] in ("during", "after")

        # The stream reader resumes on the new master.
        status, second = append(h, stream, {"n": "2"})
        assert status == 200, second
        entry, _ = next_of_type(reader, "entry")
        assert entry["id"] == second["id"]

        # A blocking pop waits on the new master.
        t, result = pop_async(h, queue, 10)
        time.sleep(0.3)
        assert http("POST", f"{h.base_url}/queues/{queue}", b"job")[0] == 200
        t.join(15)
        assert result.get("answer", (None,))[0] == 200 and result["answer"][2] == b"job", result

        wait_until(lambda: readyz(h)[0] == 200, timeout=10, what="/readyz green")
        stop_polling.set()
        poller.join(5)
        red = [body for status, body in ready_log if status == 503]
        assert red, f"/readyz never went red during the failover ({recovered_in:.1f}s)"
        assert any("sentinel" in body.get("reason", "") for body in red), red[-3:]
        assert ready_log[-1][0] == 200
    finally:
        ws.close()
        reader.close()


def test_a_paused_primary_is_left_for_the_promoted_replica(setup, heralds):
    """SIGSTOP: the old master's sockets stay open and silent. Nothing waits past a deadline:
    publishes answer (503 at worst) within the 5 s reply timeout, and the links move once the
    sentinels promote the replica."""
    h = heralds(redis_url=setup.url())
    channel = unique("ch")
    ws = open_subscriber(h, channels=[channel])
    try:
        setup.primary.proc.send_signal(signal.SIGSTOP)
        try:
            outcomes = []
            deadline = time.monotonic() + FAILOVER_TIMEOUT
            while time.monotonic() < deadline:
                started = time.monotonic()
                status, body = publish_status(h, channel, "during", timeout=10)
                assert time.monotonic() - started < 7, f"a publish waited {time.monotonic() - started:.1f}s"
                outcomes.append(status)
                if status == 200 and role(setup.replica) == "master":
                    break
                assert status in (200, 503), body
                time.sleep(0.1)
            assert outcomes[-1] == 200, outcomes
            gap, _ = next_of_type(ws, "gap")
            assert gap["channel"] == channel
            assert setup.replica.cli("PUBSUB", "NUMSUB", channel).split()[-1] != "0"
        finally:
            setup.primary.proc.send_signal(signal.SIGCONT)
    finally:
        ws.close()


def test_sentinel_failover_command_moves_links_off_the_demoted_master(setup, heralds):
    """A graceful switch: the old master stays up (the sentinels demote it only later), so
    nothing fails on Herald's links; the +switch-master announcement moves them."""
    h = heralds(redis_url=setup.url())
    channel, stream = unique("ch"), unique("st")
    ws = open_subscriber(h, channels=[channel])
    try:
        assert append(h, stream, {"n": "1"})[0] == 200
        setup.primary.cli("WAIT", "1", "2000")
        assert "OK" in setup.sentinels[0].cli("SENTINEL", "FAILOVER", MASTER)
        wait_until(lambda: setup.master_port() == setup.replica.port, timeout=FAILOVER_TIMEOUT,
                   interval=0.02, what="the sentinels to promote the replica")
        # Within a few seconds of the switch, the subscriber is live on the new master (a gap
        # notice first) and appends land there, not on the old master.
        gap, _ = next_of_type(ws, "gap", timeout=MOVE_DEADLINE)
        assert gap["channel"] == channel
        status, second = append(h, stream, {"n": "2"})
        assert status == 200, second
        assert setup.replica.cli("XLEN", stream).strip() == "2"
        setup.replica.cli("PUBLISH", channel, "from-new-master")
        msg, _ = next_of_type(ws, "message")
        assert msg["data"] == "from-new-master"
        wait_until(lambda: readyz(h)[0] == 200, timeout=10, what="/readyz green")
    finally:
        ws.close()


def test_readonly_from_a_demoted_master_moves_the_links(setup, heralds, fakes):
    """A sentinel still names the old master after it was demoted (no +switch-master comes):
    the READONLY answer to an append makes Herald ask again and move."""
    fake = fakes(master_port=setup.primary.port)
    h = heralds(redis_url=f"redis+sentinel://127.0.0.1:{fake.port}/{MASTER}")
    stream = unique("st")
    assert append(h, stream, {"n": "1"})[0] == 200
    # Demote by hand (the real sentinels are told nothing: stop them first).
    for s in setup.sentinels:
        stop_process(s.proc)
    setup.replica.cli("REPLICAOF", "NO", "ONE")
    setup.primary.cli("REPLICAOF", "127.0.0.1", str(setup.replica.port))
    wait_until(lambda: role(setup.primary) == "slave", timeout=10, what="the demotion")
    fake.master = setup.replica.port
    # The write the demoted master refuses is a moment's unavailability, not an error.
    status, body = append(h, stream, {"n": "2"})
    assert status == 503 and body["error"] == "redis_unavailable" and "READONLY" in body["message"], (status, body)
    wait_until(lambda: append(h, stream, {"n": "3"})[0] == 200, timeout=10,
               what="appends on the new master after READONLY")
    assert role(setup.replica) == "master"


# --------------------------------------------------------------------------- sentinels that fail

def test_a_dead_sentinel_is_skipped_and_the_watch_moves_on(setup, heralds):
    dead = free_port()
    url = f"redis+sentinel://127.0.0.1:{dead}," + ",".join(f"127.0.0.1:{s.port}" for s in setup.sentinels) + f"/{MASTER}"
    h = heralds(redis_url=url)
    channel = unique("ch")
    ws = open_subscriber(h, channels=[channel])
    try:
        assert publish(h, channel, "x")["receivers"] >= 1
        # The first live sentinel (the one watched for +switch-master) dies; the watch moves
        # to the next, and a failover ordered through it is followed within seconds.
        stop_process(setup.sentinels[0].proc)
        time.sleep(2)
        assert "OK" in setup.sentinels[1].cli("SENTINEL", "FAILOVER", MASTER)
        wait_until(lambda: setup.master_port(via=setup.sentinels[1]) == setup.replica.port,
                   timeout=FAILOVER_TIMEOUT, interval=0.02, what="the promotion")
        gap, _ = next_of_type(ws, "gap", timeout=MOVE_DEADLINE)
        assert gap["channel"] == channel
        wait_until(lambda: publish(h, channel, "y")["receivers"] >= 1, timeout=10,
                   what="the subscription on the new master")
        assert setup.replica.cli("PUBSUB", "NUMSUB", channel).split()[-1] != "0"
    finally:
        ws.close()


def test_a_sentinel_naming_a_replica_is_not_believed(setup, heralds, fakes):
    fake = fakes(master_port=setup.replica.port)
    h = heralds(redis_url=f"redis+sentinel://127.0.0.1:{fake.port}/{MASTER}", wait_ready=False)
    wait_until(lambda: fake.asked >= 2, timeout=10, what="Herald to ask the fake sentinel (twice)")
    status, body = wait_until(lambda: (lambda r: r if "not a master" in r[1].get("reason", "") else None)(readyz(h)),
                              timeout=10, what="the ROLE refusal on /readyz")
    assert status == 503, body
    code, answer = publish_status(h, unique("ch"), "x")
    assert code == 503 and answer["error"] == "redis_unavailable"
    # No link of Herald's (unnamed clients: the sentinels name theirs; flags=M is the
    # replication link from the primary) got past ROLE.
    herald_clients = [line for line in setup.replica.cli("CLIENT", "LIST").splitlines()
                      if " name= " in line and "cmd=client|list" not in line and " flags=M " not in line]
    assert all("cmd=role" in line and " sub=0 " in line for line in herald_clients), herald_clients
    # The sentinel comes to its senses: Herald follows.
    fake.master = setup.primary.port
    wait_until(lambda: readyz(h)[0] == 200, timeout=10, what="/readyz green")
    assert publish_status(h, unique("ch"), "x")[0] == 200


def test_a_silent_sentinel_is_given_up_within_the_deadline(setup, heralds, fakes):
    """A sentinel that accepts and never answers: asked first, it is given up after 1 s for
    the next; watched first, its silence (no answer to SUBSCRIBE) moves the watch on, so a
    later switch is still followed at once."""
    silent = fakes(silent=True)
    url = f"redis+sentinel://127.0.0.1:{silent.port},127.0.0.1:{setup.sentinels[1].port}/{MASTER}"
    started = time.monotonic()
    h = heralds(redis_url=url, wait_ready=False)
    wait_until(lambda: readyz(h)[0] == 200, timeout=10, what="/readyz green past a silent sentinel")
    # One deadline (1 s) for the silent one, then the next answers at once.
    assert time.monotonic() - started < 8
    assert silent.conns, "the silent sentinel was asked first"
    channel = unique("ch")
    ws = open_subscriber(h, channels=[channel])
    try:
        time.sleep(1.5)  # the watch gives the silent sentinel up
        assert "OK" in setup.sentinels[1].cli("SENTINEL", "FAILOVER", MASTER)
        wait_until(lambda: setup.master_port() == setup.replica.port, timeout=FAILOVER_TIMEOUT,
                   interval=0.02, what="the promotion")
        gap, _ = next_of_type(ws, "gap", timeout=MOVE_DEADLINE)
        assert gap["channel"] == channel
    finally:
        ws.close()


def test_a_named_master_that_never_answers_is_given_up(setup, heralds, fakes):
    """The node a sentinel names accepts and never answers ROLE: refused after 1 s."""
    mute_master = fakes(silent=True)
    fake = fakes(master_port=mute_master.port)
    h = heralds(redis_url=f"redis+sentinel://127.0.0.1:{fake.port}/{MASTER}", wait_ready=False)
    status, body = wait_until(
        lambda: (lambda r: r if "no answer within 1000 ms" in r[1].get("reason", "") else None)(readyz(h)),
        timeout=10, what="the ROLE deadline on /readyz")
    assert status == 503 and str(mute_master.port) in body["reason"], body
    code, answer = publish_status(h, unique("ch"), "x", timeout=5)
    assert code == 503 and answer["error"] == "redis_unavailable"
    fake.master = setup.primary.port
    wait_until(lambda: readyz(h)[0] == 200, timeout=10, what="/readyz green")


def test_no_sentinel_at_start_then_one_comes_up(setup, heralds):
    port = free_port()
    h = heralds(redis_url=f"redis+sentinel://127.0.0.1:{port}/{MASTER}", wait_ready=False)
    wait_until(lambda: http("GET", h.base_url + "/healthz", timeout=2)[0] == 200, timeout=10,
               what="Herald up without any sentinel")
    status, body = wait_until(lambda: (lambda r: r if "no sentinel answered" in r[1].get("reason", "") else None)(readyz(h)),
                              timeout=10, what="a reason on /readyz")
    assert status == 503
    code, answer = publish_status(h, unique("ch"), "x")
    assert code == 503 and answer["error"] == "redis_unavailable"
    late = launch_sentinel(setup.primary.port, setup.dir, port=port)
    setup.sentinels.append(late)
    wait_until(lambda: readyz(h)[0] == 200, timeout=15, what="/readyz green once a sentinel answers")
    assert publish_status(h, unique("ch"), "x")[0] == 200
