"""herald.js `watch()` / `unwatch()` against Herald's watch protocol (issue 13, items 1 and 2),
in headless Chromium, with and without `{shared: true}`.

Each page is a bare one (herald.js and nothing else, from a temporary --public folder) whose
`window.__watch(name, keys, patterns)` makes a watch that records every call of its handlers
(value, deleted, expired, watching, gap, unsubscribed, error) in `__w[name]`. Every change is
made by another Redis client (the RESP client of test_watch.py, or redis-cli), as an app's
worker would, and the test checks what the page's handlers got, value by value.

What a user of the feature would check:
- a snapshot (hash, string, a missing key as kind "none"), then each change, deletion and
  expiry with exact values; a value that is not UTF-8 (base64, Herald.valueBytes) and one over
  --max-watch-value (truncated, size);
- a pattern watch; stopping a watch ends its updates on the page and on Herald;
- Herald's refusals (watch_too_broad; forbidden with a JWT whose watch claim does not cover
  the key) reach handlers.error and the "error" event, and leave the page's other watches alone;
- Herald's Redis link lost and back: the pattern's handler gets a gap, fresh values, then
  watching; the page's own connection lost and back: the watch is sent again, a gap for the
  pattern, and the page converges on Redis's values;
- three tabs sharing one WebSocket and watching overlapping keys: each tab gets exactly its
  keys' values, an unwatch in one tab leaves the others' alone, a refusal goes to its tab only,
  and a refreshed token that drops a watch ends it (unsubscribed, forbidden) in the tab that had it;
- the demo page's "Watched key" card shows the key's live value as Redis changes it, with
  Herald run as `make run` runs it against a Redis that has notifications off (--keyspace-events).
"""

import json
import time
import uuid

import pytest
from selenium.webdriver.common.by import By

from conftest import recv_json, ws_connect
from test_auth import SECRET, claims, make_jwt
from test_browser_shared import _metric, _websockets, bare_public, tabs  # noqa: F401
from test_demo_page import _click, _open_page, _type_into, _wait, driver  # noqa: F401
from test_watch import KA, Resp, notifying_redis, r  # noqa: F401  (fixtures)

# Runs in a page: a Herald (shared or not) and a way to make recorded watches.
SETUP = """
const [shared, token] = arguments;
window.__w = {errors: [], gaps: [], states: []};
const options = {shared: shared, minDelay: 100, maxDelay: 1000};
if (token) {  // a list: each call of the token function takes the next one
  let calls = 0;
  options.token = () => token[Math.min(calls++, token.length - 1)];
}
const h = new Herald(undefined, options);
window.__h = h;
h.on("error", (e) => __w.errors.push({code: e.code, key: (e.answer && e.answer.key) || null}));
h.on("gap", (g) => __w.gaps.push(g));
h.on("state", (s) => __w.states.push(s));
window.__stops = {};
window.__watch = (name, keys, patterns) => {
  const log = (__w[name] = []);
  const rec = (m) => log.push(m instanceof Error ? {type: "error", code: m.code, key: (m.answer && m.answer.key) || null} : m);
  __stops[name] = h.watch(keys, patterns, {value: rec, deleted: rec, expired: rec, watching: rec,
                                            gap: rec, unsubscribed: rec, error: rec});
};
"""


def _page(driver, tabs, herald, shared=False, token=None):  # noqa: F811
    handle = tabs.open(herald.base_url + "/")
    driver.execute_script(SETUP, shared, token)
    return handle


def _in(driver, handle, script, *args):  # noqa: F811
    driver.switch_to.window(handle)
    return driver.execute_script(script, *args)


def _log(driver, handle, name):  # noqa: F811
    return _in(driver, handle, "return __w[arguments[0]] || [];", name)


def _watch(driver, handle, name, keys=(), patterns=()):  # noqa: F811
    _in(driver, handle, "__watch(arguments[0], arguments[1], arguments[2]);", name, list(keys), list(patterns))


