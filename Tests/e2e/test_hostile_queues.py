"""Hostile-client probes on queues (issue 11, items 3-5, and the drain decision), grouped by
item so the next security review starts from them.

3. Queue names that collide in Herald's bookkeeping keys (a grant reaching another queue's items).
4. Herald's own keys (`herald:...`) named by clients; lease scripts that fail.
5. Clients that leave while their pop waits (the blocking pool), idle blocking connections.
Drain. A pop still waiting when SIGTERM's drain ends.
"""

import base64
import hashlib
import hmac
import json
import signal
import socket
import time
import urllib.parse

import pytest

from conftest import (
    RawWebSocket,
    assert_json_error,
    connected_clients,
    http,
    http_json,
    launch_herald,
    parse_responses,
    read_available,
    recv_json,
    unique,
    wait_until,
    ws_connect,
)

API_KEY = "hostile-queues-key-0123456789"
SECRET = "hostile-queues-secret-0123456789abcdef"

from queue_client import bearer, blocked, lrange, pop, push, qpath, spath, worker_url


# --------------------------------------------------------------------------- helpers

def token(publish, subscribe):
    """An HS256 token for SECRET with these globs."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "hostile", "exp": int(time.time()) + 3600,
                           "publish": publish, "subscribe": subscribe}).encode())
    signature = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def take_one(worker, expected):
    worker.send(json.dumps({"op": "pop", "wait": 0}))
    message = recv_json(worker)
    assert (message.get("type"), message.get("data")) == ("item", expected), message
    return message


def keys(redis, pattern):
    return sorted(k for k in redis.cli("KEYS", pattern).splitlines() if k)


def metric(herald, name):
    status, _, body = http("GET", herald.base_url + "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in /metrics")


def start_waiter(port, name, wait=300):
    """A raw connection whose GET /queues/{name}?wait=S is now in flight."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET {qpath(name)}?wait={wait} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


# --------------------------------------------------------------------------- 3. key collisions

def test_colliding_names_keep_their_own_items(start_redis, start_herald):
    """`jobs{eu}` and `eu}:jobs{eu` once shared their processing lists and lease registry: after
    a lease ran out, a token granted only `eu}*` popped the item held for `jobs{eu}` (which it
    gets 403 for directly). Now each name has its own keys: the item goes back to `jobs{eu}`."""
    redis = start_redis()
    auth = ("--api-keys", API_KEY, "--jwt-secret", SECRET, "--queue-lease", "1")
    doomed = start_herald(*auth, redis_url=redis.url, loops=1)
    survivor = start_herald(*auth, redis_url=redis.url, loops=1)
    victim, attacker = "jobs{eu}", "eu}:jobs{eu"
    push(doomed, victim, "secret job", API_KEY)
    worker = ws_connect(worker_url(doomed, victim, API_KEY))
    try:
        take_one(worker, "secret job")
        doomed.stop(signal.SIGKILL)  # holds the item; its lease runs out in 1 s
    finally:
        worker.close()
    time.sleep(1.5)
    eu = token(["eu}*"], ["eu}*"])
    status, _, body = pop(survivor, victim, credential=eu)
    assert_json_error(status, body, 403, "forbidden", "the eu}* token on jobs{eu}")
    for _ in range(3):
        status, _, body = pop(survivor, attacker, credential=eu)
        assert (status, body) == (204, b""), f"the eu}}* token popped {body!r} from {attacker}"
        time.sleep(0.4)  # past a reap period, in case the first pop did not reap
    status, _, body = pop(survivor, victim, credential=API_KEY)
    assert (status, body) == (200, b"secret job"), "the held item went back to its own queue"


