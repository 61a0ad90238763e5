"""Browser test of the demo page (public/) served by a running Herald.

Drives Debian's headless Chromium through Debian's chromedriver (nothing is downloaded).
The fixtures `redis_server`, `herald` and `start_herald` come from conftest.py in this folder.

The page: channel cards (one per subscription, each with its own feed), a publish form, a
stream history panel (time range, follow live, append), the connection status and a glance at
/metrics. test_screenshot_for_readme takes the README's screenshot (1280x800); it replaces
docs/screenshot.png only when HERALD_UPDATE_SCREENSHOT=1 (`make screenshot`), so a test run
leaves the tree clean.
"""

import json
import os
import re
import struct
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

selenium = pytest.importorskip("selenium")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HERALD_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 15  # seconds for anything the page has to do
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
SCREENSHOT_SIZE = (1280, 800)


@pytest.fixture(scope="module")
def driver():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.skip(f"{path} is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


# ------------------------------------------------------------------ helpers

def _unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _page_state(driver):
    """A short description of the page, for failure messages."""
    try:
        return json.dumps(driver.execute_script(
            "const s = document.getElementById('status');"
            "const t = (id) => (document.getElementById(id) || {}).textContent;"
            "return {status: s && s.textContent, state: s && s.dataset.state, detail: t('status-detail'),"
            " cards: Array.from(document.querySelectorAll('#channels .card'))"
            "   .map(e => [e.dataset.kind, e.dataset.name, e.dataset.state, e.dataset.active].join(':')),"
            " deliveries: Array.from(document.querySelectorAll('#channels .delivery')).slice(0, 10)"
            "   .map(e => e.dataset.type + ' ' + e.dataset.channel + ' ' + e.textContent),"
            " publishResult: t('publish-result'), wsError: t('ws-error'),"
            " streamSummary: t('stream-summary'), follow: t('stream-follow-state'),"
            " streamRows: Array.from(document.querySelectorAll('#stream-rows tr')).map(e => e.dataset.id),"
            " appendResult: t('append-result'), metrics: t('metrics-updated'),"
            " published: t('metric-published'), delivered: t('metric-delivered')};"))
    except WebDriverException as exc:  # pragma: no cover - diagnostics only
        return f"<page state unavailable: {exc}>"


def _wait(driver, condition, what, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"timed out after {timeout}s waiting for {what}; page: {_page_state(driver)}")


def _open_page(driver, herald, query=""):
    driver.get(herald.base_url + "/" + query)
    _wait(driver, lambda d: d.find_element(By.ID, "status").text.strip() == "open",
          "#status to read 'open'")
    assert driver.find_element(By.ID, "status").get_attribute("data-state") == "open"


def _deliveries(driver):
    """Every delivery row of every channel card, with the card it is in."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#channels .card .delivery')).map(e => {"
        " const card = e.closest('.card'); return {"
        " card: [card.dataset.kind, card.dataset.name],"
        " channel: e.dataset.channel, type: e.dataset.type, pattern: e.dataset.pattern || null,"
        " payload: (e.querySelector('.payload') || e).textContent, text: e.textContent}; });")


def _subscriptions(driver):
    """The cards whose subscription Herald confirmed on the page's current connection."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#channels .card[data-active=\"true\"]'))"
        ".map(e => [e.dataset.kind, e.dataset.name]);")


