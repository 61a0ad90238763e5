"""herald.js with `{shared: true}`: one WebSocket per browser, shared by its tabs (issue 13, item 2).

Headless Chromium, one browser (one driver), several tabs of the same page served by Herald.
Each tab makes its own `new Herald(undefined, {shared: true})`; one tab (elected with a Web
Lock) holds the WebSocket, the others reach Herald through it over a BroadcastChannel. The page
used here is a bare one (herald.js and nothing else, from a temporary --public folder), so that
the only WebSockets Herald sees are herald.js's; the demo page's indicator is checked last.

What a user of the feature would check:
- five tabs, one WebSocket on Herald (its herald_connections{kind="websocket"} gauge), one
  Redis subscription per distinct channel (herald_subscriptions), and every tab gets exactly the
  messages of what it subscribed to; an unsubscribe in one tab leaves the others' deliveries of
  a shared channel alone, and the last tab leaving a channel unsubscribes it on Herald;
- closing the holding tab: another takes over within 2 s, every tab's stream goes on with each
  entry exactly once (entries appended while no tab holds the connection included, tabs having
  seen different last ids), and pub/sub tabs get a "gap" event (source "reconnect");
- without navigator.locks / BroadcastChannel (deleted before herald.js loads) each tab falls
  back to its own connection and still gets its messages.

Fixtures (`start_herald`, `herald`, `redis_server`) come from conftest.py; the browser (`driver`)
and `_wait` from test_demo_page.py.
"""

import json
import re
import shutil
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from selenium.common.exceptions import WebDriverException

from conftest import PUBLIC_DIR, http
from test_auth import SECRET, make_jwt
from test_demo_page import _wait, driver  # noqa: F401

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shared</title><link rel="icon" href="data:,"></head>
<body>
<script>
  // ?nolocks: a browser without Web Locks and BroadcastChannel (herald.js falls back).
  if (/[?&]nolocks/.test(location.search)) {
    delete Navigator.prototype.locks;
    delete window.BroadcastChannel;
  }
</script>
<script src="herald.js"></script>
</body></html>
"""

# Runs in a tab: a shared Herald that records what the application sees.
SETUP = """
window.__t = {messages: [], gaps: [], entries: {}, shared: [], states: [], subscribed: false,
              joins: [], unsubscribed: [], refreshed: [], closes: 0};
const options = {shared: true, minDelay: 100, maxDelay: 1000};
if (arguments[0]) {  // tokens: each call of the token function takes the next one
  let calls = 0;
  options.token = () => arguments[0][Math.min(calls++, arguments[0].length - 1)];
}
const h = new Herald(undefined, options);
window.__h = h;
h.on("gap", (g) => __t.gaps.push(g));
h.on("join", (m) => __t.joins.push([m.type, m.channel, m.client]));
h.on("leave", (m) => __t.joins.push([m.type, m.channel, m.client]));
h.on("unsubscribed", (u) => __t.unsubscribed.push([u.kind, u.names, u.reason || null]));
h.on("refreshed", (a) => __t.refreshed.push(a.exp));
h.on("close", () => { __t.closes += 1; });
h.on("state", (s) => __t.states.push([Date.now(), s]));
h.on("shared", (s) => __t.shared.push([Date.now(), s.mode, s.holder]));
"""

SUBSCRIBE = """
const [channels, patterns] = arguments;
const record = (m) => __t.messages.push([m.pattern || m.channel, m.data]);
const done = [];
if (channels.length) done.push(__h.subscribe(channels, record));
if (patterns.length) done.push(__h.psubscribe(patterns, record));
Promise.all(done).then(() => { __t.subscribed = true; }, (e) => { __t.error = String(e); });
"""

STREAM = """
const [key, from] = arguments;
__t.entries[key] = [];
__h.stream(key, (e) => __t.entries[key].push(e.id), {from: from});
"""


@pytest.fixture
def bare_public(tmp_path):
    """A --public folder with the bare test page and this tree's herald.js."""
    public = tmp_path / "public"
    public.mkdir()
    shutil.copy(PUBLIC_DIR / "herald.js", public / "herald.js")
    (public / "index.html").write_text(PAGE)
    return public