def test_name_with_a_brace_outside_a_tag_works_on_a_cluster(redis_cluster):
    """A queue named `a}b-..` has no hash tag a key could carry; its keys use a tag of the same
    slot instead, so a WebSocket worker on it (BLMOVE, the lease scripts) works on a cluster
    (it used to get CROSSSLOT) and a vanished worker's item goes back."""
    herald = launch_herald(redis_url=redis_cluster.url, loops=1)
    try:
        name = unique("a}b")
        owner = redis_cluster.owner(name)
        push(herald, name, "braced")
        worker = RawWebSocket(herald.port, "/subscribe?" + urllib.parse.urlencode({"queue": name}))
        try:
            worker.send_text(json.dumps({"op": "pop", "wait": 1}))
            _, _, payload = worker.recv_frame()
            assert json.loads(payload).get("data") == "braced", payload
            lists = [k for k in redis_cluster.cli(owner, "KEYS", "herald:processing:*").splitlines()
                     if f":{name}:" in k]
            assert len(lists) == 1 and redis_cluster.keyslot(lists[0]) == redis_cluster.keyslot(name), lists
        finally:
            worker.close()
        wait_until(lambda: redis_cluster.cli(owner, "LRANGE", name, 0, -1).split() == ["braced"], timeout=5,
                   what="the item to be back in the queue")
    finally:
        herald.stop()


# --------------------------------------------------------------------------- 4. Herald's own keys

RESERVED = ["herald:consumers:{jobs}", "herald:processing:{jobs}:x", "herald:anything"]


@pytest.fixture(scope="module")
def auth_herald(redis_server):
    server = launch_herald("--api-keys", API_KEY, redis_url=redis_server.url)
    yield server
    server.stop()


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_keys_are_refused_over_http(auth_herald, redis_server, name):
    """Even a credential that may do anything cannot touch Herald's bookkeeping keys."""
    before = keys(redis_server, "herald:*")
    for method, path in [("POST", qpath(name)), ("GET", qpath(name)), ("GET", qpath(name) + "?wait=1"),
                         ("POST", spath(name)), ("GET", spath(name))]:
        status, _, body = http(method, auth_herald.base_url + path, b"x", bearer(API_KEY))
        decoded = assert_json_error(status, body, 403, "reserved_name", f"{method} {path}")
        assert "herald:" in decoded["message"], decoded
    assert keys(redis_server, "herald:*") == before, "nothing was written"


def test_channels_named_herald_are_not_keys(auth_herald):
    """Decision: pub/sub channels are not keys, and Herald has no channels of its own: a
    channel `herald:...` is an ordinary channel."""
    status, _, answer = http_json("POST", auth_herald.base_url + "/publish/herald:news", b"x", bearer(API_KEY))
    assert status == 200 and answer["receivers"] == 0, answer


@pytest.mark.parametrize("query,paths", [
    ([("queue", "herald:consumers:{jobs}")], ["/subscribe"]),
    ([("stream", "herald:consumers:{jobs}")], ["/subscribe", "/events"]),
    ([("stream", "fine"), ("stream", "herald:processing:{jobs}:x")], ["/subscribe", "/events"]),
    ([("stream", "herald:s"), ("group", "g"), ("consumer", "c")], ["/subscribe"]),
])
def test_reserved_keys_are_refused_for_websockets_and_event_streams(auth_herald, redis_server, query, paths):
    """Over WebSocket upgrades and event streams alike, before anything is opened."""
    before = keys(redis_server, "herald:*")
    qs = urllib.parse.urlencode(query + [("token", API_KEY)])
    upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    for path in paths:
        extra = upgrade if path == "/subscribe" else "Accept: text/event-stream\r\n"
        sock = socket.create_connection(("127.0.0.1", auth_herald.port), timeout=5)
        try:
            sock.sendall(f"GET {path}?{qs} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
            buf, _ = read_available(sock, 2, until=lambda b: parse_responses(b)[0])
        finally:
            sock.close()
        [answer], _ = parse_responses(buf)
        assert_json_error(answer.status, answer.body, 403, "reserved_name", f"{path}?{qs}")
    assert keys(redis_server, "herald:*") == before


def registry_key(redis):
    [key] = keys(redis, "herald:consumers:*")
    return key


def test_broken_registry_is_counted_logged_and_retried(start_redis, start_herald):
    """The lease registry made another type behind Herald's back: renewals and reaps fail.
    Each failure is counted (herald_queue_lease_errors_total) and logged (not once per call),
    and retried: once the registry is whole again, the dead Herald's item is reaped."""
    redis = start_redis()
    holder = start_herald("--queue-lease", "1", redis_url=redis.url, loops=1)
    reaper = start_herald("--queue-lease", "1", redis_url=redis.url, loops=1)
    name = unique("broken")
    push(holder, name, "held")
    worker = ws_connect(worker_url(holder, name))
    try:
        take_one(worker, "held")
        registry = registry_key(redis)
        redis.cli("RENAME", registry, "saved-registry")
        redis.cli("SET", registry, "not a sorted set")
        # Renewals every third of a second fail.
        wait_until(lambda: metric(holder, "herald_queue_lease_errors_total") >= 3, timeout=5,
                   what="three failed renewals counted")
        lines = [line for line in holder.log(20000).splitlines() if "queue lease script failed" in line]
        assert lines and "WRONGTYPE" in lines[0], holder.log()
        assert len(lines) < metric(holder, "herald_queue_lease_errors_total"), "logged once per failure"
        holder.stop(signal.SIGKILL)
    finally:
        worker.close()
    time.sleep(1.2)
    assert pop(reaper, name)[0] == 204  # the reap fails: the item stays held
    wait_until(lambda: metric(reaper, "herald_queue_lease_errors_total") >= 1, timeout=5,
               what="the failed reap counted")
    assert "queue lease script failed" in reaper.log()
    redis.cli("DEL", registry)
    redis.cli("RENAME", "saved-registry", registry)
    status, _, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(pop(reaper, name)),
                                 timeout=5, what="the reap to be retried")
    assert body == b"held"