def _cards(driver):
    """Every card: kind, name, state, message count, last-message text."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#channels .card')).map(e => ({"
        " kind: e.dataset.kind, name: e.dataset.name, state: e.dataset.state,"
        " active: e.dataset.active === 'true',"
        " count: Number(e.querySelector('.card-count').dataset.count),"
        " last: e.querySelector('.card-last').textContent,"
        " rect: (r => [r.left, r.top, r.width])(e.getBoundingClientRect())}));")


def _card(driver, kind, name):
    found = [c for c in _cards(driver) if c["kind"] == kind and c["name"] == name]
    return found[0] if found else None


def _type_into(driver, element_id, text):
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def _set_checkbox(driver, element_id, on):
    box = driver.find_element(By.ID, element_id)
    if box.is_selected() != on:
        driver.execute_script("arguments[0].click();", box)
    assert box.is_selected() == on


def _subscribe_via_page(driver, kind, name):
    """kind: channel, pattern or shard; `name` may list several names ("a, b")."""
    if kind in ("channel", "shard"):
        _set_checkbox(driver, "subscribe-sharded", kind == "shard")
        _type_into(driver, "channel-input", name)
        driver.find_element(By.ID, "subscribe-btn").click()
    else:
        _type_into(driver, "pattern-input", name)
        driver.find_element(By.ID, "psubscribe-btn").click()
    for one in re.split(r"[\s,]+", name.strip()):
        _wait(driver, lambda d: [kind, one] in _subscriptions(d),
              f"the {kind} card {one!r} to show as active in #channels")


def _publish_from_outside(herald, channel, message, sharded=False):
    url = herald.base_url + "/publish/" + urllib.parse.quote(channel, safe="")
    if sharded:
        url += "?sharded=true"
    req = urllib.request.Request(url, data=message.encode("utf-8"), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200, f"POST {url} answered {resp.status}"
        return json.loads(resp.read().decode("utf-8"))


def _redis_version(redis_server):
    info = redis_server.cli("INFO", "server")
    match = re.search(r"redis_version:(\d+)", info)
    return int(match.group(1)) if match else 0


# ------------------------------------------------------------------ channel cards and publishing

def test_channel_subscription_receives_outside_publish(driver, herald):
    _open_page(driver, herald)
    channel = _unique("news")
    _subscribe_via_page(driver, "channel", channel)
    card = _card(driver, "channel", channel)
    assert card["count"] == 0 and card["state"] == "live", card

    # Markup in the payload must arrive as text, never as elements.
    message = f'<b class="injected">hello</b> & "{uuid.uuid4().hex[:6]}"'
    answer = _publish_from_outside(herald, channel, message)
    assert answer == {"channel": channel, "receivers": 1}, answer

    found = _wait(driver,
                  lambda d: [x for x in _deliveries(d) if x["channel"] == channel and message in x["text"]],
                  f"a delivery on {channel!r} in its card")
    assert found[0]["card"] == ["channel", channel]
    assert found[0]["type"] == "message"
    assert found[0]["payload"].strip() == message
    assert found[0]["pattern"] is None
    assert driver.find_elements(By.CSS_SELECTOR, "#channels b.injected") == [], "payload was rendered as HTML"
    card = _card(driver, "channel", channel)
    assert card["count"] == 1, card
    assert re.fullmatch(r"last \d\d:\d\d:\d\d", card["last"]), card


def test_several_channel_cards_side_by_side(driver, herald):
    """One card per channel, laid out side by side, each with only its own messages and its
    own count; the empty state is gone once a card exists."""
    _open_page(driver, herald)
    assert driver.find_element(By.ID, "channels-empty").is_displayed()
    names = [_unique(p) for p in ("red", "green", "blue")]
    _subscribe_via_page(driver, "channel", ", ".join(names))
    assert not driver.find_element(By.ID, "channels-empty").is_displayed()
    assert driver.find_element(By.ID, "channel-count").text == "3"

    for i, name in enumerate(names):
        for n in range(i + 1):
            _publish_from_outside(herald, name, f"{name} #{n}")
    _wait(driver, lambda d: [(c["name"], c["count"]) for c in _cards(d)]
          == [(names[0], 1), (names[1], 2), (names[2], 3)], "counts 1, 2, 3 on the three cards")
    for x in _deliveries(driver):
        assert x["card"][1] == x["channel"] and x["payload"].startswith(x["channel"]), x

    rects = [c["rect"] for c in _cards(driver)]
    assert len({round(r[1]) for r in rects}) == 1, f"cards are not on one row: {rects}"
    assert rects[0][0] < rects[1][0] < rects[2][0], rects


def test_pattern_subscription_and_page_publish_form(driver, herald):
    _open_page(driver, herald)
    _subscribe_via_page(driver, "pattern", "demo-*")

    message = "from the form " + uuid.uuid4().hex[:8]
    _type_into(driver, "publish-channel", "demo-1")
    _type_into(driver, "publish-message", message)
    driver.find_element(By.ID, "publish-btn").click()

    found = _wait(driver,
                  lambda d: [x for x in _deliveries(d) if x["channel"] == "demo-1" and message in x["text"]],
                  "the pmessage delivery for demo-1 in the demo-* card")
    assert found[0]["card"] == ["pattern", "demo-*"]
    assert found[0]["type"] == "pmessage"
    assert found[0]["pattern"] == "demo-*"
    assert found[0]["payload"].strip() == message

    result = _wait(driver, lambda d: d.find_element(By.ID, "publish-result").get_attribute("data-receivers"),
                   "#publish-result to show the receivers count")
    assert int(result) >= 1
    assert "receiver" in driver.find_element(By.ID, "publish-result").text
    assert driver.find_element(By.ID, "publish-result").get_attribute("data-status") == "ok"

    # A publish the page refuses shows the error, not a receivers count.
    _type_into(driver, "publish-channel", " ")
    driver.find_element(By.ID, "publish-btn").click()
    out = driver.find_element(By.ID, "publish-result")
    assert out.get_attribute("data-status") == "error" and "channel is required" in out.text
    assert out.get_attribute("data-receivers") is None


def test_sharded_card_and_sharded_publish(driver, herald, redis_server):
    if _redis_version(redis_server) < 7:
        pytest.skip("sharded pub/sub needs Redis 7")
    _open_page(driver, herald)
    shard = _unique("shard")
    _subscribe_via_page(driver, "shard", shard)
    assert _card(driver, "shard", shard)["state"] == "live"

    _type_into(driver, "publish-channel", shard)
    _type_into(driver, "publish-message", "sharded hello")
    _set_checkbox(driver, "publish-sharded", True)
    driver.find_element(By.ID, "publish-btn").click()
    found = _wait(driver, lambda d: [x for x in _deliveries(d) if x["channel"] == shard],
                  "the smessage in the shard card")
    assert found[0]["card"] == ["shard", shard] and found[0]["type"] == "smessage", found
    _wait(driver, lambda d: d.find_element(By.ID, "publish-result").get_attribute("data-receivers") == "1",
          "#publish-result to report 1 receiver of the sharded publish")
    assert "Sharded publish" in driver.find_element(By.ID, "publish-result").text


def test_closing_a_card_unsubscribes(driver, herald):
    _open_page(driver, herald)
    channel = _unique("gone")
    _subscribe_via_page(driver, "channel", channel)

    button = driver.find_element(
        By.CSS_SELECTOR, f'#channels .card[data-kind="channel"][data-name="{channel}"] .unsubscribe-btn')
    assert button.get_attribute("aria-label") == f"Unsubscribe from channel {channel}"
    button.click()
    _wait(driver, lambda d: _card(d, "channel", channel) is None,
          f"the {channel!r} card to close after Herald's unsubscribed answer")
    assert channel not in driver.execute_script("return heraldClient.subscriptions().channel")
    # The page no longer listens; whether Herald still holds a Redis subscription for the
    # channel is its own business, so only check that nothing reaches the page.
    answer = _publish_from_outside(herald, channel, "nobody hears this")
    assert answer["channel"] == channel and answer["receivers"] in (0, 1), answer
    time.sleep(0.5)
    assert not [x for x in _deliveries(driver) if x["channel"] == channel], _page_state(driver)


def test_page_loads_without_console_errors(driver, herald):
    try:
        driver.get_log("browser")  # drain what earlier tests left
    except (WebDriverException, AttributeError) as exc:
        pytest.skip(f"this chromedriver does not expose the browser log: {exc}")
    _open_page(driver, herald)
    _wait(driver, lambda d: d.find_element(By.ID, "metric-published").get_attribute("data-value"),
          "the first /metrics poll")
    time.sleep(0.5)  # let late resource errors arrive
    severe = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    assert severe == [], f"console errors: {severe}"


# ------------------------------------------------------------------ herald.js

def _async(driver, script, *args, timeout=WAIT):
    """Run `script` as an async function body in the page (`args` are arguments[0..]) and
    return what it returns; a thrown error fails the test with its message."""
    driver.set_script_timeout(timeout)
    wrapper = ("const done = arguments[arguments.length - 1];"
               "const args = Array.from(arguments).slice(0, -1);"
               "(async function () {" + script + "})(...args)"
               ".then((v) => done({ok: v === undefined ? null : v}),"
               " (e) => done({err: String(e && (e.code ? e.code + ': ' + e.message : e.stack || e))}));")
    result = driver.execute_async_script(wrapper, *args)
    assert "err" not in result, f"page script failed: {result['err']}"
    return result["ok"]


def test_herald_js_subscribe_publish_unsubscribe(driver, herald):
    """The library itself: handlers per channel and pattern, publish answers matched by id,
    Herald's error answers as rejected promises, unsubscribe, close."""
    _open_page(driver, herald)
    channel = _unique("lib")
    result = _async(driver, """
        const [channel] = args;
        const h = new Herald();   // derives ws://<page host>/subscribe
        const got = [];
        const states = [];
        h.on("state", (s) => states.push(s));
        await h.subscribe(channel, (m) => got.push([m.type, m.channel, m.data]));
        await h.psubscribe(channel + "-*", (m) => got.push([m.type, m.pattern, m.channel, m.data]));
        const answers = await Promise.all([
            h.publish(channel, "one"), h.publish(channel + "-x", {n: 2}), h.ping()]);
        let refused = null;
        try { await h._request({op: "no-such-op"}); } catch (e) { refused = [e.name, e.code]; }
        const wait = (ms) => new Promise((r) => setTimeout(r, ms));
        for (let i = 0; i < 50 && got.length < 2; i++) await wait(50);
        await h.unsubscribe(channel);
        const after = await h.publish(channel, "nobody");
        await wait(200);
        h.close();
        let closed = null;
        try { await h.publish(channel, "x"); } catch (e) { closed = e.code; }
        return {answers, got, refused, after, states, closed, active: h.active()};
    """, channel)
    published, published_p, pong = result["answers"]
    assert published["type"] == "published" and published["channel"] == channel
    assert published["receivers"] == 1, result
    assert published_p["receivers"] == 1 and pong["type"] == "pong", result
    assert published["id"] != published_p["id"], "answers must carry their own request ids"
    assert ["message", channel, "one"] in result["got"], result
    assert ["pmessage", channel + "-*", channel + "-x", '{"n":2}'] in result["got"], result
    assert result["refused"] == ["HeraldError", "unknown_op"], result
    assert result["after"]["receivers"] == 0, f"still subscribed after unsubscribe: {result}"
    assert [x for x in result["got"] if x[-1] == "nobody"] == [], result
    assert result["states"][-1] == "closed" and result["closed"] == "closed", result