def _wait_log(driver, handle, name, condition, what, timeout=10):  # noqa: F811
    deadline = time.monotonic() + timeout
    while True:
        log = _log(driver, handle, name)
        if condition(log):
            return log
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; {name}: {json.dumps(log)[:3000]}; "
                        f"page: {json.dumps(_in(driver, handle, 'return {errors: __w.errors, states: __w.states};'))}")
        time.sleep(0.05)


def _wait_for(driver, handle, name, msg, what=None, timeout=10):  # noqa: F811
    """Waits until `msg` is in the watch's log; returns what came after it."""
    log = _wait_log(driver, handle, name, lambda log: msg in log, what or json.dumps(msg), timeout)
    return log[log.index(msg) + 1:]


def _watching(log):
    return [m for m in log if m.get("type") == "watching"]


def _snapshot(log):
    """A watch's first snapshot: ({key: value message}, its watching answer without herald.js's id)."""
    end = next(i for i, m in enumerate(log) if m["type"] == "watching")
    assert all(m["type"] == "value" for m in log[:end]), log
    answer = {k: v for k, v in log[end].items() if k != "id"}
    return {m["key"]: m for m in log[:end]}, answer


def _held(log):
    """What a watch holds after its log: {key: (kind, value)}; a gap drops the pattern's keys."""
    held = {}
    for m in log:
        if m["type"] == "value":
            held[m["key"]] = (m["kind"], m.get("value"))
        elif m["type"] in ("deleted", "expired"):
            held[m["key"]] = ("none", None)
        elif m["type"] == "gap":
            held = {}
    return {k: v for k, v in held.items() if v[0] != "none"}


def _run():
    return uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------- one page

def test_snapshot_then_changes_from_another_client(driver, tabs, start_herald, bare_public, notifying_redis, r):  # noqa: F811
    herald = start_herald("--max-watch-value", "1024", public=bare_public, redis_url=notifying_redis.url)
    run = _run()
    order, counter, missing, blob, big = (f"{n}:{run}" for n in ("order", "counter", "missing", "blob", "big"))
    r("HSET", order, "status", "paid", "total", "10")
    r("SET", counter, "5")
    page = _page(driver, tabs, herald)
    _watch(driver, page, "a", keys=[order, counter, missing, blob, big])
    log = _wait_log(driver, page, "a", _watching, "the snapshot's watching answer")
    values, answer = _snapshot(log)
    assert values == {
        order: {"type": "value", "key": order, "kind": "hash", "value": {"status": "paid", "total": "10"}},
        counter: {"type": "value", "key": counter, "kind": "string", "value": "5"},
        missing: {"type": "value", "key": missing, "kind": "none", "value": None},
        blob: {"type": "value", "key": blob, "kind": "none", "value": None},
        big: {"type": "value", "key": big, "kind": "none", "value": None},
    }
    assert answer == {"type": "watching", "keys": [order, counter, missing, blob, big], "patterns": []}

    r("HSET", order, "status", "shipped")
    _wait_for(driver, page, "a", {"type": "value", "key": order, "kind": "hash", "value": {"status": "shipped", "total": "10"}})
    r("INCR", counter)
    _wait_for(driver, page, "a", {"type": "value", "key": counter, "kind": "string", "value": "6"})
    r("SET", missing, "here now")
    _wait_for(driver, page, "a", {"type": "value", "key": missing, "kind": "string", "value": "here now"})
    r("DEL", order)
    _wait_for(driver, page, "a", {"type": "deleted", "key": order})
    r("PEXPIRE", counter, 100)
    _wait_for(driver, page, "a", {"type": "expired", "key": counter})
    # Bytes that are not UTF-8 travel base64; Herald.valueBytes gives them back.
    r("SET", blob, b"\xff\x00ok")
    _wait_for(driver, page, "a", {"type": "value", "key": blob, "kind": "string", "value": "/wBvaw==", "encoding": "base64"})
    got = _in(driver, page, "const m = __w.a.filter((m) => m.key === arguments[0] && m.value).pop();"
              "return Array.from(Herald.valueBytes(m));", blob)
    assert got == [0xFF, 0x00, 0x6F, 0x6B]
    # Over --max-watch-value: its size, no value.
    r("SET", big, "x" * 2000)
    _wait_for(driver, page, "a", {"type": "value", "key": big, "kind": "string", "truncated": True, "size": 2000})
    assert _in(driver, page, "return __w.errors;") == []