def test_put_back_onto_a_queue_of_another_type_is_retried(start_redis, start_herald):
    """A worker holds a queue's only item; the empty queue's name is taken by a stream (any
    client that may write it can do so); the worker leaves: the put-back fails. It is counted,
    logged and retried, and the item is back soon after the stream is gone (not only when a
    reaper comes by after the 30 s lease)."""
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    name = unique("taken")
    push(herald, name, "held")
    worker = ws_connect(worker_url(herald, name))
    try:
        take_one(worker, "held")
        status, _, _ = http("POST", herald.base_url + spath(name), b"squatter")
        assert status == 200
    finally:
        worker.close()
    wait_until(lambda: metric(herald, "herald_queue_lease_errors_total") >= 1, timeout=5,
               what="the failed put-back counted")
    assert "queue lease script failed" in herald.log()
    redis.cli("DEL", name)
    wait_until(lambda: lrange(redis, name) == ["held"], timeout=5, what="the put-back to be retried")
    assert keys(redis, "herald:*") == []


# --------------------------------------------------------------------------- 5. departed waiters

def test_departed_http_waiters_free_the_blocking_pool(start_redis, start_herald):
    """Waiting pops whose clients left no longer hold the pool: their BRPOPs are unblocked at
    once, and a new waiting pop is served instead of 503 too_many_waiters."""
    redis = start_redis()
    herald = start_herald("--max-blocking", "4", redis_url=redis.url, loops=1)
    name = unique("gone")
    waiters = [start_waiter(herald.port, name) for _ in range(4)]
    wait_until(lambda: blocked(redis, "brpop") == 4, timeout=5, what="four BRPOPs to block")
    for sock in waiters:
        sock.close()
    wait_until(lambda: blocked(redis, "brpop") == 0, timeout=3, what="the departed clients' BRPOPs to end")
    status, _, body = pop(herald, name, wait=1)
    assert (status, body) == (204, b""), f"a new waiting pop answered {status} {body!r}"
    push(herald, name, "kept")
    assert lrange(redis, name) == ["kept"], "no abandoned BRPOP took it"