def test_herald_js_loads_as_module(driver, herald):
    """The same file imported as an ES module defines globalThis.Herald."""
    _open_page(driver, herald)
    kind = _async(driver, """
        delete globalThis.Herald;
        await import("/herald.js?as-module");
        return typeof globalThis.Herald + " " + typeof globalThis.Herald.HeraldError;
    """)
    assert kind == "function function"


def test_page_reconnects_resubscribes_and_reports_gap(driver, start_herald):
    """Herald restarts under the page: the status shows the reconnect countdown, cards stay
    (not active) while disconnected, the page reconnects with backoff, restores its
    subscriptions, shows a gap notice in the card, and receives again."""
    first = start_herald()
    port = first.port
    _open_page(driver, first)
    channel = _unique("again")
    _subscribe_via_page(driver, "channel", channel)

    first.stop()
    _wait(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "reconnecting",
          "#status to show reconnecting once Herald is gone")
    _wait(driver, lambda d: re.fullmatch(r"retry in \d+s", d.find_element(By.ID, "status-detail").text),
          "#status-detail to count down to the next attempt")
    assert driver.find_element(By.ID, "reconnect-now").is_displayed()
    assert _subscriptions(driver) == [], "subscriptions shown as active while disconnected"
    card = _card(driver, "channel", channel)
    assert card is not None and not card["active"] and card["state"] != "live", card

    second = start_herald(port=port)
    _wait(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "open",
          "#status to read open again after Herald came back", timeout=30)
    assert not driver.find_element(By.ID, "reconnect-now").is_displayed()
    _wait(driver, lambda d: ["channel", channel] in _subscriptions(d),
          f"{channel!r} to be restored after the reconnect")
    gaps = _wait(driver, lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('#channels .card .event[data-type=\"gap\"]'))"
        ".map(e => [e.closest('.card').dataset.name, e.dataset.name]);"), "a gap notice in a card")
    assert [channel, channel] in gaps

    answer = _publish_from_outside(second, channel, "after the restart")
    assert answer["receivers"] == 1, answer
    _wait(driver, lambda d: [x for x in _deliveries(d) if x["channel"] == channel
                             and x["payload"].strip() == "after the restart"],
          "the delivery after the reconnect")