def test_pattern_watch_and_unwatch_stops_updates(driver, tabs, start_herald, bare_public, notifying_redis, r):  # noqa: F811
    herald = start_herald(public=bare_public, redis_url=notifying_redis.url)
    run = _run()
    pattern, first, second, third, key = f"cart:{run}:*", f"cart:{run}:1", f"cart:{run}:2", f"cart:{run}:3", f"k:{run}"
    r("SET", first, "one")
    page = _page(driver, tabs, herald)
    _watch(driver, page, "p", patterns=[pattern])
    _watch(driver, page, "k", keys=[key])
    values, answer = _snapshot(_wait_log(driver, page, "p", _watching, "the pattern's snapshot"))
    assert values == {first: {"type": "value", "key": first, "kind": "string", "value": "one"}}
    assert answer == {"type": "watching", "keys": [], "patterns": [pattern]}
    _wait_log(driver, page, "k", _watching, "the key's snapshot")
    r("SADD", second, "b", "a")
    _wait_for(driver, page, "p", {"type": "value", "key": second, "kind": "set", "value": ["a", "b"]})
    r("DEL", first)
    _wait_for(driver, page, "p", {"type": "deleted", "key": first})
    assert _metric(herald, "herald_watch_keys", '{kind="pattern"}') == 1

    # Stopping the watch: Herald answers, drops the pattern, and the page hears no more of it.
    answer = _in(driver, page, "return __stops.p();")
    assert answer == {"type": "unwatched", "keys": [], "patterns": [pattern], "id": answer["id"]}
    assert _in(driver, page, "return __h.watching();") == {"keys": [key], "patterns": []}
    before = len(_log(driver, page, "p"))
    r("SET", third, "after the unwatch")
    r("SET", key, "still watched")
    _wait_for(driver, page, "k", {"type": "value", "key": key, "kind": "string", "value": "still watched"})
    time.sleep(0.3)
    assert len(_log(driver, page, "p")) == before, "no value after the unwatch"
    _wait(driver, lambda _: _metric(herald, "herald_watch_keys", '{kind="pattern"}') == 0, "Herald to drop the pattern")
    # unwatch() with no names ends every watch.
    assert _in(driver, page, "return __h.unwatch();")["keys"] == [key]
    _wait(driver, lambda _: _metric(herald, "herald_watch_keys", '{kind="key"}') == 0, "Herald to drop the key")


def test_refusals_reach_the_handlers_and_leave_other_watches_alone(driver, tabs, start_herald, bare_public, notifying_redis, r):  # noqa: F811
    herald = start_herald("--jwt-secret", SECRET.decode(), public=bare_public, redis_url=notifying_redis.url)
    run = _run()
    allowed, denied = f"order:{run}", f"session:{run}"
    token = make_jwt(claims(subscribe=["*"], watch=["order:*"]))
    page = _page(driver, tabs, herald, token=[token])
    _watch(driver, page, "ok", keys=[allowed])
    _watch(driver, page, "denied", keys=[allowed, denied])  # one name it may not watch: the op fails
    _watch(driver, page, "broad", patterns=["*"])
    _wait_log(driver, page, "denied", lambda log: log, "the refusal")
    assert _log(driver, page, "denied") == [{"type": "error", "code": "forbidden", "key": None}]
    assert _wait_log(driver, page, "broad", lambda log: log, "the refusal") == [
        {"type": "error", "code": "watch_too_broad", "key": None}]
    errors = _in(driver, page, "return __w.errors;")
    assert {"code": "forbidden", "key": None} in errors and {"code": "watch_too_broad", "key": None} in errors
    # The refused watches are gone; the one Herald accepted goes on (it shares a key with one
    # that was refused).
    assert _in(driver, page, "return __h.watching();") == {"keys": [allowed], "patterns": []}
    _wait_log(driver, page, "ok", _watching, "the allowed watch's answer")
    r("HSET", allowed, "status", "paid")
    _wait_for(driver, page, "ok", {"type": "value", "key": allowed, "kind": "hash", "value": {"status": "paid"}})
    assert len(_log(driver, page, "denied")) == 1


