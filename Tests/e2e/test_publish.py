"""POST /publish: the path form, the JSON forms, sharded publishes, errors, binary payloads."""

import base64
import json
import os
import select
import subprocess
import time

import pytest

from conftest import (
    assert_json_error,
    assert_silent,
    http,
    http_json,
    open_subscriber,
    publish,
    recv_json,
    unique,
    wait_until,
)


def curl(*args, timeout=15):
    """Run curl; return (http status, body text). curl's own failure fails the test."""
    done = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
                          capture_output=True, timeout=timeout)
    assert done.returncode == 0, f"curl {args} failed: {done.stderr.decode(errors='replace')}"
    body, _, code = done.stdout.decode("utf-8", "replace").rpartition("\n")
    return int(code), body


class RedisCliSubscriber:
    """`redis-cli SUBSCRIBE channel` (or SSUBSCRIBE) reading what Redis pushes to it."""

    def __init__(self, redis_server, channel, command="SUBSCRIBE"):
        self.proc = subprocess.Popen(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(redis_server.port), command, channel],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, bufsize=0)
        self.buf = b""
        # Raw output (stdout is not a tty): "subscribe", channel, count, one per line.
        confirmation = [self.readline() for _ in range(3)]
        assert confirmation == [command.lower(), channel, "1"], confirmation

    def readline(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0, remaining))
            assert ready, f"redis-cli subscriber printed no full line within {timeout}s: {self.buf!r}"
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            assert chunk, f"redis-cli subscriber exited: {self.proc.stderr.read()!r}"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=5)


def test_curl_publish_without_subscribers(herald):
    channel = unique("news")
    code, body = curl("-d", "hello", f"{herald.base_url}/publish/{channel}")
    assert code == 200, body
    assert json.loads(body) == {"channel": channel, "receivers": 0}


def test_receivers_counts_websocket_and_redis_subscribers(herald, redis_server):
    channel = unique("news")
    ws = open_subscriber(herald, channels=[channel])
    cli = RedisCliSubscriber(redis_server, channel)
    try:
        code, body = curl("-d", "hello", f"{herald.base_url}/publish/{channel}")
        assert code == 200, body
        # One Redis connection of Herald's plus redis-cli.
        assert json.loads(body) == {"channel": channel, "receivers": 2}
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": "hello"}
        assert [cli.readline() for _ in range(3)] == ["message", channel, "hello"]
    finally:
        cli.close()
        ws.close()


def test_publish_reaches_redis_byte_for_byte(herald, redis_server):
    channel = unique("bytes")
    cli = RedisCliSubscriber(redis_server, channel)
    try:
        answer = publish(herald, channel, "héllo wörld ✓")
        assert answer == {"channel": channel, "receivers": 1}
        assert [cli.readline() for _ in range(3)] == ["message", channel, "héllo wörld ✓"]
    finally:
        cli.close()


