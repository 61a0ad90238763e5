#!/usr/bin/env python3
"""Side-by-side publish benchmark of two Herald binaries (before/after a change), with Webdis
and redis-benchmark in the same rounds for the ratios of issue 5.

    scripts/bench/ab.py BEFORE_BIN AFTER_BIN [--rounds 5] [--seconds 4] [--connections 64]

One private redis-server; both Heralds (default loops) and Webdis stay up for the whole run;
each round measures every target once with `wrk -t1 -cN` (32-byte POST bodies; Webdis takes
`GET /PUBLISH/ch/msg`), then `redis-benchmark -c N PUBLISH`, in an order that rotates between
rounds so a load spike does not always hit the same target. Prints each round, then the median
req/s and the gateway's CPU microseconds per request (utime+stime from /proc), and the ratios.
Everything listens on 127.0.0.1 and is stopped at the end.
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, connections, seconds, script):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    if script:
        argv[1:1] = ["-s", script]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error answers")
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="herald-ab-")
    procs = []

    def start(argv, port):
        log = open(os.path.join(work, f"{port}.log"), "wb")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        wait_port(port)
        return procs[-1].pid

    try:
        redis_port = free_port()
        start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
              redis_port)
        redis = f"redis://127.0.0.1:{redis_port}"
        targets = {}
        for name, binary in (("before", args.before), ("after", args.after)):
            port = free_port()
            pid = start([binary, "--host", "127.0.0.1", "--port", str(port), "--redis", redis, "--log-level", "error"], port)
            targets[name] = (pid, f"http://127.0.0.1:{port}/publish/ab-{name}")
        webdis_port = free_port()
        conf = os.path.join(work, "webdis.json")
        with open(conf, "w") as f:
            json.dump({"redis_host": "127.0.0.1", "redis_port": redis_port, "http_host": "127.0.0.1",
                       "http_port": webdis_port, "threads": 2, "pool_size": 20, "daemonize": False,
                       "database": 0, "verbosity": 1, "logfile": os.path.join(work, "webdis-own.log")}, f)
        webdis_pid = start(["webdis", conf], webdis_port)
        targets["webdis"] = (webdis_pid, f"http://127.0.0.1:{webdis_port}/PUBLISH/ab-webdis/{'x' * 32}")
        lua = os.path.join(work, "post32.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = string.rep("x", 32)\n')

        rates = {name: [] for name in [*targets, "redis-benchmark"]}
        cpu = {name: [] for name in targets}
        order = [*targets, "redis-benchmark"]
        for round_ in range(args.rounds):
            line = []
            for name in order[round_ % len(order):] + order[:round_ % len(order)]:
                if name == "redis-benchmark":
                    n = 40_000 * args.seconds
                    out = subprocess.run(["redis-benchmark", "-p", str(redis_port), "-c", str(args.connections), "-n", str(n),
                                          "--csv", "PUBLISH", "ab-rb", "x" * 32], capture_output=True, text=True, check=True).stdout
                    rate = float(out.strip().splitlines()[-1].split(",")[1].strip('"'))
                    rates[name].append(rate)
                    line.append(f"{name} {rate:,.0f}/s")
                    continue
                pid, url = targets[name]
                c0 = cpu_seconds(pid)
                rate = wrk(url, args.connections, args.seconds, None if name == "webdis" else lua)
                used = cpu_seconds(pid) - c0
                rates[name].append(rate)
                cpu[name].append(used * 1e6 / (rate * args.seconds))
                line.append(f"{name} {rate:,.0f}/s {cpu[name][-1]:.1f}µs")
                time.sleep(0.3)
            print(f"round {round_ + 1}: " + " | ".join(line), flush=True)

        med = {name: statistics.median(values) for name, values in rates.items()}
        print(f"\nmedians over {args.rounds} rounds, wrk -t1 -c{args.connections} -d{args.seconds}s, "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}:")
        for name in rates:
            extra = f", {statistics.median(cpu[name]):.1f} µs gateway CPU per request" if name in cpu else ""
            print(f"  {name:16} {med[name]:>10,.0f} req/s{extra}")
        print(f"  after ÷ before          {med['after'] / med['before']:.2f}×"
              f" (CPU per request {statistics.median(cpu['after']) / statistics.median(cpu['before']):.2f}×)")
        print(f"  after ÷ webdis          {med['after'] / med['webdis']:.2f}×")
        print(f"  after ÷ redis-benchmark {med['after'] / med['redis-benchmark']:.2f}×")
        return 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