def test_herald_js_token_option(driver, start_herald):
    """With --api-keys, herald.js sends the `token` option (here an async function, called
    before each attempt) as ?token=; without it the upgrade is refused and the client retries."""
    key = "herald-test-key-" + uuid.uuid4().hex
    secured = start_herald("--api-keys", key)
    driver.get(secured.base_url + "/")
    result = _async(driver, """
        const [key] = args;
        let calls = 0;
        const h = new Herald(undefined, {token: async () => { calls += 1; return key; }});
        await h.subscribe("tok");
        const answer = await h.publish("tok", "x");
        const anonymous = new Herald(undefined, {minDelay: 50, maxDelay: 100});
        const errors = [];
        let closes = 0;
        anonymous.on("error", (e) => errors.push(e.code));
        anonymous.on("close", () => { closes += 1; });
        anonymous.subscribe("tok").then(() => errors.push("subscribed anyway"));
        await new Promise((r) => setTimeout(r, 800));
        anonymous.close();
        h.close();
        return {answer, calls, errors, closes};
    """, key)
    assert result["answer"]["receivers"] == 1, result
    assert result["calls"] == 1, result
    assert "subscribed anyway" not in result["errors"], result
    assert "unauthorized" in result["errors"] and result["closes"] >= 2, result


def test_herald_js_stream_resumes_after_reconnect(driver, start_herald, redis_server):
    """h.stream() replays from "0", follows, and after Herald restarts resumes after the last
    id it saw: entries added while it was down arrive, none arrives twice."""
    first = start_herald()
    port = first.port
    key = _unique("orders")
    for n in (1, 2):
        redis_server.cli("XADD", key, "*", "n", str(n))
    driver.get(first.base_url + "/")
    driver.execute_script("""
        window.streamSeen = [];
        window.streamClient = new Herald(undefined, {minDelay: 100, maxDelay: 400});
        window.streamClient.stream(arguments[0], (e) => window.streamSeen.push([e.id, e.fields.n]),
                                   {from: "0"});
    """, key)
    seen = lambda d: d.execute_script("return window.streamSeen.map(x => x[1]);")
    _wait(driver, lambda d: seen(d) == ["1", "2"], "the replayed entries 1 and 2")
    first.stop()
    redis_server.cli("XADD", key, "*", "n", "3")  # published while Herald is down
    second = start_herald(port=port)
    _wait(driver, lambda d: seen(d) == ["1", "2", "3"], "entry 3 after the reconnect", timeout=30)
    status, _, _ = _publish_stream(second, key, {"n": "4"})
    assert status == 200
    _wait(driver, lambda d: seen(d) == ["1", "2", "3", "4"], "entry 4, live")
    ids = driver.execute_script("window.streamClient.close(); return window.streamSeen.map(x => x[0]);")
    assert len(set(ids)) == 4, ids


