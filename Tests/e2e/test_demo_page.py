"""Browser test of the demo page (public/) served by a running Herald.

Drives Debian's headless Chromium through Debian's chromedriver (nothing is downloaded).
The fixtures `redis_server` and `herald` come from conftest.py in this folder.
"""

import json
import os
import time
import urllib.parse
import urllib.request
import uuid

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
            "return {status: s && s.textContent, state: s && s.dataset.state,"
            " subscriptions: Array.from(document.querySelectorAll('#subscriptions .subscription'))"
            "   .map(e => e.dataset.kind + ':' + e.dataset.name),"
            " log: Array.from(document.querySelectorAll('#log .delivery')).slice(0, 10)"
            "   .map(e => e.dataset.type + ' ' + e.dataset.channel + ' ' + e.textContent),"
            " publishResult: (document.getElementById('publish-result') || {}).textContent,"
            " wsError: (document.getElementById('ws-error') || {}).textContent};"))
    except WebDriverException as exc:  # pragma: no cover - diagnostics only
        return f"<page state unavailable: {exc}>"


def _wait(driver, condition, what, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"timed out after {timeout}s waiting for {what}; page: {_page_state(driver)}")


def _open_page(driver, herald):
    driver.get(herald.base_url + "/")
    _wait(driver, lambda d: d.find_element(By.ID, "status").text.strip() == "open",
          "#status to read 'open'")
    assert driver.find_element(By.ID, "status").get_attribute("data-state") == "open"


def _deliveries(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#log .delivery')).map(e => ({"
        " channel: e.dataset.channel, type: e.dataset.type, pattern: e.dataset.pattern || null,"
        " payload: (e.querySelector('.payload') || e).textContent, text: e.textContent}));")


def _subscriptions(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#subscriptions .subscription'))"
        ".map(e => [e.dataset.kind, e.dataset.name]);")


def _type_into(driver, element_id, text):
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def _subscribe_via_page(driver, kind, name):
    if kind == "channel":
        _type_into(driver, "channel-input", name)
        driver.find_element(By.ID, "subscribe-btn").click()
    else:
        _type_into(driver, "pattern-input", name)
        driver.find_element(By.ID, "psubscribe-btn").click()
    _wait(driver, lambda d: [kind, name] in _subscriptions(d),
          f"the {kind} subscription {name!r} to show as active in #subscriptions")


def _publish_from_outside(herald, channel, message):
    url = herald.base_url + "/publish/" + urllib.parse.quote(channel, safe="")
    req = urllib.request.Request(url, data=message.encode("utf-8"), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200, f"POST {url} answered {resp.status}"
        return json.loads(resp.read().decode("utf-8"))


# ------------------------------------------------------------------ tests

def test_channel_subscription_receives_outside_publish(driver, herald):
    _open_page(driver, herald)
    channel = _unique("news")
    _subscribe_via_page(driver, "channel", channel)

    # Markup in the payload must arrive as text, never as elements.
    message = f'<b class="injected">hello</b> & "{uuid.uuid4().hex[:6]}"'
    answer = _publish_from_outside(herald, channel, message)
    assert answer == {"channel": channel, "receivers": 1}, answer

    found = _wait(driver,
                  lambda d: [x for x in _deliveries(d) if x["channel"] == channel and message in x["text"]],
                  f"a delivery on {channel!r} with the published text in #log")
    assert found[0]["type"] == "message"
    assert found[0]["payload"].strip() == message
    assert found[0]["pattern"] is None
    assert driver.find_elements(By.CSS_SELECTOR, "#log b.injected") == [], "payload was rendered as HTML"


def test_pattern_subscription_and_page_publish_form(driver, herald):
    _open_page(driver, herald)
    _subscribe_via_page(driver, "pattern", "demo-*")

    message = "from the form " + uuid.uuid4().hex[:8]
    _type_into(driver, "publish-channel", "demo-1")
    _type_into(driver, "publish-message", message)
    driver.find_element(By.ID, "publish-btn").click()

    found = _wait(driver,
                  lambda d: [x for x in _deliveries(d) if x["channel"] == "demo-1" and message in x["text"]],
                  "the pmessage delivery for demo-1 in #log")
    assert found[0]["type"] == "pmessage"
    assert found[0]["pattern"] == "demo-*"
    assert found[0]["payload"].strip() == message

    result = _wait(driver, lambda d: d.find_element(By.ID, "publish-result").get_attribute("data-receivers"),
                   "#publish-result to show the receivers count")
    assert int(result) >= 1
    assert "receiver" in driver.find_element(By.ID, "publish-result").text


def test_unsubscribe_button_removes_subscription(driver, herald):
    _open_page(driver, herald)
    channel = _unique("gone")
    _subscribe_via_page(driver, "channel", channel)

    button = driver.find_element(
        By.CSS_SELECTOR, f'#subscriptions .subscription[data-kind="channel"][data-name="{channel}"] button')
    button.click()
    _wait(driver, lambda d: ["channel", channel] not in _subscriptions(d),
          f"{channel!r} to leave #subscriptions after Herald's unsubscribed answer")
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
    """Herald restarts under the page: the page reconnects with backoff, restores its
    subscriptions, shows a gap notice, and receives again."""
    first = start_herald()
    port = first.port
    _open_page(driver, first)
    channel = _unique("again")
    _subscribe_via_page(driver, "channel", channel)

    first.stop()
    _wait(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "reconnecting",
          "#status to show reconnecting once Herald is gone")
    assert _subscriptions(driver) == [], "subscriptions shown as active while disconnected"

    second = start_herald(port=port)
    _wait(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "open",
          "#status to read open again after Herald came back", timeout=30)
    _wait(driver, lambda d: ["channel", channel] in _subscriptions(d),
          f"{channel!r} to be restored after the reconnect")
    gaps = _wait(driver, lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('#log .event[data-type=\"gap\"]'))"
        ".map(e => e.dataset.name);"), "a gap notice in #log")
    assert channel in gaps

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
