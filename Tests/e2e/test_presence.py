"""Presence (issue 10, item 1): who is in a channel, across Herald replicas on one Redis.

Every test runs two real Herald processes on one real Redis (or a Redis Cluster) and checks
what a user would: the join and leave events members receive, `GET /presence/{channel}` and
the `presence` op, the grants, bad input, and the leave of members whose Herald was SIGKILLed
(within `--presence-ttl`, each leave heard exactly once)."""

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse

import pytest

from conftest import (
    http,
    http_json,
    launch_herald,
    launch_redis,
    recv_json,
    unique,
    wait_until,
    ws_connect,
)

TTL = 3  # --presence-ttl of every Herald here, seconds
SECRET = b"presence-secret-for-herald-tests-0123456789"


# --------------------------------------------------------------------------- helpers

class Member:
    """A WebSocket client; `seen` keeps every message it got, in order."""

    def __init__(self, herald, channels=(), user=None, presence=True, token=None):
        query = [("channel", c) for c in channels]
        if presence:
            query.append(("presence", "true"))
        if user:
            query.append(("user", user))
        if token:
            query.append(("token", token))
        self.ws = ws_connect(f"{herald.ws_url}/subscribe?{urllib.parse.urlencode(query)}")
        self.seen = []
        self.taken = set()  # ids of messages `next` returned already
        self.client = None

    def next(self, predicate, timeout=5.0, what="a message"):
        """Reads until a message matches `predicate` (earlier ones stay in `seen`)."""
        deadline = time.monotonic() + timeout
        for message in self.seen:
            if id(message) not in self.taken and predicate(message):
                self.taken.add(id(message))
                return message
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {what} within {timeout}s; got {self.seen}")
            message = recv_json(self.ws, remaining)
            self.seen.append(message)
            if predicate(message):
                self.taken.add(id(message))
                return message

    def joined(self, channel, timeout=5.0):
        """Waits for this client's own join in `channel` (the first join it hears: it learns
        its id from it), and returns the event."""
        event = self.next(lambda m: m.get("type") == "join" and m.get("channel") == channel
                          and (self.client is None or m["client"] == self.client),
                          timeout, f"own join in {channel}")
        self.client = event["client"]
        return event

    def event(self, kind, client, timeout=5.0):
        return self.next(lambda m: m.get("type") == kind and m.get("client") == client, timeout,
                         f"{kind} of {client}")

    def op(self, op, timeout=5.0):
        self.ws.send(json.dumps(op))
        return self.next(lambda m: m.get("id") == op.get("id"), timeout, f"the answer to {op}")

    def drain(self, wait=0.5):
        """Reads whatever arrives within `wait` seconds into `seen`."""
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.seen.append(json.loads(self.ws.recv(timeout=remaining)))
            except TimeoutError:
                return

    def events(self, kind):
        return [m for m in self.seen if m.get("type") == kind]

    def close(self):
        self.ws.close()


def member(herald, channels, **kw):
    return Member(herald, channels, **kw)


def presence(herald, channel, headers=None):
    status, _, body = http_json("GET", herald.base_url + "/presence/" + urllib.parse.quote(channel, safe=""),
                                headers=headers)
    return status, body


def listed(body):
    """{client: user} of a presence answer."""
    return {m["client"]: m["user"] for m in body["members"]}


def make_jwt(claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
    head = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(SECRET, head.encode(), hashlib.sha256).digest())


@pytest.fixture
def pair(redis_server):
    """Two Heralds (A and B) on the session's Redis, `--presence-ttl 3`."""
    heralds = [launch_herald("--presence-ttl", TTL, redis_url=redis_server.url) for _ in range(2)]
    yield heralds
    for h in heralds:
        h.stop()


# --------------------------------------------------------------------------- joins and leaves