def test_json_body_form(herald):
    channel = unique("mail")
    ws = open_subscriber(herald, channels=[channel])
    try:
        code, body = curl("-H", "Content-Type: application/json",
                          "-d", json.dumps({"channel": channel, "message": "you have mail"}),
                          f"{herald.base_url}/publish")
        assert code == 200, body
        assert json.loads(body) == {"channel": channel, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": "you have mail"}
    finally:
        ws.close()


@pytest.mark.parametrize("message, published", [
    ({"a": [1, 2, "x"]}, '{"a":[1,2,"x"]}'),
    ([1, True, None], "[1,true,null]"),
    (42, "42"),
    (True, "true"),
])
def test_json_non_string_message_is_published_as_compact_json(herald, message, published):
    channel = unique("j")
    ws = open_subscriber(herald, channels=[channel])
    try:
        status, _, answer = http_json("POST", herald.base_url + "/publish",
                                      json.dumps({"channel": channel, "message": message}),
                                      {"Content-Type": "application/json"})
        assert status == 200, answer
        assert answer == {"channel": channel, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": published}
    finally:
        ws.close()


def test_batch_form_results_in_order(herald):
    first, second = unique("b1"), unique("b2")
    ws = open_subscriber(herald, channels=[first])
    try:
        batch = {"messages": [{"channel": first, "message": "a"},
                              {"channel": second, "message": "x"},
                              {"channel": first, "message": "b"}]}
        # As in the README: curl -d without a Content-Type of JSON.
        code, body = curl("-d", json.dumps(batch), f"{herald.base_url}/publish")
        assert code == 200, body
        assert json.loads(body) == {"results": [{"channel": first, "receivers": 1},
                                                {"channel": second, "receivers": 0},
                                                {"channel": first, "receivers": 1}]}
        assert recv_json(ws) == {"type": "message", "channel": first, "data": "a"}
        assert recv_json(ws) == {"type": "message", "channel": first, "data": "b"}
    finally:
        ws.close()


def test_sharded_publish_reaches_shard_subscriber(herald):
    shard = unique("s")
    ws = open_subscriber(herald, shards=[shard])
    try:
        code, body = curl("-d", "x", f"{herald.base_url}/publish/{shard}?sharded=true")
        assert code == 200, body
        assert json.loads(body) == {"channel": shard, "receivers": 1}
        assert recv_json(ws) == {"type": "smessage", "channel": shard, "data": "x"}

        # A plain PUBLISH does not reach SSUBSCRIBE subscribers (separate namespaces in Redis).
        assert publish(herald, shard, "plain") == {"channel": shard, "receivers": 0}
        assert_silent(ws, 0.3)

        # The JSON form with "sharded": true.
        status, _, answer = http_json("POST", herald.base_url + "/publish",
                                      json.dumps({"channel": shard, "message": "y", "sharded": True}))
        assert status == 200 and answer == {"channel": shard, "receivers": 1}, answer
        assert recv_json(ws) == {"type": "smessage", "channel": shard, "data": "y"}
    finally:
        ws.close()


def test_channel_in_path_is_percent_decoded(herald):
    channel = "room " + unique("ü/€")
    ws = open_subscriber(herald, channels=[channel])
    try:
        answer = publish(herald, channel, "decoded")  # publish() percent-encodes the channel
        assert answer == {"channel": channel, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": "decoded"}
    finally:
        ws.close()


@pytest.mark.parametrize("body", [b"{nope", b'{"channel": "c", "message": ', b"[1,2"])
def test_bad_json_is_400(herald, body):
    status, _, data = http("POST", herald.base_url + "/publish", body,
                           {"Content-Type": "application/json"})
    assert_json_error(status, data, 400, "bad_request", f"POST /publish {body!r}")


@pytest.mark.parametrize("payload", [
    {"message": "no channel"},
    {"channel": "", "message": "empty channel"},
    {"channel": "c"},
    {"messages": [{"message": "no channel"}]},
    {},
])
def test_missing_channel_or_message_is_400(herald, payload):
    status, _, data = http("POST", herald.base_url + "/publish", json.dumps(payload),
                           {"Content-Type": "application/json"})
    assert_json_error(status, data, 400, "bad_request", f"POST /publish {payload}")


def test_empty_channel_in_path_is_400(herald):
    status, _, data = http("POST", herald.base_url + "/publish/", b"hello")
    assert_json_error(status, data, 400, "bad_request", "POST /publish/")


@pytest.mark.parametrize("path", [
    "/publish/a%zz",          # a malformed escape in the channel
    "/publish/%C0%AF",        # an overlong encoding: not UTF-8
    "/publish/ok?sharded=%",  # a malformed escape in the query
    "/publish/ok?sharded=%FF",  # a query value that is not UTF-8
    "/publish/ok?sharded=maybe",
    "/streams/s%2?count=1",
    "/queues/q?wait=%G0",
])
def test_badly_encoded_names_and_queries_are_400(herald, redis_server, path):
    before = redis_server.cli("INFO", "commandstats")
    status, _, data = http("POST", herald.base_url + path, b"x")
    assert_json_error(status, data, 400, "bad_request", f"POST {path}")
    after = redis_server.cli("INFO", "commandstats")
    assert [l for l in before.splitlines() if "publish" in l or "xadd" in l or "lpush" in l] == \
           [l for l in after.splitlines() if "publish" in l or "xadd" in l or "lpush" in l], "nothing reached Redis"


def test_binary_payload_json_format_is_base64(herald):
    channel = unique("bin")
    payload = b"\xff\xfe\x00\x01binary\x80"
    ws = open_subscriber(herald, channels=[channel])
    try:
        assert publish(herald, channel, payload) == {"channel": channel, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": channel,
                                 "data": base64.b64encode(payload).decode(),
                                 "encoding": "base64"}
    finally:
        ws.close()


def test_binary_payload_raw_format_is_binary_frame(herald):
    channel = unique("raw")
    payload = b"\xff\xfe\x00\x01binary\x80"
    ws = open_subscriber(herald, channels=[channel], fmt="raw")
    try:
        assert publish(herald, channel, payload) == {"channel": channel, "receivers": 1}
        got = ws.recv(timeout=5)
        assert got == payload and isinstance(got, bytes), got
        assert publish(herald, channel, "plain text ✓")["receivers"] == 1
        got = ws.recv(timeout=5)
        assert got == "plain text ✓" and isinstance(got, str), got
    finally:
        ws.close()


def test_empty_body_publishes_empty_message(herald):
    channel = unique("empty")
    ws = open_subscriber(herald, channels=[channel])
    try:
        status, _, answer = http_json("POST", f"{herald.base_url}/publish/{channel}", b"")
        assert status == 200 and answer == {"channel": channel, "receivers": 1}, answer
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": ""}
    finally:
        ws.close()


def test_redis_down_is_503_and_recovers(start_redis, start_herald):
    redis = start_redis()
    srv = start_herald(redis_url=redis.url)
    channel = unique("down")
    assert publish(srv, channel, "before") == {"channel": channel, "receivers": 0}

    redis.stop()
    status, _, body = http("POST", f"{srv.base_url}/publish/{channel}", b"lost")
    # The link may not have noticed yet on the very first try; it must within a few seconds.
    deadline = time.monotonic() + 5
    while status == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        status, _, body = http("POST", f"{srv.base_url}/publish/{channel}", b"lost")
    assert_json_error(status, body, 503, "redis_unavailable", "POST /publish with Redis stopped")

    def not_ready():
        status, _, ready = http_json("GET", srv.base_url + "/readyz")
        return status == 503 and ready.get("status") == "not_ready"
    wait_until(not_ready, timeout=5, what='/readyz to answer 503 {"status":"not_ready"}')
    assert http("GET", srv.base_url + "/healthz")[0] == 200, "healthz must not depend on Redis"

    # Redis comes back on the same port: Herald reconnects by itself.
    start_redis(port=redis.port)
    wait_until(lambda: http("GET", srv.base_url + "/readyz")[0] == 200, timeout=15,
               what="/readyz to answer 200 after Redis came back")
    assert publish(srv, channel, "after") == {"channel": channel, "receivers": 0}
