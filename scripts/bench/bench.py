#!/usr/bin/env python3
"""Herald's side-by-side benchmark (`make bench`, via scripts/bench/run.sh).

Starts one private redis-server and, on free loopback ports, Herald (release, its default loop
count unless HERALD_LOOPS is set),
Webdis and Nchan (configs from shared/docs/competitors.md), all on that Redis; runs every
scenario against each gateway in turn, BENCH_RUNS times (interleaved, so drifting machine load
spreads over all three); prints one table (min/median/max, Herald ÷ each competitor) and writes
bench-results/: results.json (every run's figures), table.md, throughput.{png,svg} and
latency-cdf.{png,svg}. Stops everything it started, by PID.
"""
import atexit
import csv
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "bench-results")
WORK = os.path.join(OUT, "work")

QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = int(os.environ.get("BENCH_RUNS", "1" if QUICK else "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "0.1" if QUICK else "1"))
DURATION = float(os.environ.get("BENCH_DURATION", "2" if QUICK else "5"))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
HERALD_BIN = os.path.abspath(os.environ.get("HERALD_BIN", os.path.join(ROOT, ".build-bench/release/herald")))
BENCH_BIN = os.path.abspath(os.environ.get("HERALD_BENCH_BIN", os.path.join(ROOT, ".build-bench/release/herald-bench")))
GATEWAYS = ["herald", "webdis", "nchan"]
# One bench process holds at most this many subscribers (the 20,000-file limit, with room).
PER_PROCESS = 9500
# Webdis opens one Redis connection per subscriber: past this it hits the file limit.
WEBDIS_MAX_SUBSCRIBERS = 8000
# Recorded instead of figures for Webdis past WEBDIS_MAX_SUBSCRIBERS.
WEBDIS_SKIPPED = {"skipped": "one Redis connection per subscriber: past the 20,000-file limit"}


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def scaled(n):
    return max(10, int(n * SCALE))


class Processes:
    """Every process this script starts, stopped by PID (never by name) at exit."""

    def __init__(self):
        self.procs = {}
        atexit.register(self.stop_all)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        self.stop_all()
        sys.exit(128 + signum)

    def start(self, name, argv, **kwargs):
        logfile = open(os.path.join(WORK, f"{name}.log"), "ab")
        proc = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
        self.procs[name] = proc
        return proc

    def stop(self, name):
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self):
        for name in reversed(list(self.procs)):  # gateways before the Redis they use
            self.stop(name)


class Stack:
    """Redis and the three gateways on free loopback ports; Redis also listens for TLS, for a
    second Herald (herald-tls) that reaches it over rediss://."""

    def __init__(self, procs):
        self.procs = procs
        self.redis_port = free_port()
        self.redis_tls_port = free_port()
        self.ports = {g: free_port() for g in GATEWAYS + ["herald-tls"]}
        self.tls = os.path.join(WORK, "tls")

    def make_certificates(self):
        """A CA and a certificate for 127.0.0.1 (EC P-256, as managed services commonly use)."""
        os.makedirs(self.tls, exist_ok=True)

        def openssl(*args):
            subprocess.run(["openssl", *args], cwd=self.tls, check=True, capture_output=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
        openssl("req", *ec, "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=127.0.0.1")
        with open(os.path.join(self.tls, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "redis.pem", "-days", "2", "-extfile", "san.ext")

    def start_redis(self):
        self.make_certificates()
        self.procs.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--maxclients", "19000",
                                   "--loglevel", "warning", "--tls-port", str(self.redis_tls_port),
                                   "--tls-cert-file", os.path.join(self.tls, "redis.pem"),
                                   "--tls-key-file", os.path.join(self.tls, "redis.key"),
                                   "--tls-ca-cert-file", os.path.join(self.tls, "ca.pem"),
                                   "--tls-auth-clients", "no"])
        wait_port(self.redis_port)
        wait_port(self.redis_tls_port)

    def redis_cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args],
                              capture_output=True, text=True, timeout=30).stdout

    def redis_pid(self):
        return self.procs.procs["redis"].pid

    def start(self, gateway):
        port = self.ports[gateway]
        if gateway == "herald-tls":
            self.procs.start("herald-tls", [HERALD_BIN, "--port", str(port), "--log-level", "warning",
                                            "--redis", f"rediss://127.0.0.1:{self.redis_tls_port}",
                                            "--redis-ca", os.path.join(self.tls, "ca.pem")], cwd=ROOT)
        elif gateway == "herald":
            # Loops: Herald's own default (one per core, minus one for a Redis on this host), or
            # HERALD_LOOPS from the environment, which Herald reads itself.
            argv = [HERALD_BIN, "--port", str(port), "--log-level", "warning",
                    "--redis", f"redis://127.0.0.1:{self.redis_port}"]
            # Herald caps client connections (default 10,000); the 19,000 scenario needs more.
            if "--max-connections" in version([HERALD_BIN, "--help"], r"(--max-connections)"):
                argv += ["--max-connections", "19500"]
            self.procs.start("herald", argv, cwd=ROOT)
        elif gateway == "webdis":
            conf = os.path.join(WORK, "webdis.json")
            with open(conf, "w") as f:
                json.dump({"redis_host": "127.0.0.1", "redis_port": self.redis_port, "http_host": "127.0.0.1",
                           "http_port": port, "threads": 2, "pool_size": 20, "daemonize": False,
                           "websockets": True, "database": 0, "verbosity": 1,
                           "logfile": os.path.join(WORK, "webdis-own.log")}, f)
            self.procs.start("webdis", ["webdis", conf])
        else:
            prefix = os.path.join(WORK, "nginx")
            os.makedirs(os.path.join(prefix, "body"), exist_ok=True)
            conf = os.path.join(prefix, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 19000; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  upstream redis_server {{ nchan_redis_server redis://127.0.0.1:{self.redis_port}; }}
  server {{
    listen 127.0.0.1:{port};
    location = /pub  {{ nchan_publisher;  nchan_channel_id $arg_chan; nchan_redis_pass redis_server; }}
    location = /sub  {{ nchan_subscriber; nchan_channel_id $arg_chan; nchan_redis_pass redis_server; }}
  }}
}}
""")
            self.procs.start("nchan", ["nginx", "-c", conf, "-p", prefix, "-e", os.path.join(prefix, "error.log")])
        wait_port(port)
        time.sleep(0.5)

    def restart(self, gateway):
        self.procs.stop(gateway)
        time.sleep(0.3)
        self.start(gateway)

    def herald_loops(self):
        """Herald's event-loop threads (named herald-loop-N), counted in /proc."""
        task = f"/proc/{self.procs.procs['herald'].pid}/task"
        for _ in range(50):
            names = []
            for tid in os.listdir(task):
                with open(f"{task}/{tid}/comm") as f:
                    names.append(f.read().strip())
            loops = sum(1 for name in names if name.startswith("herald-loop-"))
            if loops:
                return loops
            time.sleep(0.1)
        return 0

    def pids(self, gateway):
        """The processes doing the gateway's work: nginx's workers, not its master."""
        pid = self.procs.procs[gateway].pid
        if gateway != "nchan":
            return [pid]
        for _ in range(50):
            out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
            if len(out) >= 2:
                return [int(p) for p in out]
            time.sleep(0.1)
        return [pid]


def version(argv, pattern=None):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip()
    except OSError:
        return "missing"
    if pattern:
        m = re.search(pattern, text)
        return m.group(1) if m else text.splitlines()[0]
    return text.splitlines()[0] if text else "?"


def dpkg_version(package):
    return version(["dpkg-query", "-W", "-f=${Version}", package])


# ---------------------------------------------------------------------------------------------
# Load generators


def herald_bench(stack, gateway, extra, timeout=300):
    argv = [BENCH_BIN, "--target", gateway, "--port", str(stack.ports[gateway]), "--json", "--histogram",
            "--pid", ",".join(map(str, stack.pids(gateway))), "--redis-pid", str(stack.redis_pid()),
            "--redis", f"127.0.0.1:{stack.redis_port}", *map(str, extra)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"herald-bench failed ({out.returncode}): {out.stderr[-2000:]}")
    with open(os.path.join(WORK, "herald-bench.log"), "a") as f:
        f.write(" ".join(argv) + "\n" + out.stderr + "\n")
    return json.loads(lines[-1])


def herald_bench_multi(stack, gateway, subscribers, publisher_extra, channel):
    """Subscribers spread over several bench processes (the 20,000-file limit), then one
    publisher process; the subscribers report after SIGUSR1 once the publisher is done."""
    nproc = max(1, math.ceil(subscribers / PER_PROCESS))
    base = [BENCH_BIN, "--target", gateway, "--port", str(stack.ports[gateway]), "--json", "--histogram",
            "--channel", channel]
    subs = []
    for i in range(nproc):
        count = subscribers // nproc + (1 if i < subscribers % nproc else 0)
        offset = sum(subscribers // nproc + (1 if j < subscribers % nproc else 0) for j in range(i))
        ready = os.path.join(WORK, f"ready-{uuid.uuid4().hex}")
        argv = base + ["--subscribers", count, "--offset", offset, "--wait-signal", "--ready-file", ready,
                       "--connect-timeout", 120]
        p = subprocess.Popen(list(map(str, argv)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        subs.append((p, ready))
    deadline = time.time() + 180
    while time.time() < deadline and not all(os.path.exists(r) or p.poll() is not None for p, r in subs):
        time.sleep(0.1)
    publisher = herald_bench(stack, gateway, ["--channel", channel, *publisher_extra])
    time.sleep(2)
    results = []
    for p, ready in subs:
        if p.poll() is None:
            p.send_signal(signal.SIGUSR1)
        out, err = p.communicate(timeout=60)
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if lines:
            results.append(json.loads(lines[-1]))
        if os.path.exists(ready):
            os.remove(ready)
    merged = dict(publisher)
    merged["subscribers_requested"] = subscribers
    for key in ("subscribed", "connect_failed", "disconnected", "received", "untimed", "stale", "dropped_notices"):
        merged[key] = sum(r.get(key, 0) for r in results)
    merged["connect_seconds"] = max((r.get("connect_seconds", 0) for r in results), default=0)
    hist = merge_histograms([r.get("histogram") or [] for r in results])
    merged["histogram"] = hist
    merged["latency_ms"] = percentiles(hist)
    merged["expected"] = publisher["published"] * merged["subscribed"]
    merged["lost"] = merged["expected"] - (merged["received"] - merged["untimed"])
    if publisher.get("publish_seconds"):
        merged["deliveries_per_second"] = merged["received"] / publisher["publish_seconds"]
    if merged.get("gateway_cpu_seconds") and merged["received"]:
        merged["gateway_cpu_micros_per_message"] = merged["gateway_cpu_seconds"] * 1e6 / merged["received"]
    merged["processes"] = nproc
    return merged


def merge_histograms(lists):
    counts = {}
    for pairs in lists:
        for value, count in pairs:
            counts[value] = counts.get(value, 0) + count
    return sorted([v, c] for v, c in counts.items())


def percentiles(hist):
    total = sum(c for _, c in hist)
    if not total:
        return None
    out = {}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
        target = math.ceil(total * p / 100)
        seen = 0
        for value, count in hist:
            seen += count
            if seen >= target:
                out[name] = value / 1000
                break
    out["max"] = hist[-1][0] / 1000
    return out


def wrk(url, connections, lua=None):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(DURATION))}s", "--latency"]
    if lua:
        argv += ["-s", lua]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=DURATION + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99ms = None
    if p99:
        p99ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    with open(os.path.join(WORK, "wrk.log"), "a") as f:
        f.write(" ".join(argv + [url]) + "\n" + out + "\n")
    return {"requests_per_second": float(m.group(1)) if m else 0.0,
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sum(map(int, sock.groups())) if sock else 0,
            "p99_ms": p99ms}


def redis_benchmark(stack, connections, channel, tls=False):
    n = 20000 if QUICK else 300000
    target = ["-p", str(stack.redis_port)]
    if tls:
        target = ["-p", str(stack.redis_tls_port), "--tls", "--cacert", os.path.join(stack.tls, "ca.pem")]
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", *target, "-c", str(connections),
                          "-n", str(n), "--csv", "PUBLISH", channel, "x" * 32],
                         capture_output=True, text=True, timeout=300).stdout
    rows = list(csv.reader(io.StringIO(out)))
    for row in rows[1:]:
        if len(row) > 1:
            return {"requests_per_second": float(row[1])}
    return {"requests_per_second": 0.0}