def test_joins_and_leaves_are_heard_on_every_replica(pair):
    a, b = pair
    room = unique("room")
    alice = member(a, [room], user="alice")
    alice.joined(room)
    bob = member(b, [room], user="bob")
    bob_join = bob.joined(room)
    assert bob_join["user"] == "bob" and bob_join["info"] is None
    assert isinstance(bob_join["since"], int) and abs(bob_join["since"] / 1000 - time.time()) < 60
    # Alice (on A) hears Bob's join on B, with the same fields Bob saw.
    assert alice.event("join", bob.client) == bob_join

    # GET /presence on either replica, and the op, agree.
    for h in (a, b):
        status, body = presence(h, room)
        assert status == 200, body
        assert body["channel"] == room and body["clients"] == 2 and body["users"] == 2
        assert listed(body) == {alice.client: "alice", bob.client: "bob"}
        assert "truncated" not in body
    answer = alice.op({"op": "presence", "channel": room, "id": 7})
    assert answer["type"] == "presence" and answer["id"] == 7
    assert listed(answer) == listed(body) and answer["clients"] == 2 and answer["users"] == 2

    # Unsubscribing leaves: Alice hears Bob's leave.
    bob.op({"op": "unsubscribe", "channel": room, "id": 1})
    leave = alice.event("leave", bob.client)
    assert leave["channel"] == room and leave["user"] == "bob"
    assert listed(presence(b, room)[1]) == {alice.client: "alice"}

    # A subscribe op with presence joins again, under the same client id.
    bob.op({"op": "subscribe", "channel": room, "presence": True, "id": 2})
    alice.event("join", bob.client)
    assert presence(a, room)[1]["clients"] == 2

    # Closing the connection leaves.
    bob.close()
    alice.event("leave", bob.client)
    alice.drain(0.5)
    assert len(alice.events("join")) == 3  # her own, Bob's twice
    assert len(alice.events("leave")) == 2
    alice.close()
    wait_until(lambda: presence(a, room)[1]["clients"] == 0, what="the room to empty")


def test_two_tabs_of_one_user_are_two_clients_one_user(pair):
    a, b = pair
    room = unique("room")
    tab1 = member(a, [room], user="carol")
    tab1.joined(room)
    tab2 = member(b, [room], user="carol")
    tab2.joined(room)
    anon = member(b, [room])
    anon.joined(room)
    assert tab1.client != tab2.client
    status, body = presence(a, room)
    assert status == 200
    assert body["clients"] == 3 and body["users"] == 1, body
    assert sorted(map(str, listed(body).values())) == ["None", "carol", "carol"]
    for m in (tab1, tab2, anon):
        m.close()


def test_subscribers_without_presence_are_not_members(pair):
    a, _ = pair
    room = unique("room")
    plain = member(a, [room], presence=False)
    plain.next(lambda m: m.get("type") == "subscribed")
    listener = member(a, [room])
    listener.joined(room)
    assert presence(a, room)[1]["clients"] == 1
    plain.drain(0.3)
    assert plain.events("join") == []  # presence events go only to members
    plain.close()
    listener.close()


def test_presence_metrics_count_members_and_channels(redis_server):
    # One loop: the channel gauge is summed over loops, and members on two loops would count a
    # channel twice.
    a = launch_herald("--presence-ttl", TTL, redis_url=redis_server.url, loops=1)
    def gauge(name):
        status, _, body = http("GET", a.base_url + "/metrics")
        assert status == 200
        match = re.search(rf"^{name} (\d+)$", body.decode(), re.M)
        assert match, f"{name} missing from /metrics"
        return int(match.group(1))
    rooms = [unique("room"), unique("room")]
    alice = member(a, rooms, user="alice")
    bob = member(a, rooms[:1], user="bob")
    for room in rooms:
        alice.joined(room)
    bob.joined(rooms[0])
    wait_until(lambda: gauge("herald_presence_members") == 3, what="3 memberships counted")
    assert gauge("herald_presence_channels") == 2
    bob.close()
    wait_until(lambda: gauge("herald_presence_members") == 2, what="bob's membership gone")
    alice.close()
    wait_until(lambda: gauge("herald_presence_members") == 0 and gauge("herald_presence_channels") == 0,
               what="every membership gone")
    assert gauge("herald_presence_errors_total") == 0
    a.stop()


def test_sse_presence_member(pair):
    import http.client
    a, b = pair
    room = unique("room")
    watcher = member(b, [room], user="w")
    watcher.joined(room)
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
    conn.request("GET", f"/events?channel={room}&presence=true&user=sse")
    response = conn.getresponse()
    assert response.status == 200
    join = watcher.next(lambda m: m.get("type") == "join" and m.get("user") == "sse")
    line = b""
    while b'"type":"join"' not in line:
        line = response.fp.readline()
    assert json.loads(line.decode().removeprefix("data:").strip())["client"] == join["client"]
    response.close()
    conn.close()
    watcher.event("leave", join["client"])
    watcher.close()


# --------------------------------------------------------------------------- dead Heralds