@pytest.fixture
def page_herald(start_herald, bare_public):
    """A Herald serving the bare test page."""
    return start_herald(public=bare_public)


@pytest.fixture
def tabs(driver):  # noqa: F811
    """Opens tabs on demand (`tabs.open(url)`); afterwards leaves one blank tab."""
    opened = []

    class Tabs:
        def open(self, url):
            if opened or driver.current_url not in ("data:,", "about:blank"):
                driver.switch_to.new_window("tab")
            driver.get(url)
            opened.append(driver.current_window_handle)
            return driver.current_window_handle

    yield Tabs()
    # A fresh blank tab stays (the others may include a crashed one, which cannot be reused).
    driver.switch_to.new_window("tab")
    keep = driver.current_window_handle
    for handle in driver.window_handles:
        if handle == keep:
            continue
        driver.switch_to.window(handle)
        try:
            driver.close()
        except WebDriverException:  # a crashed tab closes all the same
            pass
    driver.switch_to.window(keep)


def _in(driver, handle, script, *args):  # noqa: F811
    driver.switch_to.window(handle)
    return driver.execute_script(script, *args)


def _t(driver, handle):  # noqa: F811
    return _in(driver, handle, "return window.__t;")


def _metric(herald, name, labels):
    status, _, body = http("GET", herald.base_url + "/metrics")
    assert status == 200
    pattern = re.escape(name) + re.escape(labels) + r" (\d+)"
    match = re.search(pattern, body.decode())
    assert match, f"{name}{labels} not in /metrics"
    return int(match.group(1))


def _websockets(herald):
    return _metric(herald, "herald_connections", '{kind="websocket"}')


def _channels(herald):
    return _metric(herald, "herald_subscriptions", '{kind="channel"}')


