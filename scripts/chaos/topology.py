"""The processes of a chaos run: a Redis primary and replica, three sentinels, two Heralds.

Everything listens on free loopback ports and writes its files under one run directory
(.build/chaos/run/ by default), so the logs of a failed run stay there to be read. Every
process is started here and stopped here, by its own PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
MASTER_NAME = "chaos"


def log(msg):
    print(f"chaos: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp_command(port, *args, timeout=3.0):
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
                return f.read(n + 2)[:-2].decode("utf-8", "replace")
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise RuntimeError(f"unexpected RESP {line!r}")

        return read()


def http_status(port, path, timeout=2.0):
    """Status of one GET on a fresh connection; 0 when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    except (OSError, ValueError, IndexError):
        return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop_process(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


class RedisNode:
    """One redis-server (primary or replica), restartable on the same port and data dir."""

    def __init__(self, name, workdir: Path, port, replica_of=None, replica_priority=100):
        self.name = name
        self.port = port
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.replica_of = replica_of
        self.replica_priority = replica_priority
        self.proc = None
        self.paused = False

    def start(self, replica_of=None):
        if replica_of is not None:
            self.replica_of = replica_of
        # appendfsync always: Redis writes and fsyncs the AOF before it answers a write, so
        # an acknowledged entry survives a SIGKILL of the process.
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--loglevel", "notice",
                "--replica-priority", str(self.replica_priority),
                "--logfile", str(self.dir / "redis.log")]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        self.paused = False
        wait_for(lambda: resp_command(self.port, "PING", timeout=1) == "PONG", 15,
                 f"redis {self.name} on {self.port}")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self):
        stop_process(self.proc)


class Sentinel:
    def __init__(self, name, workdir: Path, port, master_port, down_after_ms):
        self.name = name
        self.port = port
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "sentinel.conf"
        # Sentinel rewrites its config file as it learns the topology: each one its own file.
        self.conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"logfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        wait_for(lambda: resp_command(self.port, "PING", timeout=1) == "PONG", 15,
                 f"sentinel {self.name} on {self.port}")

    def master(self):
        reply = resp_command(self.port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME)
        return int(reply[1]) if reply else None

    def stop(self):
        stop_process(self.proc)


class Herald:
    def __init__(self, name, binary: Path, workdir: Path, port, redis_url, loops):
        self.name = name
        self.binary = binary
        self.port = port
        self.redis_url = redis_url
        self.loops = loops
        self.logfile = workdir / f"{name}.log"
        self.proc = None
        self.baseline = None  # (fds, rss KiB) when ready with no client, per start
        self.starts = 0

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        # Short leases and claims so that items a killed Herald held come back within the run.
        args = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
                "--redis", self.redis_url, "--loops", str(self.loops),
                "--public", str(REPO / "public"), "--log-level", "info",
                "--queue-lease", "3", "--claim-idle", "3", "--blocking-idle", "2",
                "--ping-interval", "10"]
        out = open(self.logfile, "ab")
        out.write(f"---- start {self.starts + 1}: {' '.join(args)}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=REPO)
        self.starts += 1

    def wait_ready(self, timeout=20, ready=True):
        def ok():
            if self.proc.poll() is not None:
                raise SystemExit(f"chaos: {self.name} exited with {self.proc.returncode}; "
                                 f"see {self.logfile}")
            if http_status(self.port, "/healthz") != 200:
                return False
            return not ready or http_status(self.port, "/readyz") == 200
        wait_for(ok, timeout, f"{self.name} ready on {self.port}")

    def measure(self):
        return fd_count(self.proc.pid), rss_kib(self.proc.pid)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self):
        stop_process(self.proc)


class Topology:
    """Primary r1 + replica r2, sentinels s1..s3, Heralds A and B."""

    def __init__(self, workdir: Path, herald_bin: Path, sentinel_mode: bool, loops=2):
        self.workdir = workdir
        self.sentinel_mode = sentinel_mode
        p1, p2 = free_port(), free_port()
        # Without sentinel support in Herald, Herald talks to r1 only: the replica must never
        # be promoted (priority 0), else a pause of r1 would leave Herald on a demoted node.
        priority = 100 if sentinel_mode else 0
        self.nodes = {"r1": RedisNode("r1", workdir, p1),
                      "r2": RedisNode("r2", workdir, p2, replica_of=p1,
                                      replica_priority=priority)}
        self.sentinels = [Sentinel(f"s{i}", workdir, free_port(), p1, 1000) for i in (1, 2, 3)]
        if sentinel_mode:
            hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
            url = f"redis+sentinel://{hosts}/{MASTER_NAME}"
        else:
            url = f"redis://127.0.0.1:{p1}"
        self.redis_url = url
        self.heralds = [Herald(n, herald_bin, workdir, free_port(), url, loops)
                        for n in ("herald-a", "herald-b")]

    def start(self):
        self.nodes["r1"].start()
        self.nodes["r2"].start()
        wait_for(lambda: "master_link_status:up" in resp_command(
            self.nodes["r2"].port, "INFO", "replication"), 15, "replica in sync")
        for s in self.sentinels:
            s.start()
        for h in self.heralds:
            h.start()
        for h in self.heralds:
            h.wait_ready()
            h.baseline = h.measure()

    def master_node(self) -> RedisNode:
        """The node that is primary now: r1 without sentinels, else what sentinels say."""
        if not self.sentinel_mode:
            return self.nodes["r1"]
        for s in self.sentinels:
            try:
                port = s.master()
            except (OSError, RuntimeError):
                continue
            for node in self.nodes.values():
                if node.port == port:
                    return node
        return self.nodes["r1"]

    def other_node(self, node):
        return next(n for n in self.nodes.values() if n is not node)

    def stop(self):
        for h in self.heralds:
            h.stop()
        for s in self.sentinels:
            s.stop()
        for n in self.nodes.values():
            n.stop()


def herald_supports_sentinel(herald_bin: Path) -> bool:
    try:
        out = subprocess.run([str(herald_bin), "--help"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        sys.exit(f"chaos: cannot run {herald_bin} --help: {exc}")
    return "sentinel" in (out.stdout + out.stderr).lower()