def test_members_of_a_killed_herald_leave_within_the_ttl_once(redis_server):
    """Two survivors (two loops each) reap the room at once; each leave is announced once."""
    doomed = launch_herald("--presence-ttl", TTL, redis_url=redis_server.url)
    survivor = launch_herald("--presence-ttl", TTL, redis_url=redis_server.url)
    other = launch_herald("--presence-ttl", TTL, redis_url=redis_server.url)
    try:
        room = unique("room")
        watchers = [member((survivor, other)[i % 2], [room], user=f"w{i}") for i in range(4)]
        for w in watchers:
            w.joined(room)
        goners = [member(doomed, [room], user=f"g{i}") for i in range(2)]
        for g in goners:
            g.joined(room)
        assert presence(survivor, room)[1]["clients"] == 6
        doomed.stop(sig=9)
        killed = time.monotonic()
        for w in watchers:
            for g in goners:
                w.event("leave", g.client, timeout=TTL + 2)
        assert time.monotonic() - killed <= TTL + 0.5, "leaves came later than --presence-ttl"
        for w in watchers:
            w.drain(TTL)  # a full TTL more: no second leave for anyone
            leaves = [e["client"] for e in w.events("leave")]
            assert sorted(leaves) == sorted(g.client for g in goners), leaves
        status, body = presence(other, room)
        assert body["clients"] == 4 and body["users"] == 4
        for w in watchers:
            w.close()
    finally:
        doomed.stop(sig=9)
        survivor.stop()
        other.stop()


def test_sigterm_drain_sends_leaves(redis_server):
    leaving = launch_herald("--presence-ttl", 30, redis_url=redis_server.url)
    staying = launch_herald("--presence-ttl", 30, redis_url=redis_server.url)
    try:
        room = unique("room")
        watcher = member(staying, [room])
        watcher.joined(room)
        m = member(leaving, [room])
        m.joined(room)
        leaving.stop()  # SIGTERM: far sooner than the 30 s TTL
        watcher.event("leave", m.client, timeout=8)
        watcher.close()
    finally:
        leaving.stop()
        staying.stop()


def test_members_lost_with_redis_data_join_again(start_redis):
    """Redis loses its data (FLUSHALL, a restart without persistence): at the next renewal
    each Herald joins its members again, and members hear the joins."""
    redis = start_redis()
    h = launch_herald("--presence-ttl", TTL, redis_url=redis.url)
    try:
        room = unique("room")
        watcher = member(h, [room], user="w")
        watcher.joined(room)
        m = member(h, [room], user="m")
        m.joined(room)
        watcher.event("join", m.client)
        redis.cli("FLUSHALL")
        assert presence(h, room)[1]["clients"] == 0
        watcher.event("join", m.client, timeout=TTL)  # joined again, with its first `since`
        wait_until(lambda: presence(h, room)[1]["clients"] == 2, timeout=TTL, what="both listed again")
        watcher.close()
        m.close()
    finally:
        h.stop()


def test_no_false_leaves_after_a_redis_restart(start_redis, tmp_path):
    """Redis restarts (its data kept) after longer than a lease: every lease in it has run out.
    Each Herald renews its own members after reconnecting and reaps nothing for one lease,
    so nobody is announced as gone (nor joined again)."""
    ttl = 10  # a lease is 5 s; the reconnect backoff of the links may differ by a second or two
    files = ("--dir", str(tmp_path), "--dbfilename", "presence.rdb")
    redis = start_redis(extra_args=files)
    a = launch_herald("--presence-ttl", ttl, redis_url=redis.url)
    b = launch_herald("--presence-ttl", ttl, redis_url=redis.url)
    try:
        room = unique("room")
        wa = member(a, [room], user="wa")
        wa.joined(room)
        mb = member(b, [room], user="mb")
        mb.joined(room)
        wa.event("join", mb.client)
        redis.cli("SAVE")
        port = redis.port
        redis.stop()
        time.sleep(ttl / 2 + 1)
        start_redis(port=port, extra_args=files)
        wait_until(lambda: presence(a, room)[1].get("clients") == 2, timeout=15,
                   what="presence to answer again")
        wa.drain(ttl / 2)
        mb.drain(0.1)
        assert wa.events("leave") == [] and mb.events("leave") == [], (wa.seen, mb.seen)
        assert len(wa.events("join")) == 2, wa.seen
        wa.close()
        mb.close()
    finally:
        a.stop()
        b.stop()


