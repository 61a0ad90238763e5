#!/usr/bin/env python3
"""Instructions per publish and per WebSocket delivery of Herald binaries, under callgrind.

    scripts/bench/instructions.py BIN [BIN ...] [--publishes 5000] [--subscribers 200] [--messages 100]

Wall-clock figures on a shared 2-core machine move by ±10 % between identical runs; counted
instructions move by well under 1 %, so this is the comparison to use when a change is expected
to cost a few percent. Each binary runs under `valgrind --tool=callgrind` with one loop against
a private redis-server. Publish: 16 keep-alive connections, one request in flight each (32-byte
bodies), counted between two `callgrind_control -d` dumps after a warm-up. Fan-out: N raw
WebSocket subscribers of one channel, M publishes of 100 bytes, counted until every subscriber
has every frame. User-space instructions only (Herald, the Swift runtime, libc, hiredis); the
kernel's share (most of the CPU on loopback, see BENCHMARKS.md) is not counted. The binary is
copied without its DWARF (`strip -g`: valgrind cannot read Swift's), keeping symbols, so
`callgrind_annotate` on the kept dump files names functions. Everything is on 127.0.0.1 and
stopped at the end.
"""
import argparse
import base64
import glob
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


REQUEST = b"POST /publish/bench HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n" + b"x" * 32


def publish_load(port, count, connections=16):
    """`count` publishes over `connections` keep-alive connections, one in flight on each."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    sel = selectors.DefaultSelector()
    sent = done = 0
    pending = {}
    for s in socks:
        if sent < count:
            s.sendall(REQUEST)
            sent += 1
        sel.register(s, selectors.EVENT_READ)
        pending[s] = b""
    while done < count:
        for key, _ in sel.select():
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise RuntimeError("Herald closed a publishing connection")
            pending[s] += data
            while (end := pending[s].find(b"\r\n\r\n")) >= 0:
                head = pending[s][:end].decode()
                if not head.startswith("HTTP/1.1 200"):
                    raise RuntimeError(head)
                length = int(re.search(r"(?i)content-length: (\d+)", head).group(1))
                if len(pending[s]) < end + 4 + length:
                    break
                pending[s] = pending[s][end + 4 + length:]
                done += 1
                if sent < count:
                    s.sendall(REQUEST)
                    sent += 1
    for s in socks:
        s.close()


def subscriber(port):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /subscribe?channel=fan HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    if not data.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(data.decode(errors="replace"))
    return s, len(data.split(b"\r\n\r\n", 1)[1])


def post(port, body, count):
    c = socket.create_connection(("127.0.0.1", port))
    request = b"POST /publish/fan HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for _ in range(count):
        c.sendall(request)
        data = b""
        while not (b"\r\n\r\n" in data and data.endswith(b"}")):
            data += c.recv(4096)
    c.close()


def drain(received, want, timeout=900):
    """Reads every subscriber until each has `want` bytes (the subscribers never send)."""
    sel = selectors.DefaultSelector()
    for s in received:
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while any(n < want for n in received.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("subscribers did not get every frame")
        for key, _ in sel.select(5):
            data = key.fileobj.recv(1 << 20)
            if not data:
                raise RuntimeError("Herald closed a subscriber")
            received[key.fileobj] += len(data)
    sel.close()


class Run:
    """One Herald under callgrind with its own redis-server."""

    def __init__(self, binary, work):
        self.work = work
        self.binary = os.path.join(work, "herald")
        subprocess.run(["strip", "-g", "-o", self.binary, binary], check=True)
        self.redis_port, self.port = free_port(), free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, cwd=work)
        wait_port(self.redis_port)
        self.out = os.path.join(work, "callgrind.out")
        # No pings: the raw subscribers never answer one, and valgrind makes a run long.
        self.herald = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}", self.binary,
             "--port", str(self.port), "--redis", f"redis://127.0.0.1:{self.redis_port}", "--loops", "1",
             "--ping-interval", "3600"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "valgrind.log"), "w"), cwd=work)
        wait_port(self.port)

    def dump(self):
        subprocess.run(["callgrind_control", "-d", str(self.herald.pid)], capture_output=True, check=True)

    def stop(self):
        self.herald.terminate()
        self.herald.wait(120)
        self.redis.terminate()
        self.redis.wait()

    def measured(self):
        """Instructions between the first and the second dump."""
        dumps = sorted(glob.glob(self.out + ".*"), key=lambda p: int(p.rsplit(".", 1)[1].split("-")[0]))
        with open(dumps[1]) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1]), dumps[1]
        raise RuntimeError(f"no totals in {dumps[1]}")


def per_publish(binary, count):
    run = Run(binary, tempfile.mkdtemp(prefix="herald-ir-"))
    try:
        publish_load(run.port, 500)
        run.dump()
        publish_load(run.port, count)
        run.dump()
        time.sleep(1)
    finally:
        run.stop()
    total, dump = run.measured()
    return total / count, dump


def per_delivery(binary, subscribers, messages):
    run = Run(binary, tempfile.mkdtemp(prefix="herald-ir-"))
    try:
        socks = dict(subscriber(run.port) for _ in range(subscribers))
        time.sleep(2)  # every subscription confirmed by Redis
        body = b"x" * 100
        post(run.port, body, 1)
        first = next(iter(socks))
        first.settimeout(120)
        data = first.recv(4096)
        length = data[1] & 127
        frame = 2 + length if length < 126 else 4 + int.from_bytes(data[2:4], "big")
        socks[first] += len(data)
        drain(socks, frame)
        run.dump()
        post(run.port, body, messages)
        drain(socks, frame * (messages + 1))
        run.dump()
        time.sleep(1)
    finally:
        run.stop()
    total, dump = run.measured()
    return total / (subscribers * messages), dump


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--publishes", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "redis-server", "strip"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install valgrind redis-server binutils)")
    results = []
    for binary in args.binaries:
        publish, pdump = per_publish(binary, args.publishes)
        delivery, ddump = per_delivery(binary, args.subscribers, args.messages)
        results.append((binary, publish, delivery))
        print(f"{binary}: {publish:,.0f} instructions per publish ({pdump}); "
              f"{delivery:,.0f} per delivery ({ddump})", flush=True)
    if len(results) > 1:
        base = results[0]
        for binary, publish, delivery in results[1:]:
            print(f"{binary} / {base[0]}: publish {publish / base[1]:.3f}x, delivery {delivery / base[2]:.3f}x")


if __name__ == "__main__":
    main()
