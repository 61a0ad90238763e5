"""Observability as an operator checks it: `GET /metrics` passes `promtool check metrics` and its
values move with the traffic (publishes, sockets, subscriptions, the latency histogram,
readiness), `/readyz` names the Redis links that are down, `--log-format json` writes one JSON
object per line on standard error, and `--access-log` writes one line per request."""

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (
    HERALD_BIN,
    PUBLIC_DIR,
    REPO,
    HeraldServer,
    _live_heralds,
    free_port,
    herald_env,
    http,
    http_json,
    open_subscriber,
    publish,
    recv_json,
    require_binary,
    stop_process,
    unique,
    wait_herald_ready,
    wait_until,
    ws_connect,
)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# --------------------------------------------------------------------------- helpers

def scrape(herald):
    """GET /metrics: (raw text, {(name, ((label, value), ...)): float})."""
    status, headers, body = http("GET", herald.base_url + "/metrics")
    assert status == 200, body[:300]
    assert (headers.get("Content-Type") or "").startswith("text/plain"), headers.get("Content-Type")
    text = body.decode("utf-8")
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_RE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.groups()
        key = (name, tuple(sorted(LABEL_RE.findall(labels or ""))))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return text, samples


def metric(herald, name, **labels):
    _, samples = scrape(herald)
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} missing from /metrics: {sorted(samples)}"
    return samples[key]


def wait_metric(herald, name, expected, timeout=5.0, **labels):
    """Poll until the sample equals `expected` (gauges follow closes asynchronously)."""
    seen = []

    def check():
        seen.append(metric(herald, name, **labels))
        return seen[-1] == expected
    try:
        wait_until(check, timeout=timeout, what=f"{name}{labels} == {expected}")
    except BaseException:
        raise AssertionError(f"{name}{labels} stayed {seen[-5:]} instead of {expected}") from None


def promtool_check(text):
    if not Path(PROMTOOL).exists():
        pytest.skip(f"promtool is not installed at {PROMTOOL} (Debian package 'prometheus'; make test installs it)")
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        f"promtool check metrics exited {done.returncode}: {done.stdout!r} {done.stderr!r}\n{text}")


def publish_json(herald, payload):
    status, _, answer = http_json("POST", herald.base_url + "/publish", json.dumps(payload),
                                  {"Content-Type": "application/json"})
    assert status == 200, answer
    return answer


class SSEStream:
    """A bare event-stream client: enough to hold one open and see its first event."""

    def __init__(self, herald, query):
        self.sock = socket.create_connection(("127.0.0.1", herald.port), timeout=5)
        self.sock.sendall(f"GET /events?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        deadline = time.monotonic() + 5
        while b"\ndata: " not in buf:
            assert time.monotonic() < deadline, f"no event on /events?{query}: {buf!r}"
            chunk = self.sock.recv(65536)
            assert chunk, f"stream closed: {buf!r}"
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 200"), buf[:200]

    def close(self):
        self.sock.close()


def launch_split_logs(redis_url, *args):
    """A Herald whose stdout and stderr go to separate files: (server, stdout path, stderr path)."""
    require_binary()
    port = free_port()
    out = tempfile.NamedTemporaryFile(prefix=f"herald-{port}-", suffix=".out", delete=False)
    err = tempfile.NamedTemporaryFile(prefix=f"herald-{port}-", suffix=".err", delete=False)
    argv = [str(HERALD_BIN), "--host", "127.0.0.1", "--port", str(port), "--redis", redis_url,
            "--loops", "1", "--public", str(PUBLIC_DIR), *map(str, args)]
    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=herald_env(),
                            cwd=str(REPO))
    server = HeraldServer(port, proc, err.name, argv)
    _live_heralds.append(server)
    try:
        wait_herald_ready(server)
    except BaseException:
        stop_process(proc)
        raise
    return server, Path(out.name), Path(err.name)


@pytest.fixture
def split_herald(redis_server):
    """Factory for launch_split_logs; stops every Herald it started and removes its files."""
    started = []

    def start(*args):
        server, out, err = launch_split_logs(redis_server.url, *args)
        started.append((server, out, err))
        return server, out, err

    yield start
    for server, out, err in started:
        stop_process(server.proc)
        if server in _live_heralds:
            _live_heralds.remove(server)
        for path in (out, err):
            path.unlink(missing_ok=True)


def stop_and_read(server, out, err):
    """SIGTERM the server (it must exit 0) and return (stdout text, stderr text)."""
    code = stop_process(server.proc)
    assert code == 0, f"herald exited {code}"
    return out.read_text(errors="replace"), err.read_text(errors="replace")


# --------------------------------------------------------------------------- /metrics format