def test_reads_cap_the_list_and_count_every_member(pair, redis_server):
    """More than 1,000 members: `members` lists 1,000 and says `truncated`; the counts cover
    all of them (members written straight into Redis, as 1,001 sockets would be slow)."""
    a, _ = pair
    room = unique("room")
    members_key = f"herald:presence:{{{room}}}:{len(room)}:{room}"
    leases_key = f"herald:presence-leases:{{{room}}}:{len(room)}:{room}"
    script = """
        for i = 1, 1001 do
          local user = (i % 10 == 0) and 'null' or ('"u' .. (i % 7) .. '"')
          redis.call('HSET', KEYS[1], 'c' .. i, '{"client":"c' .. i .. '","user":' .. user .. ',"info":null,"since":1}')
          redis.call('ZADD', KEYS[2], 9999999999999, 'c' .. i)
        end"""
    redis_server.cli("EVAL", script, "2", members_key, leases_key)
    status, body = presence(a, room)
    assert status == 200
    assert body["clients"] == 1001 and body["users"] == 7 and body["truncated"] is True
    assert len(body["members"]) == 1000
    redis_server.cli("DEL", members_key, leases_key)


# --------------------------------------------------------------------------- grants, identity

@pytest.fixture
def auth_pair(redis_server):
    args = ("--presence-ttl", TTL, "--jwt-secret", SECRET.decode())
    heralds = [launch_herald(*args, redis_url=redis_server.url) for _ in range(2)]
    yield heralds
    for h in heralds:
        h.stop()


def token(sub="dave", subscribe=("room-*",), **extra):
    return make_jwt({"sub": sub, "subscribe": list(subscribe), "exp": int(time.time()) + 600, **extra})


def test_identity_comes_from_the_token(auth_pair):
    a, b = auth_pair
    room = unique("room")
    dave = member(a, [room], token=token(info={"name": "Dave", "n": 1}), user="mallory")
    join = dave.joined(room)
    assert join["user"] == "dave" and join["info"] == {"name": "Dave", "n": 1}  # user= ignored
    erin = member(b, [room], token=token(sub="erin"))
    erin.joined(room)
    assert dave.event("join", erin.client)["user"] == "erin"
    status, body = presence(b, room, headers={"Authorization": "Bearer " + token()})
    assert status == 200 and body["users"] == 2
    assert {m["user"]: m["info"] for m in body["members"]} == {"dave": {"name": "Dave", "n": 1}, "erin": None}
    dave.close()
    erin.close()


def test_presence_needs_the_subscribe_grant(auth_pair):
    a, _ = auth_pair
    room, secret = unique("room"), unique("secret")
    headers = {"Authorization": "Bearer " + token()}
    status, body = presence(a, secret, headers=headers)
    assert status == 403 and body["error"] == "forbidden", body
    status, body = presence(a, room)
    assert status == 401, body
    dave = member(a, [room], token=token())
    dave.joined(room)
    answer = dave.op({"op": "presence", "channel": secret, "id": 3})
    assert answer["type"] == "error" and answer["code"] == "forbidden", answer
    answer = dave.op({"op": "subscribe", "channel": secret, "presence": True, "id": 4})
    assert answer["type"] == "error" and answer["code"] == "forbidden", answer
    assert presence(a, secret, headers={"Authorization": "Bearer " + token(subscribe=["*"])})[1]["clients"] == 0
    dave.close()


# --------------------------------------------------------------------------- bad input

def test_bad_input(pair):
    a, _ = pair
    room = unique("room")
    status, body = presence(a, "")
    assert status == 400 and body["error"] == "bad_request", body
    status, _, body = http_json("GET", a.base_url + "/presence/%ZZ")
    assert status == 400, body
    # A channel no one is in: zero members, not 404.
    status, body = presence(a, unique("nobody"))
    assert status == 200 and body["clients"] == 0 and body["users"] == 0 and body["members"] == []
    for query in (f"channel={room}&presence=maybe", "presence=true", f"channel={room}&presence=true&user="):
        status, _, body = http_json("GET", f"{a.base_url}/events?{query}")
        assert status == 400 and body["error"] == "bad_request", (query, body)
    m = member(a, [room])
    m.joined(room)
    for op in ({"op": "presence", "id": 1}, {"op": "presence", "channel": "", "id": 2},
               {"op": "subscribe", "channel": room, "presence": "yes", "id": 3},
               {"op": "psubscribe", "pattern": "r*", "presence": True, "id": 4}):
        answer = m.op(op)
        assert answer["type"] == "error" and answer["code"] == "bad_request", (op, answer)
    m.close()
    # The event channel is Herald's: a forged join cannot be published there.
    status, _, body = http_json("POST", a.base_url + "/publish/" + urllib.parse.quote(
        f"herald:presence-events:{{{room}}}:{len(room)}:{room}", safe=""), b'{"type":"join"}')
    assert status == 403 and body["error"] == "reserved_name", body