def test_item_arriving_as_waiters_leave_is_not_lost(start_redis, start_herald):
    """Items pushed right as every waiting client leaves, racing the unblocking of their
    BRPOPs: each is either still in the queue or taken for a departed client and put back;
    none is lost."""
    redis = start_redis()
    herald = start_herald("--max-blocking", "8", redis_url=redis.url, loops=1)
    pushed = {}
    for round in range(5):
        name = unique(f"race{round}")
        waiters = [start_waiter(herald.port, name) for _ in range(8)]
        wait_until(lambda: blocked(redis, "brpop") == 8, timeout=5, what="eight BRPOPs to block")
        for sock in waiters:
            sock.close()
        pushed[name] = [f"item-{i}" for i in range(4)]
        redis.cli("LPUSH", name, *pushed[name])
        wait_until(lambda: blocked(redis, "brpop") == 0, timeout=5, what="the BRPOPs to end")
    for name, items in pushed.items():
        wait_until(lambda: sorted(lrange(redis, name)) == items, timeout=5, what=f"the 4 items of {name}")
        assert sorted(pop(herald, name, wait=1)[2] for _ in items) == [i.encode() for i in items]


def test_item_popped_as_the_client_leaves_goes_back(start_redis, start_herald):
    """The worst order: Redis pops an item for a waiting client, then the client leaves, both
    before Herald looks (it is stopped meanwhile). Herald handles Redis's answer first, sees
    on the socket that the client is gone, and puts the item back instead of writing it into
    a dead connection."""
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    name = unique("stopped")
    sock = start_waiter(herald.port, name)
    wait_until(lambda: blocked(redis, "brpop") == 1, timeout=5, what="the BRPOP to block")
    herald.proc.send_signal(signal.SIGSTOP)
    try:
        redis.cli("LPUSH", name, "precious")  # served at once: the answer waits in Herald's socket
        assert blocked(redis, "brpop") == 0
        sock.close()
        time.sleep(0.2)
    finally:
        herald.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: lrange(redis, name) == ["precious"], timeout=5, what="the item to be put back")