# ---------------------------------------------------------------------------------------------
# Scenarios: each returns {gateway: figures} for one repetition.


def publish_scenario(connections):
    def run(stack, rep):
        results = {}
        lua = os.path.join(WORK, "post32.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = string.rep("x", 32)\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        channel = f"pub-{rep}-{uuid.uuid4().hex[:6]}"
        urls = {
            "herald": (f"http://127.0.0.1:{stack.ports['herald']}/publish/{channel}", lua),
            "webdis": (f"http://127.0.0.1:{stack.ports['webdis']}/PUBLISH/{channel}/{'x' * 32}", None),
            "nchan": (f"http://127.0.0.1:{stack.ports['nchan']}/pub?chan={channel}", lua),
        }
        for gateway in GATEWAYS:
            url, script = urls[gateway]
            pids = stack.pids(gateway)
            cpu0 = cpu_seconds(pids)
            results[gateway] = wrk(url, connections, script)
            results[gateway]["gateway_cpu_seconds"] = cpu_seconds(pids) - cpu0
            time.sleep(0.5)
        results["redis-benchmark"] = redis_benchmark(stack, connections, channel)
        return results
    return run


def publish_tls_scenario(connections):
    """Herald over TLS to Redis (rediss://) and Herald over plain TCP, measured back to back in
    each repetition on the same Redis; redis-benchmark over TLS is the ceiling."""
    def run(stack, rep):
        lua = os.path.join(WORK, "post32.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = string.rep("x", 32)\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        channel = f"pubtls-{rep}-{uuid.uuid4().hex[:6]}"
        results = {}
        order = [("herald", "herald-tls"), ("herald_plain", "herald")]
        for key, process in (order if rep % 2 == 0 else order[::-1]):
            pids = [stack.procs.procs[process].pid]
            cpu0 = cpu_seconds(pids)
            results[key] = wrk(f"http://127.0.0.1:{stack.ports[process]}/publish/{channel}", connections, lua)
            results[key]["gateway_cpu_seconds"] = cpu_seconds(pids) - cpu0
            time.sleep(0.5)
        results["redis-benchmark"] = redis_benchmark(stack, connections, channel, tls=True)
        return results
    return run


def tls_summary(all_results):
    """Herald's publish rate over TLS beside plain TCP, from the same repetitions."""
    runs = all_results.get("publish-c64-tls")
    if not runs:
        return ""
    lines = ["| publish, 64 connections | over TLS (rediss://) | plain TCP (redis://) | TLS ÷ plain | gateway CPU µs/publish, TLS / plain |",
             "|---|---|---|---|---|"]
    tls = [r["herald"]["requests_per_second"] for r in runs if "herald" in r]
    plain = [r["herald_plain"]["requests_per_second"] for r in runs if "herald_plain" in r]
    if not tls or not plain:
        return ""

    def micros(key):
        values = [r[key]["gateway_cpu_seconds"] * 1e6 / (r[key]["requests_per_second"] * max(1, int(DURATION)))
                  for r in runs if key in r and r[key]["requests_per_second"]]
        return statistics.median(values) if values else None
    t, p = statistics.median(tls), statistics.median(plain)
    lines.append(f"| Herald, medians of {len(tls)} | {fmt(t)} /s | {fmt(p)} /s | {t / p:.2f} | "
                 f"{fmt(micros('herald'))} / {fmt(micros('herald_plain'))} |")
    return "\n".join(lines)


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def fanout_scenario(subscribers, rate):
    def run(stack, rep):
        results = {}
        n = scaled(subscribers)
        for gateway in GATEWAYS:
            if gateway == "webdis" and n > WEBDIS_MAX_SUBSCRIBERS:
                results[gateway] = dict(WEBDIS_SKIPPED)
                continue
            channel = f"fan-{n}-{rate}-{rep}-{uuid.uuid4().hex[:6]}"
            extra = ["--channel", channel, "--subscribers", n, "--publishers", 1, "--duration", DURATION,
                     "--drain", 15, "--connect-timeout", 120]
            # Paced: one publisher at `rate`. Flat out: 4 publishers with 4 requests in flight
            # each, so the gateway (not one publisher's round trip) sets the pace.
            # Paced sends never wait for an answer (up to 8 in flight) so the pace holds even
            # when the round trip exceeds the interval.
            extra += ["--rate", rate, "--pipeline", 8] if rate else ["--publishers", 4, "--pipeline", 4]
            results[gateway] = herald_bench(stack, gateway, extra)
            time.sleep(1)
        return results
    return run


def compression_scenario(subscribers, rate, size):
    """Herald alone: one fan-out of `size`-byte JSON messages to subscribers that did not offer
    permessage-deflate (key "herald") and to ones that did ("herald_deflate"), back to back in
    each repetition, the order alternating, so the CPU and wire bytes per delivery compare."""
    def run(stack, rep):
        n = scaled(subscribers)
        results = {}
        order = [("herald", []), ("herald_deflate", ["--compression"])]
        for key, flags in (order if rep % 2 == 0 else order[::-1]):
            channel = f"deflate-{rep}-{uuid.uuid4().hex[:6]}"
            results[key] = herald_bench(stack, "herald", [
                "--channel", channel, "--subscribers", n, "--publishers", 1, "--rate", rate, "--pipeline", 8,
                "--duration", DURATION, "--drain", 15, "--connect-timeout", 120, "--size", size, "--payload", "json",
                *flags])
            time.sleep(1)
        return results
    return run


def compression_summary(all_results):
    """Uncompressed beside permessage-deflate for the same fan-out: medians, and their ratio."""
    runs = [r for r in all_results.get("fanout-1k-deflate", []) if "herald" in r and "herald_deflate" in r]
    if not runs:
        return ""
    lines = ["| fan-out of 1 KB JSON, 1,000 subscribers | uncompressed | permessage-deflate | deflate ÷ plain |",
             "|---|---|---|---|"]
    for key, label in (("wire_bytes_per_delivery", "wire bytes per delivery"),
                       ("gateway_cpu_micros_per_message", "gateway CPU µs per delivery"),
                       ("deliveries_per_second", "deliveries/s"),
                       ("latency_ms.p50", "latency p50 ms"), ("latency_ms.p99", "latency p99 ms"),
                       ("lost", "not delivered")):
        plain = [v for v in (metric(r["herald"], key) for r in runs) if v is not None]
        deflate = [v for v in (metric(r["herald_deflate"], key) for r in runs) if v is not None]
        if not plain or not deflate:
            continue
        p, d = statistics.median(plain), statistics.median(deflate)
        lines.append(f"| {label} | {fmt(p)} | {fmt(d)} | {d / p:.2f} |" if p else f"| {label} | {fmt(p)} | {fmt(d)} | |")
    return "\n".join(lines)


def idle_scenario(subscribers):
    def run(stack, rep):
        results = {}
        for gateway in GATEWAYS:
            n = scaled(subscribers)
            if gateway == "webdis":
                n = min(n, scaled(5000))
            stack.restart(gateway)  # a fresh process: RSS measured from its own baseline
            channel = f"idle-{rep}-{uuid.uuid4().hex[:6]}"
            results[gateway] = herald_bench(stack, gateway, ["--channel", channel, "--subscribers", n, "--hold", 3,
                                                             "--connect-timeout", 120])
            r = results[gateway]
            before, after = r.get("redis_clients_before"), r.get("redis_clients_subscribed")
            if before is not None and after is not None:
                r["redis_clients_added"] = after - before
            time.sleep(1)
        return results
    return run


def distinct_scenario(subscribers, rate):
    def run(stack, rep):
        results = {}
        n = scaled(subscribers)
        for gateway in GATEWAYS:
            if gateway == "webdis" and n > WEBDIS_MAX_SUBSCRIBERS:
                results[gateway] = dict(WEBDIS_SKIPPED)
                continue
            channel = f"dis-{rep}-{uuid.uuid4().hex[:6]}"
            results[gateway] = herald_bench(stack, gateway, [
                "--channel", channel, "--distinct", "--subscribers", n, "--publishers", 4, "--pipeline", 8, "--rate", rate,
                "--duration", DURATION, "--drain", 15, "--connect-timeout", 120])
            time.sleep(1)
        return results
    return run


def many_scenario(subscribers, rate):
    def run(stack, rep):
        results = {}
        n = scaled(subscribers)
        for gateway in ("herald", "nchan"):
            channel = f"many-{rep}-{uuid.uuid4().hex[:6]}"
            results[gateway] = herald_bench_multi(stack, gateway, n, [
                "--publishers", 1, "--pipeline", 8, "--rate", rate, "--duration", DURATION, "--drain", 5], channel)
            time.sleep(2)
        results["webdis"] = dict(WEBDIS_SKIPPED)
        return results
    return run


SCENARIOS = [
    # name, what, runner, metrics shown: (key, label, better)
    ("publish-c64", "publish, 64 connections, 32-byte messages (wrk -t1; redis-benchmark = ceiling)",
     publish_scenario(64), [("requests_per_second", "publishes/s", "higher")]),
    ("publish-c256", "publish, 256 connections, 32-byte messages",
     publish_scenario(256), [("requests_per_second", "publishes/s", "higher")]),
    ("publish-c64-tls", "publish, 64 connections, Herald to Redis over TLS (Herald column; redis-benchmark --tls)",
     publish_tls_scenario(64), [("requests_per_second", "publishes/s", "higher")]),
    ("fanout-1k-paced", "fan-out: 1,000 subscribers of one channel, 100 msg/s",
     fanout_scenario(1000, 100), None),
    ("fanout-1k-flat", "fan-out: 1,000 subscribers of one channel, flat out (4 publishers × 4 in flight)",
     fanout_scenario(1000, 0), None),
    ("fanout-10k-paced", "fan-out: 10,000 subscribers of one channel, 100 msg/s",
     fanout_scenario(10000, 100), None),
    ("fanout-10k-flat", "fan-out: 10,000 subscribers of one channel, flat out (4 publishers × 4 in flight)",
     fanout_scenario(10000, 0), None),
    ("fanout-1k-deflate", "fan-out of 1 KB JSON to 1,000 subscribers, 100 msg/s: plain vs permessage-deflate (Herald)",
     compression_scenario(1000, 100, 1024), None),
    ("idle-10k", "10,000 idle subscribed connections, fresh process (Webdis: 5,000)",
     idle_scenario(10000), [("rss_per_subscriber_kib", "RSS KiB per subscriber", "lower"),
                            ("redis_clients_added", "Redis connections added", "lower")]),
    ("distinct-10k", "10,000 subscribers on 10,000 distinct channels, 4 publishers, 2,000 msg/s spread",
     distinct_scenario(10000, 2000), None),
    ("ws-19k", "19,000 concurrent subscribers (2 bench processes), 20 msg/s",
     many_scenario(19000, 20), None),
]

# Scenarios that measure Herald alone (no Webdis or Nchan to start for them).
HERALD_ALONE = {"fanout-1k-deflate"}

FANOUT_METRICS = [
    ("publishes_per_second", "publishes/s achieved", "higher"),
    ("deliveries_per_second", "deliveries/s", "higher"),
    ("latency_ms.p50", "latency p50 ms", "lower"),
    ("latency_ms.p99", "latency p99 ms", "lower"),
    ("lost", "not delivered (within the drain)", "lower"),
    ("gateway_cpu_micros_per_message", "gateway CPU µs per delivery", "lower"),
]
MANY_METRICS = [("subscribed", "subscribers confirmed", "higher")] + FANOUT_METRICS[1:5]


def metric(figures, key):
    value = figures
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            return None
        value = value[part]
    return value


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summarize(all_results):
    """One table: per scenario and metric, min/median/max per gateway and Herald ÷ each."""
    rows = []
    header = ["scenario", "metric", "Herald", "Webdis", "Nchan", "redis-benchmark", "H÷Webdis", "H÷Nchan", "H÷redis-bench"]
    for name, _what, _runner, metrics in SCENARIOS:
        if name not in all_results:
            continue
        runs = all_results[name]
        metrics = metrics or (MANY_METRICS if name == "ws-19k" else FANOUT_METRICS)
        for key, label, _better in metrics:
            medians = {}
            cells = []
            for gateway in GATEWAYS + ["redis-benchmark"]:
                values = [metric(r.get(gateway, {}), key) for r in runs]
                values = [v for v in values if v is not None]
                skipped = next((r[gateway]["skipped"] for r in runs if "skipped" in r.get(gateway, {})), None)
                if values:
                    medians[gateway] = statistics.median(values)
                    cells.append(f"{fmt(min(values))} / **{fmt(medians[gateway])}** / {fmt(max(values))}"
                                 if len(values) > 1 else fmt(values[0]))
                else:
                    cells.append("n/a" if skipped else "")
            ratios = []
            for other in ("webdis", "nchan", "redis-benchmark"):
                h, o = medians.get("herald"), medians.get(other)
                ratios.append(f"{h / o:.2f}" if h is not None and o else "")
            rows.append([name, label, *cells, *ratios])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plots(all_results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"herald": "#d62728", "webdis": "#1f77b4", "nchan": "#2ca02c", "redis-benchmark": "#7f7f7f"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    groups = [("publish-c64", "requests_per_second"), ("publish-c256", "requests_per_second")]
    draw_bars(axes[0], all_results, groups, GATEWAYS + ["redis-benchmark"], colors,
              "Publish throughput (32-byte messages)", "publishes / s")
    groups = [(n, "deliveries_per_second") for n in ("fanout-1k-paced", "fanout-1k-flat", "fanout-10k-paced",
                                                      "fanout-10k-flat", "distinct-10k", "ws-19k")]
    draw_bars(axes[1], all_results, groups, GATEWAYS, colors, "Fan-out deliveries", "deliveries / s")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(OUT, f"throughput.{ext}"), dpi=110)
    plt.close(fig)

    names = [n for n in ("fanout-1k-paced", "fanout-1k-flat", "fanout-10k-paced", "fanout-10k-flat",
                         "distinct-10k", "ws-19k") if n in all_results]
    if not names:
        return
    cols = 3 if len(names) > 2 else len(names)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for gateway in GATEWAYS:
            hist = merge_histograms([r.get(gateway, {}).get("histogram") or [] for r in all_results[name]])
            total = sum(c for _, c in hist)
            if not total:
                continue
            xs, ys, seen = [], [], 0
            for value, count in hist:
                seen += count
                xs.append(value / 1000)
                ys.append(seen / total)
            ax.step(xs, ys, where="post", label=gateway, color=colors[gateway])
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("delivery latency, ms (log)")
        ax.set_ylabel("fraction of deliveries")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(OUT, f"latency-cdf.{ext}"), dpi=110)
    plt.close(fig)


def draw_bars(ax, all_results, groups, series, colors, title, ylabel):
    groups = [(n, k) for n, k in groups if n in all_results]
    width = 0.8 / len(series)
    for i, gateway in enumerate(series):
        xs, meds, lo, hi = [], [], [], []
        for g, (name, key) in enumerate(groups):
            values = [metric(r.get(gateway, {}), key) for r in all_results[name]]
            values = [v for v in values if v is not None]
            if not values:
                continue
            m = statistics.median(values)
            xs.append(g + (i - (len(series) - 1) / 2) * width)
            meds.append(m)
            lo.append(m - min(values))
            hi.append(max(values) - m)
        if xs:
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=gateway, color=colors[gateway])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([n for n, _ in groups], rotation=20, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def main():
    os.makedirs(WORK, exist_ok=True)
    for f in os.listdir(WORK):
        path = os.path.join(WORK, f)
        if os.path.isfile(path) and f.endswith(".log"):
            os.remove(path)
    procs = Processes()
    stack = Stack(procs)
    log(f"runs {RUNS}, scale {SCALE}, {DURATION} s per measurement; Redis on {stack.redis_port}, "
        f"ports {stack.ports}")
    stack.start_redis()
    selected = [s for s in SCENARIOS if not ONLY or s[0] in ONLY]
    # The TLS scenario measures Herald alone: BENCH_ONLY=publish-c64-tls needs no Webdis or Nchan.
    tls_wanted = any(name.endswith("-tls") for name, *_ in selected)
    others_wanted = any(not name.endswith("-tls") and name not in HERALD_ALONE for name, *_ in selected)
    for gateway in (GATEWAYS if others_wanted else ["herald"]) + (["herald-tls"] if tls_wanted else []):
        stack.start(gateway)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {"cores": os.cpu_count(), "kernel": os.uname().release,
                    "os": version(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "load_average_at_start": os.getloadavg()},
        "versions": {"redis-server": dpkg_version("redis-server"), "webdis": dpkg_version("webdis"),
                     "nginx-light": dpkg_version("nginx-light"), "libnginx-mod-nchan": dpkg_version("libnginx-mod-nchan"),
                     "wrk": dpkg_version("wrk"), "swift": version(["swift", "--version"]),
                     "herald": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                              capture_output=True, text=True).stdout.strip()},
        "settings": {"runs": RUNS, "scale": SCALE, "duration_s": DURATION, "herald_loops": stack.herald_loops(),
                     "herald_bin": HERALD_BIN, "bench_bin": BENCH_BIN},
    }
    all_results = {}
    for rep in range(RUNS):
        for name, what, runner, _metrics in selected:
            log(f"run {rep + 1}/{RUNS}: {name}: {what}")
            stack.redis_cli("FLUSHALL")
            try:
                figures = runner(stack, rep)
            except Exception as error:  # one failed scenario must not lose the others
                log(f"  {name} failed: {error}")
                figures = {"error": str(error)}
            figures["load_average"] = os.getloadavg()
            all_results.setdefault(name, []).append(figures)
            brief = {g: f.get("requests_per_second") or f.get("deliveries_per_second") or f.get("rss_per_subscriber_kib")
                     or f.get("skipped") for g, f in figures.items() if isinstance(f, dict)}
            log(f"  {brief}")
    procs.stop_all()
    table = summarize(all_results)
    tls = tls_summary(all_results)
    if tls:
        table += "\n\n" + tls
    deflate = compression_summary(all_results)
    if deflate:
        table += "\n\n" + deflate
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "scenarios": {n: w for n, w, _, _ in SCENARIOS}, "results": all_results}, f)
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write(table + "\n")
    try:
        plots(all_results)
    except Exception as error:
        log(f"plots failed: {error}")
    print(table)
    log(f"wrote {OUT}/results.json, table.md, throughput.png/svg, latency-cdf.png/svg")


if __name__ == "__main__":
    main()