def test_redis_down_is_503(start_redis):
    redis = start_redis()
    h = launch_herald("--presence-ttl", TTL, redis_url=redis.url)
    try:
        redis.stop()
        wait_until(lambda: presence(h, "room")[0] == 503, what="503 once Redis is gone")
        assert presence(h, "room")[1]["error"] == "redis_unavailable"
    finally:
        h.stop()


# --------------------------------------------------------------------------- cluster

def test_presence_across_two_heralds_on_a_cluster(redis_cluster):
    heralds = [launch_herald("--presence-ttl", TTL, redis_url=redis_cluster.url) for _ in range(2)]
    try:
        for room in (unique("room"), "a}b" + unique(""), unique("{tagged}room")):
            one = member(heralds[0], [room], user="one")
            one.joined(room)
            two = member(heralds[1], [room], user="two")
            two.joined(room)
            one.event("join", two.client)
            status, body = presence(heralds[1], room)
            assert status == 200 and body["clients"] == 2 and body["users"] == 2, body
            two.close()
            one.event("leave", two.client)
            one.close()
    finally:
        for h in heralds:
            h.stop()


# --------------------------------------------------------------------------- herald.js, demo page

def test_herald_js_presence_and_the_demo_card(pair):
    """herald.js: subscribe with {presence: true}, "join"/"leave" events, presence(); the demo
    page: a channel card shows who is in the channel and join/leave rows."""
    pytest.importorskip("selenium")
    import test_demo_page as demo
    from selenium.webdriver.common.by import By
    a, b = pair
    drivers = demo.driver.__wrapped__()  # the demo tests' headless Chromium (skips without it)
    driver = next(drivers)
    try:
        room = unique("room")
        demo._open_page(driver, a)
        driver.set_script_timeout(15)
        result = driver.execute_async_script("""
            const [room, done] = arguments;
            const h = new Herald();
            const events = [];
            h.on("join", (m) => events.push(["join", m.client, m.user]));
            h.on("leave", (m) => events.push(["leave", m.client, m.user]));
            h.subscribe(room, () => {}, {presence: true}).then(async () => {
              const wait = (ms) => new Promise((r) => setTimeout(r, ms));
              for (let i = 0; i < 100 && events.length < 1; i++) await wait(50);
              window.__presenceClient = h;
              window.__presenceEvents = events;
              done({own: events[0], who: await h.presence(room)});
            }, (e) => done({err: String(e)}));
        """, room)
        assert "err" not in result, result
        own = result["own"]
        assert own[0] == "join" and own[2] is None, result
        assert result["who"]["clients"] == 1 and result["who"]["members"][0]["client"] == own[1]

        other = Member(b, [room], user="bob")
        other.joined(room)
        other.close()
        events = demo._wait(driver, lambda d: (lambda ev: ev if len(ev) >= 3 else None)(
            d.execute_script("return window.__presenceEvents")), "bob's join and leave in herald.js")
        assert events[1] == ["join", other.client, "bob"] and events[2] == ["leave", other.client, "bob"]
        driver.execute_script("window.__presenceClient.close()")

        # The demo page: its channel card joins presence as a guest and shows who is there.
        demo._subscribe_via_page(driver, "channel", room)
        card = f'#channels .card[data-kind="channel"][data-name="{room}"]'
        clients = lambda d: d.find_element(By.CSS_SELECTOR, card + " .card-presence").get_attribute("data-clients")
        demo._wait(driver, lambda d: clients(d) == "1", "the card to count the page itself")
        carol = Member(b, [room], user="carol")
        carol.joined(room)
        demo._wait(driver, lambda d: clients(d) == "2", "the card to count carol")
        assert "carol" in driver.find_element(By.CSS_SELECTOR, card + " .card-presence").text
        rows = driver.find_elements(By.CSS_SELECTOR, card + ' .event[data-type="join"]')
        assert any("carol joined" in r.text for r in rows), [r.text for r in rows]
        carol.close()
        demo._wait(driver, lambda d: clients(d) == "1", "the card to see carol leave")
    finally:
        next(drivers, None)