def test_pipelined_pop_dropped_after_connection_close_frees_its_connection(start_redis, start_herald):
    """A waiting pop pipelined behind a `Connection: close` request is never answered: it must
    not keep its blocking connection (nor take an item) for its whole wait."""
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    name = unique("piped")
    sock = socket.create_connection(("127.0.0.1", herald.port), timeout=5)
    try:
        sock.sendall(f"POST {qpath(unique('other'))} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                     f"Connection: close\r\n\r\nx"
                     f"GET {qpath(name)}?wait=300 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf, closed = read_available(sock, 3)
        assert closed and [r.status for r in parse_responses(buf)[0]] == [200], buf
    finally:
        sock.close()
    wait_until(lambda: blocked(redis, "brpop") == 0, timeout=3, what="the dropped pop's BRPOP to end")
    push(herald, name, "kept")
    assert lrange(redis, name) == ["kept"]


def test_departed_websocket_worker_frees_its_blocking_connection(start_redis, start_herald):
    redis = start_redis()
    herald = start_herald("--max-blocking", "1", redis_url=redis.url, loops=1)
    name = unique("wsgone")
    worker = RawWebSocket(herald.port, "/subscribe?" + urllib.parse.urlencode({"queue": name}))
    try:
        worker.send_text(json.dumps({"op": "pop", "wait": 300}))
        wait_until(lambda: blocked(redis, "blmove") == 1, timeout=5, what="the BLMOVE to block")
    finally:
        worker.close()
    wait_until(lambda: blocked(redis, "blmove") == 0, timeout=3, what="the BLMOVE to end")
    wait_until(lambda: keys(redis, "herald:*") == [], timeout=3, what="the worker's list to be unregistered")
    push(herald, name, "kept")
    assert lrange(redis, name) == ["kept"]
    status, _, body = pop(herald, name, wait=1)
    assert (status, body) == (200, b"kept"), "the single blocking connection is free again"


def test_departed_waiters_are_unblocked_on_their_own_cluster_node(redis_cluster):
    """In a cluster a waiting pop blocks on its queue's master; when its client leaves, the
    CLIENT UNBLOCK must go to that node (client ids are per node)."""
    herald = launch_herald(redis_url=redis_cluster.url, loops=1)
    try:
        queues = redis_cluster.names_on_every_master("gone")
        waiters = [start_waiter(herald.port, name) for name in queues.values()]

        def blocked_on(port):
            lines = redis_cluster.cli(port, "CLIENT", "LIST").splitlines()
            return sum(1 for line in lines if " flags=b " in f" {line} " and " cmd=brpop " in f" {line} ")
        wait_until(lambda: all(blocked_on(port) == 1 for port in queues), timeout=5,
                   what="a BRPOP blocked on every master")
        for sock in waiters:
            sock.close()
        wait_until(lambda: all(blocked_on(port) == 0 for port in queues), timeout=3,
                   what="every departed client's BRPOP to end on its own node")
    finally:
        herald.stop()


def test_idle_blocking_connections_close(start_redis, start_herald):
    """Blocking connections opened by a burst of waits close after --blocking-idle seconds, and
    are not reopened after Redis restarts."""
    redis = start_redis()
    herald = start_herald("--max-blocking", "4", "--blocking-idle", "1", redis_url=redis.url, loops=1)
    name = unique("idle")
    base = connected_clients(redis)
    waiters = [start_waiter(herald.port, name, wait=1) for _ in range(3)]
    wait_until(lambda: blocked(redis, "brpop") == 3, timeout=5, what="three BRPOPs to block")
    assert connected_clients(redis) == base + 3
    for sock in waiters:
        buf, _ = read_available(sock, 3, until=lambda b: b"\r\n\r\n" in b)
        assert buf.startswith(b"HTTP/1.1 204"), buf
        sock.close()
    wait_until(lambda: connected_clients(redis) == base, timeout=4, what="the idle blocking connections to close")

    # Used again, then Redis restarts: the pool reconnects nothing by itself.
    assert pop(herald, name, wait=1)[0] == 204
    port = redis.port
    redis.stop()
    restarted = start_redis(port=port)
    wait_until(lambda: http("GET", herald.base_url + "/readyz")[0] == 200, timeout=10, what="Herald to reconnect")
    time.sleep(1.5)
    assert connected_clients(restarted) == base, restarted.cli("CLIENT", "LIST")


# --------------------------------------------------------------------------- drain

def test_pop_waiting_when_the_drain_ends_is_answered_503(start_redis, start_herald):
    """Decision: a pop still waiting when SIGTERM's 5 s drain ends is answered 503
    shutting_down (not dropped), its BRPOP is unblocked, and an item pushed afterwards stays in
    the queue."""
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    name = unique("drain")
    sock = start_waiter(herald.port, name)
    try:
        wait_until(lambda: blocked(redis, "brpop") == 1, timeout=5, what="the BRPOP to block")
        started = time.monotonic()
        herald.proc.send_signal(signal.SIGTERM)
        buf, closed = read_available(sock, 10)
        took = time.monotonic() - started
    finally:
        sock.close()
    [answer], _ = parse_responses(buf)
    assert_json_error(answer.status, answer.body, 503, "shutting_down", "the waiting pop at the drain's end")
    assert closed and took >= 4, (took, buf)
    assert herald.proc.wait(timeout=5) == 0
    redis.cli("LPUSH", name, "after")
    assert lrange(redis, name) == ["after"]


def test_worker_pop_waiting_at_sigterm_loses_nothing(start_redis, start_herald):
    """A WebSocket worker whose pop waits, that does not answer the 1001 close: its BLMOVE is
    unblocked when the connection goes, nothing stays in a processing list, Herald exits 0."""
    redis = start_redis()
    herald = start_herald(redis_url=redis.url, loops=1)
    name = unique("drainws")
    worker = RawWebSocket(herald.port, "/subscribe?" + urllib.parse.urlencode({"queue": name}))
    try:
        worker.send_text(json.dumps({"op": "pop", "wait": 300}))
        wait_until(lambda: blocked(redis, "blmove") == 1, timeout=5, what="the BLMOVE to block")
        herald.proc.send_signal(signal.SIGTERM)
        code, _, _ = worker.recv_until_close(5)
        assert code == 1001
        assert herald.proc.wait(timeout=8) == 0
    finally:
        worker.close()
    assert blocked(redis, "blmove") == 0
    assert keys(redis, "herald:*") == []
    redis.cli("LPUSH", name, "after")
    assert lrange(redis, name) == ["after"]