def test_metrics_pass_promtool_after_traffic(start_herald):
    srv = start_herald()
    channel, key = unique("m"), unique("m-s")
    ws = open_subscriber(srv, channels=[channel], patterns=[channel + "-*"])
    sse = SSEStream(srv, f"channel={channel}")
    try:
        for i in range(3):
            publish(srv, channel, f"m{i}")
        recv_json(ws)
        status, _, _ = http("POST", f"{srv.base_url}/streams/{key}", b"x")
        assert status == 200
        http("GET", srv.base_url + "/no-such-file")
        text, samples = scrape(srv)
        promtool_check(text)
        for name in ("herald_build_info", "herald_connections", "herald_subscriptions", "herald_published_total",
                     "herald_publish_errors_total", "herald_messages_received_total",
                     "herald_messages_delivered_total", "herald_messages_dropped_total",
                     "herald_redis_reconnects_total", "herald_redis_errors_total", "herald_ready",
                     "herald_publish_duration_seconds"):
            assert f"# TYPE {name} " in text, f"no TYPE line for {name}"
            assert f"# HELP {name} " in text, f"no HELP line for {name}"
        assert samples[("herald_connections", (("kind", "sse"),))] == 1
        wait_until(lambda: metric(srv, "herald_messages_received_total", kind="message") >= 3, timeout=5,
                   what="3 messages received from Redis")
        wait_until(lambda: metric(srv, "herald_messages_delivered_total") >= 6, timeout=5,
                   what="6 deliveries: 3 to the WebSocket, 3 to the event stream")
    finally:
        ws.close()
        sse.close()


def test_metrics_answer_head_and_refuse_post(herald):
    status, headers, body = http("HEAD", herald.base_url + "/metrics")
    assert status == 200 and body == b""
    status, headers, _ = http("POST", herald.base_url + "/metrics", b"")
    assert status == 405
    assert "GET" in (headers.get("Allow") or "")


