"""herald.js under faults, in headless Chromium (issue 12, item 6).

A page served by Herald runs the demo app (its own Herald client) and, through execute_script,
a second `Herald` client that records what the application would see: `gap` events, channel
messages and the entries of a stream read from "0". Then Redis restarts under the page (its
AOF keeps the stream), and later Herald itself restarts while entries are appended straight
into Redis. The app's gap listener must fire for each, the demo page must show the gap in its
channel card, and the stream must carry on with every entry exactly once, in id order.

Fixtures (`start_redis`, `start_herald`) come from conftest.py; the browser from
test_demo_page.py.
"""

import json
import urllib.parse
import urllib.request
import uuid

from conftest import launch_redis
from test_demo_page import _open_page, _subscribe_via_page, _wait, driver  # noqa: F401

SETUP = """
const [channel, key, idle] = arguments;
window.__t = {gaps: [], messages: [], entries: [], states: []};
const h = new Herald(undefined, {minDelay: 100, maxDelay: 1000});
window.__h = h;
h.on("gap", (g) => __t.gaps.push(g));
h.on("state", (s) => __t.states.push(s));
h.subscribe(channel, (m) => __t.messages.push(m.data)).then(() => { __t.subscribed = true; });
h.stream(key, (e) => __t.entries.push([e.id, e.fields.n]), {from: "0"});
h.stream(idle, () => {}, {from: "$"});
"""


def _state(driver):
    return driver.execute_script("return window.__t;")


def _append(herald, key, n):
    url = herald.base_url + "/streams/" + urllib.parse.quote(key, safe="")
    req = urllib.request.Request(url, data=json.dumps({"n": str(n)}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())["id"]


def _publish(herald, channel, message):
    url = herald.base_url + "/publish/" + urllib.parse.quote(channel, safe="")
    req = urllib.request.Request(url, data=message.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _gap_lines(driver):
    """The names of the demo page's gap lines, in every channel card."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'#channels .card .event[data-type=\"gap\"]')).map(e => e.dataset.name);")


def _entries_are(driver, want):
    got = _state(driver)["entries"]
    return [n for _, n in got] == [str(n) for n in want]


def test_herald_js_reports_gaps_and_resumes_streams(driver, start_redis, start_herald, tmp_path):
    aof = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    redis = start_redis(extra_args=aof)
    herald = start_herald(redis_url=redis.url)
    channel = f"gaps-{uuid.uuid4().hex[:8]}"
    key = f"feed-{uuid.uuid4().hex[:8]}"
    idle = f"idle-{uuid.uuid4().hex[:8]}"

    _open_page(driver, herald)
    _subscribe_via_page(driver, "channel", channel)  # the demo app's own card
    driver.execute_script(SETUP, channel, key, idle)
    _wait(driver, lambda d: _state(d).get("subscribed"), "the test client's subscription")
    ids = [_append(herald, key, n) for n in range(3)]
    _wait(driver, lambda d: _entries_are(d, range(3)), "entries 0-2 in the page")

    # 1. Redis restarts under the page: the WebSocket stays; Herald's gap notice reaches the
    #    application as a "gap" event, and the demo page shows it in the channel's card.
    redis.stop()
    redis = launch_redis(port=redis.port, extra_args=aof)
    try:
        _wait(driver, lambda d: {"type": "gap", "kind": "channel", "channel": channel,
                                 "source": "herald"} in _state(d)["gaps"],
              "a gap event from Herald's notice after the Redis restart", timeout=30)
        _wait(driver, lambda d: channel in _gap_lines(d),
              "the demo page's gap line in the channel card")
        ids += [_append(herald, key, n) for n in range(3, 6)]
        _wait(driver, lambda d: _entries_are(d, range(6)), "entries 0-5 after the Redis restart")
        assert _publish(herald, channel, "live again")["receivers"] >= 1
        _wait(driver, lambda d: "live again" in _state(d)["messages"], "a message after the gap")

        # 2. Herald restarts under the page; entries appended meanwhile (straight into Redis)
        #    arrive once the client resumes from the last id it delivered.
        port = herald.port
        herald.stop()
        _wait(driver, lambda d: "reconnecting" in _state(d)["states"], "the client to notice")
        for n in range(6, 9):
            ids.append(redis.cli("XADD", key, "*", "n", str(n)).strip())
        herald = start_herald(redis_url=redis.url, port=port)
        ids += [_append(herald, key, n) for n in range(9, 11)]
        _wait(driver, lambda d: _entries_are(d, range(11)), "entries 0-10 after Herald's restart",
              timeout=30)
        state = _state(driver)
        assert [i for i, _ in state["entries"]] == ids, "stream not resumed exactly by id"
        # The reconnect is a gap for the channel (this client's own) and for the stream read
        # from "$" that had delivered nothing (no id to resume from); none for the resumed one.
        gaps = state["gaps"]
        assert {"type": "gap", "kind": "channel", "channel": channel,
                "source": "reconnect"} in gaps, gaps
        assert {"type": "gap", "kind": "stream", "stream": idle,
                "source": "reconnect"} in gaps, gaps
        assert not [g for g in gaps if g.get("stream") == key], gaps
    finally:
        redis.stop()


def test_herald_js_streams_with_different_starts(driver, herald):
    """Herald takes one `from` per connection; herald.js asks for the oldest position its
    streams need and hands each stream only what its own `from` covers."""
    a = f"wide-{uuid.uuid4().hex[:8]}"
    b = f"narrow-{uuid.uuid4().hex[:8]}"
    a_ids = [_append(herald, a, n) for n in range(2)]
    b_ids = [_append(herald, b, n) for n in range(4)]
    _open_page(driver, herald)
    driver.execute_script("""
        const [a, b, from] = arguments;
        window.__s = {a: [], b: []};
        const h = new Herald(undefined, {minDelay: 100, maxDelay: 1000});
        h.stream(a, (e) => __s.a.push(e.id), {from: "0"});
        h.stream(b, (e) => __s.b.push(e.id), {from: from});
    """, a, b, b_ids[1])
    b_ids.append(_append(herald, b, 4))
    _wait(driver, lambda d: d.execute_script("return __s.b.length;") >= 3, "stream b's entries")
    got = driver.execute_script("return __s;")
    assert got["a"] == a_ids, got
    assert got["b"] == b_ids[2:], f"b was read from {b_ids[1]} (exclusive): {got}"