def _publish(herald, channel, message):
    url = herald.base_url + "/publish/" + urllib.parse.quote(channel, safe="")
    req = urllib.request.Request(url, data=message.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["receivers"]


def _append(herald, key, n):
    url = herald.base_url + "/streams/" + urllib.parse.quote(key, safe="")
    req = urllib.request.Request(url, data=json.dumps({"n": str(n)}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["id"]


def _wait_all(driver, handles, condition, what, timeout=15):  # noqa: F811
    """Waits until condition(state of the tab) holds in every tab."""
    deadline = time.monotonic() + timeout
    while True:
        states = {h: _t(driver, h) for h in handles}
        if all(condition(s) for s in states.values()):
            return states
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; tabs: {json.dumps(states)[:3000]}")
        time.sleep(0.1)


def _wait_entries(driver, handles, by_tab, key, ids):  # noqa: F811
    """Every tab's stream holds exactly the entries after its start (tab i: ids[i:]), once each."""
    deadline = time.monotonic() + 15
    while not all(len(_t(driver, h)["entries"].get(key, [])) >= len(ids) - by_tab[h] for h in handles):
        if time.monotonic() > deadline:
            states = {h: {k: _t(driver, h)[k] for k in ("entries", "states", "shared")} for h in handles}
            pytest.fail(f"timed out waiting for {len(ids)} entries of {key} in every tab: {json.dumps(states)[:4000]}")
        time.sleep(0.1)
    time.sleep(0.3)  # a duplicate would have arrived by now
    for h in handles:
        got = _t(driver, h)["entries"][key]
        assert got == ids[by_tab[h]:], f"tab {by_tab[h]}: every entry after its start, once each"


def _open_tabs(driver, tabs, herald, n, query="", tokens=None):  # noqa: F811
    handles = []
    for _ in range(n):
        handle = tabs.open(herald.base_url + "/" + query)
        driver.execute_script(SETUP, tokens)
        handles.append(handle)
    return handles


def _modes(driver, handles):  # noqa: F811
    return {h: _in(driver, h, "return window.__h.shared;") for h in handles}


def _wait_shared(driver, handles, tabs_count):  # noqa: F811
    """Every tab knows the same holder (one of them), which counts `tabs_count` tabs."""
    def settled(_):
        modes = _modes(driver, handles)
        holders = {m.get("holder") for m in modes.values()}
        kinds = sorted(m["mode"] for m in modes.values())
        return (len(holders) == 1 and kinds == ["holder"] + ["via"] * (len(handles) - 1)
                and all(m.get("tabs") == tabs_count for m in modes.values()))
    _wait(driver, settled, f"one holder among {len(handles)} tabs")
    return _modes(driver, handles)


def test_five_tabs_share_one_websocket_and_each_gets_its_messages(driver, tabs, page_herald):  # noqa: F811
    herald = page_herald
    run = uuid.uuid4().hex[:8]
    everyone, pair, pattern = f"all-{run}", f"pair-{run}", f"pat-{run}-*"
    own = [f"own-{run}-{i}" for i in range(5)]
    handles = _open_tabs(driver, tabs, herald, 5)
    # Overlapping and distinct subscriptions: all five share one channel, tabs 0 and 1 share
    # another, each has its own, tab 2 also reads a pattern.
    for i, handle in enumerate(handles):
        channels = [everyone, own[i]] + ([pair] if i < 2 else [])
        _in(driver, handle, SUBSCRIBE, channels, [pattern] if i == 2 else [])
    _wait_all(driver, handles, lambda s: s["subscribed"], "every tab's subscriptions")
    modes = _wait_shared(driver, handles, 5)

    assert _websockets(herald) == 1, "the five tabs should share one WebSocket"
    # One Redis subscription per distinct channel: all, pair and the five own ones (the gauge
    # is refreshed every 500 ms).
    _wait(driver, lambda _: _channels(herald) == 7, "7 channel subscriptions on Herald")

    _publish(herald, everyone, "to all")
    _publish(herald, pair, "to the pair")
    for i in range(5):
        _publish(herald, own[i], f"to {i}")
    _publish(herald, pattern.replace("*", "x"), "to the pattern")
    want = {}
    for i, handle in enumerate(handles):
        want[handle] = [[everyone, "to all"]] + ([[pair, "to the pair"]] if i < 2 else [])
        want[handle] += [[own[i], f"to {i}"]] + ([[pattern, "to the pattern"]] if i == 2 else [])
    _wait(driver, lambda d: all(len(_t(d, h)["messages"]) >= len(want[h]) for h in handles),
          "every tab's deliveries")
    time.sleep(0.5)  # anything extra would have arrived by now
    for handle in handles:
        assert _t(driver, handle)["messages"] == want[handle], (handle, modes)

    # Tab 0 leaves the pair: tab 1 still gets it, and Herald still holds the channel.
    _in(driver, handles[0], "return __h.unsubscribe(arguments[0]);", pair)
    _publish(herald, pair, "after one left")
    _wait(driver, lambda d: [pair, "after one left"] in _t(d, handles[1])["messages"],
          "tab 1's delivery after tab 0 left the pair")
    assert [pair, "after one left"] not in _t(driver, handles[0])["messages"]
    time.sleep(1.0)  # past the gauge's next refresh
    assert _channels(herald) == 7
    # The last tab leaving a channel unsubscribes it on Herald.
    _in(driver, handles[1], "return __h.unsubscribe(arguments[0]);", pair)
    _wait(driver, lambda d: _channels(herald) == 6, "the pair channel to be unsubscribed on Herald")
    assert _websockets(herald) == 1


@pytest.mark.parametrize("how", ["close", "crash"])
def test_holder_goes_another_tab_takes_over_and_streams_lose_nothing(
        driver, tabs, page_herald, redis_server, how):  # noqa: F811
    """The holding tab is closed, or its renderer crashes (CDP Page.crash: no unload, no
    goodbye; only the released Web Lock tells)."""
    herald = page_herald
    run = uuid.uuid4().hex[:8]
    channel, key = f"room-{run}", f"feed-{run}"
    ids = [_append(herald, key, n) for n in range(5)]
    handles = _open_tabs(driver, tabs, herald, 5)
    # Each tab reads the stream from a different place (tab i after entry i-1; tab 0 from
    # the start), so the tabs have seen different last ids when the holder goes.
    starts = ["0"] + ids[:4]
    by_tab = {h: i for i, h in enumerate(handles)}
    for handle, start in zip(handles, starts):
        _in(driver, handle, STREAM, key, start)
        _in(driver, handle, SUBSCRIBE, [channel], [])
    _wait_all(driver, handles, lambda s: s["subscribed"], "every tab's subscription")
    _wait_shared(driver, handles, 5)
    ids += [_append(herald, key, n) for n in range(5, 8)]
    _wait_entries(driver, handles, by_tab, key, ids)

    modes = _modes(driver, handles)
    holder = next(h for h in handles if modes[h]["mode"] == "holder")
    rest = [h for h in handles if h != holder]
    closed_at = _in(driver, holder, "return Date.now();")
    driver.switch_to.window(holder)
    if how == "close":
        driver.close()
    else:
        with pytest.raises(WebDriverException, match="crashed"):
            driver.execute_cdp_cmd("Page.crash", {})
    # Entries appended while no tab holds the connection (straight into Redis, at once).
    for n in range(8, 11):
        ids.append(redis_server.cli("XADD", key, "*", "n", str(n)).strip())

    # Another tab takes over: it holds the lock and its WebSocket is open again.
    def took_over(_):
        return any(_in(driver, h, "return __h.shared.mode;") == "holder" for h in rest)
    _wait(driver, took_over, "another tab to hold the shared connection", timeout=10)
    new_holder = next(h for h in rest if _in(driver, h, "return __h.shared.mode;") == "holder")
    became = max(t for t, mode, _ in _t(driver, new_holder)["shared"] if mode == "holder")
    opened = _wait_all(driver, rest, lambda s: any(st == "open" and t > closed_at for t, st in s["states"]),
                       "every tab open again")
    reopened = max(min(t for t, st in s["states"] if st == "open" and t > closed_at)
                   for s in opened.values())
    takeover_ms, open_ms = became - closed_at, reopened - closed_at
    print(f"\ntakeover ({how}): lock held by another tab {takeover_ms} ms after the holder went; "
          f"every tab open again after {open_ms} ms")
    assert takeover_ms < 2000 and open_ms < 2000, (takeover_ms, open_ms)

    ids += [_append(herald, key, n) for n in range(11, 13)]
    _wait_entries(driver, rest, by_tab, key, ids)
    for h in rest:
        gaps = _t(driver, h)["gaps"]
        assert {"type": "gap", "kind": "channel", "channel": channel, "source": "reconnect"} in gaps, gaps
    _wait(driver, lambda _: _websockets(herald) == 1, "Herald to see one WebSocket again")
    _publish(herald, channel, "after the takeover")
    _wait_all(driver, rest, lambda s: [channel, "after the takeover"] in s["messages"],
              "a message after the takeover in every tab")


def test_without_locks_or_broadcastchannel_each_tab_has_its_own_connection(
        driver, tabs, page_herald):  # noqa: F811
    herald = page_herald
    channel = f"fallback-{uuid.uuid4().hex[:8]}"
    handles = _open_tabs(driver, tabs, herald, 2, query="?nolocks")
    for handle in handles:
        _in(driver, handle, SUBSCRIBE, [channel], [])
    _wait_all(driver, handles, lambda s: s["subscribed"], "both tabs' subscriptions")
    for handle in handles:
        assert _in(driver, handle, "return __h.shared.mode;") == "fallback"
    assert _websockets(herald) == 2
    _publish(herald, channel, "hello")  # (receivers counts Herald's loops, not its clients)
    _wait_all(driver, handles, lambda s: s["messages"] == [[channel, "hello"]], "the message in both tabs")


def test_presence_is_the_browsers_one_member_while_any_tab_is_in(driver, tabs, page_herald):  # noqa: F811
    """Presence identity is the connection's: two tabs in a room are one member; it stays
    while either tab is in and leaves when the last one leaves the channel."""
    herald = page_herald
    room = f"room-{uuid.uuid4().hex[:8]}"
    handles = _open_tabs(driver, tabs, herald, 2)
    join = "__h.subscribe(arguments[0], () => {}, {presence: true}).then(() => { __t.subscribed = true; });"
    for handle in handles:
        _in(driver, handle, join, room)
    _wait_all(driver, handles, lambda s: s["subscribed"], "both tabs in the room")
    _wait_shared(driver, handles, 2)

    def clients():
        status, _, body = http("GET", herald.base_url + "/presence/" + room)
        assert status == 200
        return json.loads(body)["clients"]

    assert clients() == 1, "two tabs of one browser are one member"
    # The first tab in hears the browser's own join.
    first = _t(driver, handles[0])["joins"]
    assert first and first[0][:2] == ["join", room], first
    _in(driver, handles[0], "return __h.unsubscribe(arguments[0]);", room)
    time.sleep(0.3)
    assert clients() == 1, "still a member while the other tab is in"
    _in(driver, handles[1], "return __h.unsubscribe(arguments[0]);", room)
    _wait(driver, lambda _: clients() == 0, "the browser to leave with its last tab")


def test_token_refresh_in_shared_mode(driver, tabs, start_herald, bare_public):  # noqa: F811
    """The holder's token function renews the token on the one WebSocket: no tab closes,
    every tab hears "refreshed", deliveries go on after the first token's exp, and a channel
    the new token no longer covers ends in the tab that had it (reason forbidden)."""
    herald = start_herald("--jwt-secret", SECRET.decode(), "--token-warning", "2", public=bare_public)
    first_exp, second_exp = int(time.time()) + 5, int(time.time()) + 120
    claims = {"sub": "alice", "publish": ["*"], "subscribe": ["tr-*", "room-?"]}
    tokens = [make_jwt(dict(claims, exp=first_exp), SECRET),
              make_jwt(dict(claims, subscribe=["tr-*"], exp=second_exp), SECRET)]
    channel, room = f"tr-{uuid.uuid4().hex[:8]}", "room-" + uuid.uuid4().hex[0]
    handles = _open_tabs(driver, tabs, herald, 2, tokens=tokens)
    _in(driver, handles[0], SUBSCRIBE, [channel], [])
    _in(driver, handles[1], SUBSCRIBE, [channel, room], [])
    _wait_all(driver, handles, lambda s: s["subscribed"], "both tabs' subscriptions")
    _wait_shared(driver, handles, 2)
    time.sleep(max(0.0, first_exp + 1.5 - time.time()))

    states = _wait_all(driver, handles, lambda s: s["refreshed"] == [second_exp], "the refresh in every tab")
    assert all(s["closes"] == 0 for s in states.values()), "no tab's connection closed"
    status, _, _ = http("POST", herald.base_url + "/publish/" + channel, b"after the first exp",
                        {"Authorization": "Bearer " + tokens[1]})
    assert status == 200
    _wait_all(driver, handles, lambda s: [channel, "after the first exp"] in s["messages"],
              "a delivery after the first token's exp in every tab")
    assert ["channel", [room], "forbidden"] in _t(driver, handles[1])["unsubscribed"]
    assert ["channel", [room], "forbidden"] not in _t(driver, handles[0])["unsubscribed"]
    assert _in(driver, handles[1], "return __h.subscriptions().channel;") == [channel]
    assert _websockets(herald) == 1


def test_demo_page_shows_which_tab_holds_the_connection(driver, tabs, herald):  # noqa: F811
    """The demo page's "Shared connection" card: the first tab holds it, the second goes
    through it; closing the first hands it to the second."""
    first = tabs.open(herald.base_url + "/")
    second = tabs.open(herald.base_url + "/")

    def card(handle):
        return _in(driver, handle, "const s = document.getElementById('shared-state');"
                   "return [s.dataset.mode, s.textContent, document.getElementById('shared-detail').textContent];")
    _wait(driver, lambda _: card(first)[0] == "holder" and card(second)[0] == "via", "the indicator in both tabs")
    assert card(first)[1] == "this tab holds it" and "2 tabs share it" in card(first)[2], card(first)
    assert card(second)[1] == "via another tab" and "holds the WebSocket" in card(second)[2], card(second)
    driver.switch_to.window(first)
    driver.close()
    _wait(driver, lambda _: card(second)[0] == "holder", "the second tab to take over")


def test_a_tab_adding_a_stream_reopens_the_connection_without_loss_or_repeat(
        driver, tabs, page_herald):  # noqa: F811
    """A stream the shared WebSocket does not read (or an older position) makes the holder
    reopen it for every tab: each tab's streams go on exactly once, a late reader gets its
    history, and the tabs' pub/sub subscriptions get a gap (as a reconnect)."""
    herald = page_herald
    run = uuid.uuid4().hex[:8]
    first, second, channel = f"s1-{run}", f"s2-{run}", f"c-{run}"
    ids1 = [_append(herald, first, n) for n in range(3)]
    ids2 = [_append(herald, second, n) for n in range(3)]
    handles = _open_tabs(driver, tabs, herald, 2)
    by_tab = {h: 0 for h in handles}
    for handle in handles:
        _in(driver, handle, STREAM, first, "0")
        _in(driver, handle, SUBSCRIBE, [channel], [])
    _wait_all(driver, handles, lambda s: s["subscribed"], "both tabs' subscriptions")
    _wait_entries(driver, handles, by_tab, first, ids1)

    # Tab 1 also reads the second stream from the start: the WebSocket reopens.
    _in(driver, handles[1], STREAM, second, "0")
    ids1 += [_append(herald, first, n) for n in range(3, 5)]
    ids2 += [_append(herald, second, n) for n in range(3, 5)]
    _wait_entries(driver, handles, by_tab, first, ids1)
    _wait_entries(driver, [handles[1]], by_tab, second, ids2)
    assert second not in _t(driver, handles[0])["entries"]
    _wait_all(driver, handles, lambda s: {"type": "gap", "kind": "channel", "channel": channel,
                                          "source": "reconnect"} in s["gaps"], "a gap in both tabs")
    _publish(herald, channel, "after the reopen")
    _wait_all(driver, handles, lambda s: [channel, "after the reopen"] in s["messages"],
              "a message after the reopen in both tabs")
    assert _websockets(herald) == 1


def test_a_tab_whose_holder_stops_answering_connects_on_its_own(driver, tabs, page_herald):  # noqa: F811
    """The holding tab stops answering (as a hung page would) but keeps its Web Lock, so no
    tab can take over. (A busy loop would hang it for real, but headless Chromium does not
    run one in a background tab reliably: the holder's heartbeat and answers are stopped
    instead.) The other tab gives up on it within a few seconds, connects on its own (mode
    "fallback") and gets its messages; once the hung tab is closed it takes the lock and
    shares again."""
    herald = page_herald
    channel = f"hang-{uuid.uuid4().hex[:8]}"
    handles = _open_tabs(driver, tabs, herald, 2)
    for handle in handles:
        _in(driver, handle, SUBSCRIBE, [channel], [])
    _wait_all(driver, handles, lambda s: s["subscribed"], "both tabs' subscriptions")
    modes = _wait_shared(driver, handles, 2)
    holder = next(h for h in handles if modes[h]["mode"] == "holder")
    other = next(h for h in handles if h != holder)

    _in(driver, holder, "const hub = __h._share.hub; clearInterval(hub.beatTimer); hub.channel.onmessage = null;")
    _wait(driver, lambda _: _in(driver, other, "return __h.shared.mode;") == "fallback",
          "the other tab to give up on the silent holder", timeout=10)
    _wait(driver, lambda _: _in(driver, other, "return __h.isActive('channel', arguments[0]);", channel),
          "its subscription on its own connection")
    assert _websockets(herald) == 2
    _publish(herald, channel, "while the holder is silent")
    _wait(driver, lambda _: [channel, "while the holder is silent"] in _t(driver, other)["messages"],
          "a message while the holder is silent")

    driver.switch_to.window(holder)
    driver.close()
    _wait(driver, lambda _: _in(driver, other, "return __h.shared.mode;") == "holder",
          "the tab to take the lock once the hung tab is gone")
    _wait(driver, lambda _: _in(driver, other, "return __h.isActive('channel', arguments[0]);", channel),
          "its subscription through the shared connection")
    _wait(driver, lambda _: _websockets(herald) == 1, "one WebSocket again")
    _publish(herald, channel, "shared again")
    _wait(driver, lambda _: [channel, "shared again"] in _t(driver, other)["messages"], "a message when shared again")