def test_reconnects_send_the_watch_again_and_the_page_converges(driver, tabs, start_redis, start_herald, bare_public):  # noqa: F811
    """Herald's Redis link lost and back (Redis restarted): the pattern's handler is told to
    drop what it holds (gap), then fresh values, then watching. The page's own connection lost
    and back (Herald restarted): the watch is sent again, the pattern gets a gap (source
    reconnect), and what the page holds ends equal to Redis."""
    redis = start_redis(extra_args=KA)
    herald = start_herald(public=bare_public, redis_url=redis.url)
    run = _run()
    key, pattern = f"order:{run}", f"cart:{run}:*"
    carts = [f"cart:{run}:{i}" for i in range(3)]
    r = Resp(redis.port)
    r("SET", key, "1")
    for c in carts:
        r("SET", c, "in the cart")
    page = _page(driver, tabs, herald)
    _watch(driver, page, "w", keys=[key], patterns=[pattern])
    _wait_log(driver, page, "w", _watching, "the snapshot")

    # 1. Redis restarts (its data is gone): Herald's gap, then fresh values.
    r.close()
    port = redis.port
    redis.stop()
    redis = start_redis(port=port, extra_args=KA)
    r = Resp(redis.port)
    gap = {"type": "gap", "kind": "watch", "pattern": pattern, "source": "herald"}
    after = _wait_for(driver, page, "w", gap, "Herald's gap for the pattern", timeout=30)
    _wait_log(driver, page, "w", lambda log: {"type": "watching", "keys": [], "patterns": [pattern]} in log[log.index(gap):],
              "the pattern's watching after its fresh values")
    assert gap in _in(driver, page, "return __w.gaps;")
    _wait_for(driver, page, "w", {"type": "value", "key": key, "kind": "none", "value": None}, "the key's fresh value")
    r("SET", key, "2")
    r("SET", carts[0], "again")
    _wait_log(driver, page, "w", lambda log: _held(log) == {key: ("string", "2"), carts[0]: ("string", "again")},
              "the page holding Redis's values after the Redis restart")
    assert all(m["type"] != "deleted" for m in after), "keys lost with Redis are dropped by the gap, not told one by one"

    # 2. Herald restarts: the page reconnects and watches again; changes made meanwhile arrive.
    port = herald.port
    herald.stop()
    _wait(driver, lambda _: "reconnecting" in _in(driver, page, "return __w.states;"), "the page to notice")
    r("SET", key, "3")
    r("DEL", carts[0])
    r("HSET", carts[1], "sku", "A1")
    herald = start_herald(public=bare_public, redis_url=redis.url, port=port)
    _wait_for(driver, page, "w", {"type": "gap", "kind": "watch", "pattern": pattern, "source": "reconnect"},
              "the page's own gap for the pattern", timeout=30)
    _wait_log(driver, page, "w", lambda log: _held(log) == {key: ("string", "3"), carts[1]: ("hash", {"sku": "A1"})},
              "the page holding Redis's values after Herald's restart")
    r("INCR", key)
    _wait_for(driver, page, "w", {"type": "value", "key": key, "kind": "string", "value": "4"})
    r.close()