def _publish_stream(herald, key, fields):
    req = urllib.request.Request(herald.base_url + "/streams/" + urllib.parse.quote(key, safe=""),
                                 data=json.dumps(fields).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers, resp.read()


# ------------------------------------------------------------------ stream panel

def _stream_rows(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#stream-rows tr')).map(tr => ({"
        " id: tr.dataset.id, live: tr.dataset.live === 'true',"
        " time: tr.querySelector('.time').textContent,"
        " fields: Object.fromEntries(Array.from(tr.querySelectorAll('.kv'))"
        "   .map(kv => [kv.dataset.field, kv.querySelector('.v').textContent]))}));")


def _set_datetime(driver, element_id, ms):
    """Fill a datetime-local input with the browser's local time of `ms` (typing into one
    depends on the locale, so the value is set the way the page reads it)."""
    value = driver.execute_script(
        "const [id, ms] = arguments; const d = new Date(ms);"
        "const p = (n) => String(n).padStart(2, '0');"
        "const v = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' +"
        " p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());"
        "const el = document.getElementById(id); el.value = v; return el.value;", element_id, ms)
    assert value, f"#{element_id} refused the value"


def _query_rows(driver, expected_ids, what):
    """Wait for the stream table to show exactly `expected_ids` after a query, in order."""
    _wait(driver, lambda d: d.find_element(By.ID, "stream-summary").get_attribute("data-status") == "ok"
          and [r["id"] for r in _stream_rows(d)] == expected_ids, what)
    return _stream_rows(driver)


def _click(driver, css):
    driver.find_element(By.CSS_SELECTOR, css).click()


def test_stream_history_time_range(driver, herald, redis_server):
    """Entries at known times (XADD with explicit ids) and appended over HTTP; the page's
    from/to range, the quick ranges, paging with "Load more", and an error answer."""
    key = _unique("history")
    now_ms = int(time.time() * 1000)
    base = now_ms - now_ms % 60000
    past = {"3h": base - 3 * 3600_000, "2h": base - 2 * 3600_000,
            "65m": base - 65 * 60_000, "10m": base - 10 * 60_000}
    for label, ms in past.items():
        redis_server.cli("XADD", key, f"{ms}-0", "at", label)
    appended = []
    for n in (1, 2):
        status, _, body = _publish_stream(herald, key, {"sku": f"A{n}", "qty": n})
        assert status == 200, body
        appended.append(json.loads(body)["id"])
    ids = {label: f"{ms}-0" for label, ms in past.items()}

    _open_page(driver, herald)
    _type_into(driver, "stream-key", key)
    _set_datetime(driver, "stream-from", past["2h"] - 60_000)
    _set_datetime(driver, "stream-to", past["65m"] + 60_000)
    _click(driver, "#stream-query-btn")
    rows = _query_rows(driver, [ids["2h"], ids["65m"]], "the two entries inside the from/to range")
    assert [r["fields"] for r in rows] == [{"at": "2h"}, {"at": "65m"}], rows
    assert all(re.search(r"\d\d:\d\d:\d\d\.\d{3}$", r["time"]) for r in rows), rows
    summary = driver.find_element(By.ID, "stream-summary").text
    assert summary.startswith("2 entries in") and key in summary, summary

    _click(driver, '.quick [data-range="3600"]')
    assert driver.find_element(By.ID, "stream-from").get_attribute("value")
    assert driver.find_element(By.ID, "stream-to").get_attribute("value") == ""
    _query_rows(driver, [ids["10m"]] + appended, "the last hour: the 10-minute-old entry and the appended ones")

    _click(driver, '.quick [data-range="300"]')
    rows = _query_rows(driver, appended, "the last 5 minutes: the entries appended over HTTP")
    assert [r["fields"] for r in rows] == [{"sku": "A1", "qty": "1"}, {"sku": "A2", "qty": "2"}], rows
    assert not any(r["live"] for r in rows)

    # Everything, two at a time: "Load more" pages on after the newest row until the end.
    _type_into(driver, "stream-count", "2")
    _click(driver, '.quick [data-range="all"]')
    everything = [ids["3h"], ids["2h"], ids["65m"], ids["10m"]] + appended
    _query_rows(driver, everything[:2], "the first page of two")
    more = driver.find_element(By.ID, "stream-more")
    for page in range(2, 5):
        assert more.is_displayed(), f"no Load more button after page {page - 1}"
        more.click()
        _wait(driver, lambda d: len(_stream_rows(d)) == min(2 * page, 6) and not more.get_attribute("disabled"),
              f"page {page}")
        if len(_stream_rows(driver)) == 6 and not more.is_displayed():
            break
    assert [r["id"] for r in _stream_rows(driver)] == everything
    _wait(driver, lambda d: not more.is_displayed(), "Load more to hide at the end of the stream")

    # A key of another type: Herald's error is shown, the table is left as it was.
    other = _unique("alist")
    redis_server.cli("LPUSH", other, "x")
    _type_into(driver, "stream-key", other)
    _click(driver, "#stream-query-btn")
    _wait(driver, lambda d: d.find_element(By.ID, "stream-summary").get_attribute("data-status") == "error",
          "the error of a query on a list")
    assert "wrong_type" in driver.find_element(By.ID, "stream-summary").text
    assert [r["id"] for r in _stream_rows(driver)] == everything


def test_stream_follow_live_and_append_form(driver, herald):
    """Follow live (EventSource on /events after the newest row) shows entries appended over
    HTTP and through the page's append form, once each; turning it off stops them."""
    key = _unique("live")
    status, _, body = _publish_stream(herald, key, {"n": "1"})
    assert status == 200
    first = json.loads(body)["id"]

    _open_page(driver, herald)
    _type_into(driver, "stream-key", key)
    assert driver.find_element(By.ID, "append-key").text == key
    _click(driver, '.quick [data-range="all"]')
    _query_rows(driver, [first], "the one entry")
    driver.find_element(By.CSS_SELECTOR, "label.switch").click()
    assert driver.find_element(By.ID, "stream-follow").is_selected()
    _wait(driver, lambda d: d.find_element(By.ID, "stream-follow-state").text == "live",
          "the follow state to read live (EventSource open)")

    status, _, body = _publish_stream(herald, key, {"n": "2"})
    second = json.loads(body)["id"]
    rows = _wait(driver, lambda d: [r for r in _stream_rows(d) if r["id"] == second],
                 "the entry appended over HTTP to arrive live")
    assert rows[0]["live"] and rows[0]["fields"] == {"n": "2"}, rows

    _type_into(driver, "append-fields", 'sku=B2 note="two words" qty=3')
    _click(driver, "#append-btn")
    third = _wait(driver, lambda d: d.find_element(By.ID, "append-result").get_attribute("data-id"),
                  "#append-result to show the new entry id")
    assert driver.find_element(By.ID, "append-result").text == f"Appended {third}"
    rows = _wait(driver, lambda d: [r for r in _stream_rows(d) if r["id"] == third],
                 "the entry from the append form to arrive live")
    assert rows[0]["fields"] == {"sku": "B2", "note": "two words", "qty": "3"}, rows

    # A JSON object works too; a JSON array is refused before anything is sent.
    _type_into(driver, "append-fields", '{"sku": "C3", "qty": 4}')
    _click(driver, "#append-btn")
    fourth = _wait(driver, lambda d: d.find_element(By.ID, "append-result").get_attribute("data-id"),
                   "the id of the JSON append")
    rows = _wait(driver, lambda d: [r for r in _stream_rows(d) if r["id"] == fourth], "the JSON entry, live")
    assert rows[0]["fields"] == {"sku": "C3", "qty": "4"}, rows
    _type_into(driver, "append-fields", "[1, 2]")
    _click(driver, "#append-btn")
    assert driver.find_element(By.ID, "append-result").get_attribute("data-status") == "error"

    assert [r["id"] for r in _stream_rows(driver)] == [first, second, third, fourth], "an entry twice"
    summary = driver.find_element(By.ID, "stream-summary").text
    assert summary.startswith("4 entries") and "(3 live)" in summary, summary

    driver.find_element(By.CSS_SELECTOR, "label.switch").click()
    _wait(driver, lambda d: d.find_element(By.ID, "stream-follow-state").text == "off", "follow to turn off")
    _publish_stream(herald, key, {"n": "5"})
    time.sleep(0.6)
    assert len(_stream_rows(driver)) == 4, "an entry arrived after follow was turned off"


# ------------------------------------------------------------------ metrics glance

def _metric(driver, name):
    value = driver.find_element(By.ID, f"metric-{name}").get_attribute("data-value")
    return float(value) if value not in (None, "") else None


def test_metrics_glance_shows_and_follows_the_numbers(driver, herald):
    """/metrics is polled every 2 s and parsed in the page: connections by kind, ready, and
    published/delivered totals that grow after publishes, with sparklines."""
    _open_page(driver, herald)
    _wait(driver, lambda d: _metric(d, "published") is not None, "the first /metrics numbers")
    assert _metric(driver, "ready") == 1
    assert driver.find_element(By.ID, "metric-ready").text == "Ready"
    # The page's shared connection may open after the first poll: wait for the next one.
    _wait(driver, lambda d: int((re.search(r"ws (\d+)", d.find_element(By.ID, "metric-connections-sub").text)
                                 or [0, 0])[1]) >= 1, "the page's own WebSocket to be counted")
    assert _metric(driver, "connections") >= 1
    published, delivered = _metric(driver, "published"), _metric(driver, "delivered")
    assert driver.find_element(By.ID, "metric-published").text == f"{int(published):,}"

    channel = _unique("metered")
    _subscribe_via_page(driver, "channel", channel)
    assert _metric(driver, "dropped") is not None
    for n in range(5):
        _publish_from_outside(herald, channel, f"m{n}")
    _wait(driver, lambda d: _metric(d, "published") >= published + 5 and _metric(d, "delivered") >= delivered + 5,
          "published and delivered to grow by the 5 publishes", timeout=10)
    _wait(driver, lambda d: _metric(d, "subscriptions") >= 1, "the page's subscription in the count")
    assert re.search(r"/s", driver.find_element(By.ID, "metric-published-sub").text)
    lines = driver.execute_script(
        "return Array.from(document.querySelectorAll('.metrics svg.spark polyline')).length;")
    assert lines >= 4, "no sparklines after two polls"
    first = driver.find_element(By.ID, "metrics-updated").get_attribute("data-at")
    _wait(driver, lambda d: d.find_element(By.ID, "metrics-updated").get_attribute("data-at") != first,
          "another poll two seconds later", timeout=6)


# ------------------------------------------------------------------ screenshot for the README

def _check_png(data, size):
    """A structurally valid PNG (signature, chunk CRCs, inflatable image data) of `size`."""
    import zlib
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc, = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert (width, height) == size, f"screenshot is {width}x{height}, not {size}"
    channels = {2: 3, 6: 4}[color]
    assert depth == 8 and len(zlib.decompress(idat)) == height * (1 + width * channels)


def test_screenshot_for_readme(driver, start_herald, redis_server, tmp_path):
    """The page in a realistic state (three channel cards with traffic, a stream's last hour
    followed live, metrics after a few polls) at 1280x800, a valid PNG; kept as
    docs/screenshot.png with HERALD_UPDATE_SCREENSHOT=1."""
    server = start_herald()  # its own Herald: the metrics show only this scene's traffic
    key = "orders"
    redis_server.cli("DEL", key)
    now = int(time.time() * 1000)
    # Herald writes a JSON body's fields in name order; these names read well in that order.
    history = [(47, {"item": "A1-RED", "qty": "2", "user": "ada"}),
               (31, {"item": "B7-TEAL", "qty": "1", "user": "linus"}),
               (18, {"item": "A1-RED", "qty": "5", "user": "grace"}),
               (6, {"item": "C3-BLUE", "qty": "1", "user": "margaret"})]
    for minutes, fields in history:
        pairs = [x for kv in fields.items() for x in kv]
        redis_server.cli("XADD", key, f"{now - minutes * 60_000 - 4321}-0", *pairs)

    width, height = SCREENSHOT_SIZE
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    stop = threading.Event()
    feeder = None
    try:
        _open_page(driver, server)
        _subscribe_via_page(driver, "channel", "news, alerts")
        _subscribe_via_page(driver, "pattern", "chat.*")
        _type_into(driver, "stream-key", key)
        _click(driver, '.quick [data-range="3600"]')
        _wait(driver, lambda d: len(_stream_rows(d)) == len(history), "the last hour of orders")
        driver.find_element(By.CSS_SELECTOR, "label.switch").click()
        _wait(driver, lambda d: d.find_element(By.ID, "stream-follow-state").text == "live", "follow live")

        messages = {
            "news": ["Herald 0.4 is out: SSE, metrics and herald.js", "Redis 7.4 adds hash field expiry",
                     "Streams now resume by id after a reconnect", "New region: eu-north-1 is live"],
            "alerts": ['{"level":"warn","host":"db-2","disk":"91%"}', "web-1 scaled out to 4 replicas",
                       "p99 latency back under 20 ms", "certificate for api.example renewed"],
            "chat.general": ["morning all, coffee is on", "deploy is green, thanks!", "standup in 5"],
            "chat.random": ["anyone up for lunch at 12:30?", "the office plant survived the weekend"],
            "chat.ops": ["rotating the API keys tonight", "redis failover drill at 15:00"],
        }
        rotation = ["chat.general", "news", "chat.random", "alerts", "chat.general", "chat.ops", "news"]

        def traffic():
            sent = {name: 0 for name in messages}
            tick = n = 0
            while not stop.is_set():
                for _ in range(1 + (tick // 3) % 4):  # varying rates, so the sparklines move
                    channel = rotation[n % len(rotation)]
                    _publish_from_outside(server, channel, messages[channel][sent[channel] % len(messages[channel])])
                    sent[channel] += 1
                    n += 1
                if tick % 9 == 4:
                    _publish_stream(server, key, {"item": "D4-GOLD", "qty": str(tick % 5 + 1), "user": "alan"})
                tick += 1
                stop.wait(0.35)

        feeder = threading.Thread(target=traffic, daemon=True)
        feeder.start()

        _type_into(driver, "append-fields", "item=B7-TEAL qty=3 user=barbara")
        _click(driver, "#append-btn")
        _wait(driver, lambda d: d.find_element(By.ID, "append-result").get_attribute("data-id"), "the append")
        samples = set()
        _wait(driver, lambda d: samples.add(d.find_element(By.ID, "metrics-updated").get_attribute("data-at"))
              or len(samples) >= 7, "six metrics polls with traffic", timeout=30)
        # Stop the traffic just after a poll (the rates shown stay those of the traffic), so the
        # form's publish stays on top of its card.
        stop.set()
        feeder.join(timeout=10)
        _type_into(driver, "publish-channel", "news")
        _type_into(driver, "publish-message", "Deploy finished: v0.4.0 is live")
        _click(driver, "#publish-btn")
        _wait(driver, lambda d: d.find_element(By.ID, "publish-result").get_attribute("data-receivers") == "1",
              "the form's publish")
        _wait(driver, lambda d: [x for x in _deliveries(d) if x["card"] == ["channel", "news"]][0]["payload"]
              == "Deploy finished: v0.4.0 is live", "the form's publish on top of the news card")
        driver.execute_script("document.activeElement && document.activeElement.blur();")
        time.sleep(1.4)  # the newest rows' highlight fades
        assert driver.execute_script("return [innerWidth, innerHeight]") == [width, height]
        png = driver.get_screenshot_as_png()
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(timeout=10)
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    _check_png(png, SCREENSHOT_SIZE)
    target = SCREENSHOT if os.environ.get("HERALD_UPDATE_SCREENSHOT") == "1" else tmp_path / "screenshot.png"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(png)
    _check_png(target.read_bytes(), SCREENSHOT_SIZE)
