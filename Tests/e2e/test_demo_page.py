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