def test_server_a_pattern_is_resynced_after_redis_restarts(start_redis, start_herald):
    """The server side of the test above, without a browser (a fix in WatchRegistry): after
    Redis restarts, Herald's subscriber link may be back before its command link, so the
    pattern's SCAN found Redis unreachable and was dropped: no fresh values, no `watching`.
    It is tried again until it runs."""
    redis = start_redis(extra_args=KA)
    herald = start_herald(redis_url=redis.url, loops=1)
    pattern = f"cart:{_run()}:*"
    ws = ws_connect(f"{herald.ws_url}/subscribe")
    ws.send(json.dumps({"op": "watch", "patterns": [pattern], "id": 1}))
    assert recv_json(ws) == {"type": "watching", "keys": [], "patterns": [pattern], "id": 1}
    port = redis.port
    redis.stop()
    redis = start_redis(port=port, extra_args=KA)
    redis.cli("SET", pattern.replace("*", "1"), "after")
    got = []
    deadline = time.monotonic() + 20
    while {"type": "watching", "keys": [], "patterns": [pattern]} not in got and time.monotonic() < deadline:
        got.append(recv_json(ws, max(0.1, deadline - time.monotonic())))
    assert got[0] == {"type": "gap", "kind": "watch", "pattern": pattern}, got
    assert got[-1] == {"type": "watching", "keys": [], "patterns": [pattern]}, got
    ws.close()


# --------------------------------------------------------------------------- shared connection

def test_three_tabs_share_one_websocket_and_each_gets_its_keys(driver, tabs, start_herald, bare_public, notifying_redis, r):  # noqa: F811
    herald = start_herald(public=bare_public, redis_url=notifying_redis.url)
    run = _run()
    a, b, c = f"a:{run}", f"b:{run}", f"c:{run}"
    pattern = f"[ab]:{run}"
    for k in (a, b, c):
        r("SET", k, k + "=0")
    pages = [_page(driver, tabs, herald, shared=True) for _ in range(3)]
    _watch(driver, pages[0], "w", keys=[a, b])
    _watch(driver, pages[1], "w", keys=[b, c])
    _watch(driver, pages[2], "w", patterns=[pattern])
    wants = {pages[0]: {a, b}, pages[1]: {b, c}, pages[2]: {a, b}}
    for page in pages:
        values, _ = _snapshot(_wait_log(driver, page, "w", _watching, "every tab's snapshot"))
        assert set(values) == wants[page]
        assert all(values[k]["value"] == k + "=0" for k in values)
    _wait(driver, lambda _: sorted(_in(driver, p, "return __h.shared.mode;") for p in pages) == ["holder", "via", "via"],
          "one tab holding the shared connection")
    assert _websockets(herald) == 1, "three tabs, one WebSocket"

    for k in (a, b, c):
        r("SET", k, k + "=1")
    for page in pages:
        _wait_log(driver, page, "w", lambda log, page=page: _held(log) == {k: ("string", k + "=1") for k in wants[page]},
                  "every tab's new values")
    time.sleep(0.3)
    for page in pages:
        keys = {m["key"] for m in _log(driver, page, "w") if m["type"] == "value"}
        assert keys == wants[page], "a tab gets exactly its keys' values"

    # Tab 0 stops its watch: tab 1 still gets b, tab 2 still gets a and b through its pattern;
    # Herald keeps b (and c) for tab 1.
    answer = _in(driver, pages[0], "return __stops.w();")
    assert sorted(answer["keys"]) == sorted([a, b])
    before = len(_log(driver, pages[0], "w"))
    r("SET", b, "b=2")
    r("SET", a, "a=2")
    _wait_for(driver, pages[1], "w", {"type": "value", "key": b, "kind": "string", "value": "b=2"})
    _wait_for(driver, pages[2], "w", {"type": "value", "key": a, "kind": "string", "value": "a=2"})
    time.sleep(0.3)
    assert len(_log(driver, pages[0], "w")) == before
    assert _metric(herald, "herald_watch_keys", '{kind="key"}') == 2  # b and c, for tab 1

    # A refusal goes to the tab that asked only.
    _watch(driver, pages[1], "broad", patterns=["?*"])
    assert _wait_log(driver, pages[1], "broad", lambda log: log, "the refusal") == [
        {"type": "error", "code": "watch_too_broad", "key": None}]
    time.sleep(0.3)
    assert _in(driver, pages[0], "return __w.errors;") == [] and _in(driver, pages[2], "return __w.errors;") == []
    assert _websockets(herald) == 1