def test_publish_duration_histogram_is_consistent(start_herald):
    srv = start_herald()
    for i in range(4):
        publish(srv, unique("m"), "x")
    _, samples = scrape(srv)
    buckets = sorted(((float("inf") if dict(l)["le"] == "+Inf" else float(dict(l)["le"])), v)
                     for (n, l), v in samples.items() if n == "herald_publish_duration_seconds_bucket")
    assert buckets[-1][0] == float("inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"buckets must be cumulative: {buckets}"
    assert counts[-1] == samples[("herald_publish_duration_seconds_count", ())] == 4
    assert samples[("herald_publish_duration_seconds_sum", ())] > 0


# --------------------------------------------------------------------------- counters and gauges

def test_published_total_grows_by_the_number_of_publishes(start_herald):
    srv = start_herald()
    channel = unique("m")
    before = metric(srv, "herald_published_total")
    count_before = metric(srv, "herald_publish_duration_seconds_count")
    for i in range(5):
        publish(srv, channel, f"m{i}")
    assert metric(srv, "herald_published_total") == before + 5
    assert metric(srv, "herald_publish_duration_seconds_count") == count_before + 5

    publish_json(srv, {"channel": channel, "message": "one"})
    assert metric(srv, "herald_published_total") == before + 6

    answer = publish_json(srv, {"messages": [{"channel": channel, "message": str(i)} for i in range(3)]})
    assert len(answer["results"]) == 3
    assert metric(srv, "herald_published_total") == before + 9, "a batch counts each message"

    ws = ws_connect(f"{srv.ws_url}/subscribe")
    try:
        ws.send(json.dumps({"op": "publish", "channel": channel, "message": "ws", "id": 1}))
        assert recv_json(ws) == {"type": "published", "channel": channel, "receivers": 0, "id": 1}
    finally:
        ws.close()
    assert metric(srv, "herald_published_total") == before + 10, "the WebSocket publish op counts too"
    assert metric(srv, "herald_publish_duration_seconds_count") == count_before + 10

    status, _, _ = http("POST", srv.base_url + "/publish", b"{not json", {"Content-Type": "application/json"})
    assert status == 400
    assert metric(srv, "herald_published_total") == before + 10, "a refused request publishes nothing"


def test_websocket_connections_count_open_sockets(start_herald):
    srv = start_herald()
    wait_metric(srv, "herald_connections", 0, kind="websocket")
    sockets = [open_subscriber(srv, channels=[unique("m")]) for _ in range(3)]
    try:
        wait_metric(srv, "herald_connections", 3, kind="websocket")
        sockets.pop().close()
        wait_metric(srv, "herald_connections", 2, kind="websocket")
        assert metric(srv, "herald_connections", kind="sse") == 0
    finally:
        for ws in sockets:
            ws.close()
    wait_metric(srv, "herald_connections", 0, kind="websocket")


def test_sse_connections_count_open_streams(start_herald):
    srv = start_herald()
    streams = [SSEStream(srv, f"channel={unique('m')}") for _ in range(2)]
    try:
        wait_metric(srv, "herald_connections", 2, kind="sse")
        assert metric(srv, "herald_connections", kind="websocket") == 0
        streams.pop().close()
        wait_metric(srv, "herald_connections", 1, kind="sse")
    finally:
        for s in streams:
            s.close()
    wait_metric(srv, "herald_connections", 0, kind="sse")


def test_subscriptions_count_distinct_channels_per_loop(start_herald):
    srv = start_herald(loops=1)
    a, b, c = unique("m-a"), unique("m-b"), unique("m-c")
    pattern = unique("m-p") + "-*"
    wait_metric(srv, "herald_subscriptions", 0, kind="channel")
    first = open_subscriber(srv, channels=[a, b])
    second = open_subscriber(srv, channels=[b, c])
    third = open_subscriber(srv, channels=[a], patterns=[pattern])
    try:
        wait_metric(srv, "herald_subscriptions", 3, kind="channel")
        wait_metric(srv, "herald_subscriptions", 1, kind="pattern")
        assert metric(srv, "herald_subscriptions", kind="shard") == 0
        first.close()
        # b is still wanted by `second`, a by `third`.
        time.sleep(0.3)
        wait_metric(srv, "herald_subscriptions", 3, kind="channel")
        second.close()
        wait_metric(srv, "herald_subscriptions", 1, kind="channel")
        third.send(json.dumps({"op": "unsubscribe", "patterns": [pattern]}))
        wait_metric(srv, "herald_subscriptions", 0, kind="pattern")
    finally:
        for ws in (first, second, third):
            ws.close()
    wait_metric(srv, "herald_subscriptions", 0, kind="channel")


def test_subscriptions_are_summed_over_loops(start_herald):
    """Each loop subscribes once for its own clients: the sum lies between the number of
    distinct channels and that times the number of loops."""
    srv = start_herald(loops=2)
    channel = unique("m")
    sockets = [open_subscriber(srv, channels=[channel]) for _ in range(8)]
    try:
        wait_until(lambda: 1 <= metric(srv, "herald_subscriptions", kind="channel") <= 2, timeout=5,
                   what="one subscription per loop at most")
        time.sleep(0.2)
        assert 1 <= metric(srv, "herald_subscriptions", kind="channel") <= 2
    finally:
        for ws in sockets:
            ws.close()
    wait_metric(srv, "herald_subscriptions", 0, kind="channel")


# --------------------------------------------------------------------------- readiness

def test_ready_goes_to_zero_when_redis_stops_and_readyz_names_the_links(start_redis, start_herald):
    redis = start_redis()
    srv = start_herald(redis_url=redis.url, loops=2)
    assert metric(srv, "herald_ready") == 1
    status, _, body = http_json("GET", srv.base_url + "/readyz")
    assert (status, body) == (200, {"status": "ready"})
    reconnects = metric(srv, "herald_redis_reconnects_total")

    port = redis.port
    redis.stop()
    wait_metric(srv, "herald_ready", 0, timeout=10)
    down = []

    def all_links_named():
        status, _, body = http_json("GET", srv.base_url + "/readyz")
        assert status == 503, body
        assert body.get("status") == "not_ready", body
        down[:] = body.get("down") or []
        return all(any(f"loop {i}" in d and kind in d for d in down)
                   for i in (0, 1) for kind in ("command", "subscriber"))
    wait_until(all_links_named, timeout=10, what="/readyz to name every loop's command and subscriber link")
    assert all(isinstance(d, str) for d in down), down

    status, _, body = http_json("POST", srv.base_url + f"/publish/{unique('m')}", b"lost")
    assert status == 503 and body["error"] == "redis_unavailable", body
    assert metric(srv, "herald_publish_errors_total") >= 1
    status, _, body = http_json("GET", srv.base_url + "/healthz")
    assert (status, body) == (200, {"status": "ok"}), "liveness does not depend on Redis"

    start_redis(port=port)
    wait_metric(srv, "herald_ready", 1, timeout=15)
    status, _, body = http_json("GET", srv.base_url + "/readyz")
    assert (status, body) == (200, {"status": "ready"})
    # Counters that mirror the links are refreshed by each loop's housekeeping (twice a second).
    wait_until(lambda: metric(srv, "herald_redis_reconnects_total") > reconnects, timeout=5,
               what="herald_redis_reconnects_total to grow after Redis came back")


# --------------------------------------------------------------------------- logs

def test_json_log_format_writes_one_object_per_line_on_stderr(split_herald):
    srv, out, err = split_herald("--log-format", "json", "--access-log")
    http("GET", srv.base_url + "/healthz")
    publish(srv, unique("m"), "x")
    stdout, stderr = stop_and_read(srv, out, err)
    assert stdout == "", f"logs belong on stderr, stdout had {stdout[:500]!r}"
    lines = stderr.splitlines()
    assert len(lines) >= 4, stderr
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"a stderr line is not one JSON object: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "message"} <= set(record), record
        assert record["level"] in ("trace", "debug", "info", "notice", "warning", "error", "critical"), record
        records.append(record)
    messages = [r["message"] for r in records]
    assert "herald listening" in messages, messages
    assert any(r["message"] == "access" and r.get("target") == "/healthz" for r in records), records


def test_text_log_format_is_not_json(split_herald):
    srv, out, err = split_herald()
    _, stderr = stop_and_read(srv, out, err)
    assert "herald listening" in stderr
    assert not stderr.lstrip().startswith("{"), stderr[:300]


def access_lines(stderr, target):
    """Access-log lines (text format) for one exact request target."""
    return [line for line in stderr.splitlines()
            if "access" in line and re.search(rf"(^|\s)target={re.escape(target)}(\s|$)", line)]


def test_access_log_writes_one_line_per_request(split_herald):
    srv, out, err = split_herald("--access-log")
    tag = unique("a")
    http("GET", f"{srv.base_url}/healthz?{tag}=1")
    http("POST", f"{srv.base_url}/publish/{tag}?x=1", b"hello")
    http("GET", f"{srv.base_url}/{tag}-missing")
    http("DELETE", f"{srv.base_url}/publish/{tag}")
    # Two pipelined requests on one connection: two lines.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(f"GET /healthz?{tag}=p1 HTTP/1.1\r\nHost: x\r\n\r\n"
                     f"GET /healthz?{tag}=p2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass
    _, stderr = stop_and_read(srv, out, err)
    expected = [("GET", f"/healthz?{tag}=1", "200"), ("POST", f"/publish/{tag}?x=1", "200"),
                ("GET", f"/{tag}-missing", "404"), ("DELETE", f"/publish/{tag}", "405"),
                ("GET", f"/healthz?{tag}=p1", "200"), ("GET", f"/healthz?{tag}=p2", "200")]
    for method, target, status in expected:
        lines = access_lines(stderr, target)
        assert len(lines) == 1, f"{method} {target}: expected one access line, got {lines}\n{stderr[-3000:]}"
        assert f"method={method}" in lines[0] and f"status={status}" in lines[0], lines[0]
        assert re.search(r"bytes=\d+", lines[0]) and re.search(r"micros=\d+", lines[0]), lines[0]


def test_access_log_off_by_default(split_herald):
    srv, out, err = split_herald()
    http("GET", f"{srv.base_url}/healthz?quiet=1")
    _, stderr = stop_and_read(srv, out, err)
    assert not access_lines(stderr, "/healthz?quiet=1"), stderr


def test_access_log_in_json(split_herald):
    srv, out, err = split_herald("--access-log", "--log-format", "json")
    http("GET", srv.base_url + "/healthz?json=1")
    _, stderr = stop_and_read(srv, out, err)
    records = [json.loads(line) for line in stderr.splitlines()]
    hits = [r for r in records if r.get("target") == "/healthz?json=1"]
    assert len(hits) == 1, records
    assert hits[0]["method"] == "GET" and str(hits[0]["status"]) == "200", hits[0]


def test_access_log_covers_event_streams_and_websocket_upgrades(split_herald):
    """An event stream and a WebSocket upgrade are HTTP requests too (README: "one log line
    per HTTP request"): an operator looks for them when a subscriber says it cannot connect."""
    srv, out, err = split_herald("--access-log")
    channel = unique("a")
    sse = SSEStream(srv, f"channel={channel}")
    sse.close()
    ws = ws_connect(f"{srv.ws_url}/subscribe?channel={urllib.parse.quote(channel)}")
    recv_json(ws)
    ws.close()
    time.sleep(0.3)
    _, stderr = stop_and_read(srv, out, err)
    sse_lines = access_lines(stderr, f"/events?channel={channel}")
    ws_lines = access_lines(stderr, f"/subscribe?channel={channel}")
    assert len(sse_lines) == 1 and "status=200" in sse_lines[0], f"event stream: {sse_lines}\n{stderr[-2000:]}"
    assert len(ws_lines) == 1 and "status=101" in ws_lines[0], f"WebSocket upgrade: {ws_lines}\n{stderr[-2000:]}"