def test_the_holder_closes_and_the_other_tabs_watches_go_on(driver, tabs, start_herald, bare_public, notifying_redis, r):  # noqa: F811
    """The tab holding the shared connection closes: another takes over, each tab's client
    watches again through it (a gap for its pattern, fresh values) and holds Redis's values,
    including a change made while no tab held the connection."""
    herald = start_herald(public=bare_public, redis_url=notifying_redis.url)
    run = _run()
    key, pattern, item = f"order:{run}", f"cart:{run}:*", f"cart:{run}:1"
    r("SET", key, "1")
    pages = [_page(driver, tabs, herald, shared=True) for _ in range(3)]
    for page in pages:
        _watch(driver, page, "w", keys=[key], patterns=[pattern])
        _wait_log(driver, page, "w", _watching, "every tab's snapshot")
    _wait(driver, lambda _: sorted(_in(driver, p, "return __h.shared.mode;") for p in pages) == ["holder", "via", "via"],
          "one tab holding the shared connection")
    holder = next(p for p in pages if _in(driver, p, "return __h.shared.mode;") == "holder")
    rest = [p for p in pages if p != holder]
    driver.switch_to.window(holder)
    driver.close()
    r("SET", key, "2")
    r("SET", item, "added meanwhile")
    for page in rest:
        _wait_for(driver, page, "w", {"type": "gap", "kind": "watch", "pattern": pattern, "source": "reconnect"},
                  "the tab's gap for its pattern")
        _wait_log(driver, page, "w", lambda log: _held(log) == {key: ("string", "2"), item: ("string", "added meanwhile")},
                  "the tab holding Redis's values after the takeover")
    r("INCR", key)
    for page in rest:
        _wait_for(driver, page, "w", {"type": "value", "key": key, "kind": "string", "value": "3"})
    _wait(driver, lambda _: _websockets(herald) == 1, "one WebSocket again")


def test_a_refreshed_token_ends_a_watch_in_the_tab_that_had_it(driver, tabs, start_herald, bare_public, notifying_redis, r):  # noqa: F811
    herald = start_herald("--jwt-secret", SECRET.decode(), "--token-warning", "2", public=bare_public,
                          redis_url=notifying_redis.url)
    run = _run()
    kept, dropped = f"order:{run}", f"cart:{run}"
    first_exp = int(time.time()) + 4
    tokens = [make_jwt(claims(subscribe=["*"], watch=["order:*", "cart:*"], exp_in=first_exp - int(time.time()))),
              make_jwt(claims(subscribe=["*"], watch=["order:*"]))]
    pages = [_page(driver, tabs, herald, shared=True, token=tokens) for _ in range(2)]
    _watch(driver, pages[0], "w", keys=[kept, dropped])
    _watch(driver, pages[1], "w", keys=[kept])
    for page in pages:
        _wait_log(driver, page, "w", _watching, "both tabs' snapshots")
    revoked = {"type": "unsubscribed", "kind": "watch", "names": [dropped], "reason": "forbidden"}
    _wait_for(driver, pages[0], "w", revoked, "the end of the watch the new token does not cover", timeout=15)
    assert _in(driver, pages[0], "return __h.watching();") == {"keys": [kept], "patterns": []}
    assert revoked not in _log(driver, pages[1], "w")
    r("SET", dropped, "not seen")
    r("SET", kept, "seen")
    for page in pages:
        _wait_for(driver, page, "w", {"type": "value", "key": kept, "kind": "string", "value": "seen"})
    assert all(m.get("value") != "not seen" for m in _log(driver, pages[0], "w"))
    assert _websockets(herald) == 1


# --------------------------------------------------------------------------- the demo page

def _card(driver):  # noqa: F811
    return driver.execute_script(
        "const e = document.getElementById('watch-value'); const pre = e.querySelector('pre');"
        "return {state: e.dataset.state, kind: e.dataset.kind || null, key: e.dataset.key,"
        " head: e.querySelector('p').textContent, body: pre ? pre.textContent : null};")


def test_demo_card_shows_the_watched_keys_live_value(driver, start_redis, start_herald):  # noqa: F811
    """As `make run` runs it against a Redis of the user's whose notifications are off: Herald
    with --keyspace-events. The card watches demo:jobs when the page opens; Push and Pop
    change it through Herald's queue API, redis-cli changes it from outside, and a key typed
    into the card is watched instead."""
    redis = start_redis()
    herald = start_herald("--keyspace-events", redis_url=redis.url)
    _open_page(driver, herald)
    _wait(driver, lambda d: _card(d)["state"] == "none", "the card's snapshot of demo:jobs (no such key yet)")
    assert _card(driver)["key"] == "demo:jobs"

    _click(driver, "#watch-push")
    _wait(driver, lambda d: _card(d)["kind"] == "list", "the pushed job in the card")
    assert json.loads(_card(driver)["body"])[0].startswith("job 1 at ")
    redis.cli("LPUSH", "demo:jobs", "from redis-cli")
    _wait(driver, lambda d: (json.loads(_card(d)["body"] or "[]") or [None])[0] == "from redis-cli",
          "redis-cli's push in the card")
    _click(driver, "#watch-pop")
    _wait(driver, lambda d: json.loads(_card(d)["body"] or "[]") == ["from redis-cli"], "the pop in the card")

    _type_into(driver, "watch-key", "demo:counter")
    _click(driver, "#watch-btn")
    _wait(driver, lambda d: _card(d)["key"] == "demo:counter" and _card(d)["state"] == "none", "the counter's snapshot")
    redis.cli("INCR", "demo:counter")
    _wait(driver, lambda d: _card(d)["body"] == "1" and _card(d)["kind"] == "string", "INCR in the card")
    redis.cli("INCRBY", "demo:counter", "41")
    _wait(driver, lambda d: _card(d)["body"] == "42", "INCRBY in the card")
    redis.cli("DEL", "demo:counter")
    _wait(driver, lambda d: _card(d)["state"] == "deleted", "DEL in the card")
    redis.cli("LPUSH", "demo:jobs", "not shown")  # the first key is no longer watched
    time.sleep(0.3)
    assert _card(driver)["state"] == "deleted"
    assert driver.find_element(By.ID, "ws-error").is_displayed() is False


def test_demo_card_says_what_to_set_when_redis_sends_no_notifications(driver, start_redis, start_herald):  # noqa: F811
    """Without keyspace notifications (and without --keyspace-events) the card shows Herald's
    watch_unavailable answer, which names the setting; the page's error banner stays for
    connection errors."""
    redis = start_redis()
    herald = start_herald(redis_url=redis.url)
    _open_page(driver, herald)
    _wait(driver, lambda d: _card(d)["state"] == "error", "the card's error")
    head = _card(driver)["head"]
    assert head.startswith("watch_unavailable: ") and "notify-keyspace-events" in head, head
    assert driver.find_element(By.ID, "ws-error").is_displayed() is False
