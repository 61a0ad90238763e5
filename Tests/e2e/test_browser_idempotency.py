"""herald.js idempotent publishes, in headless Chromium (issue 10, items 4 and 5).

A publish made with `{idempotent: true}` (or an explicit `idempotencyKey`) whose connection
drops before Herald answers is not failed as "disconnected": herald.js sends it again after the
reconnect, and Herald publishes it at most once for its key. A subscriber on a second Herald
(of the same Redis) counts what was published."""

import json
import signal
import uuid

from conftest import recv_json, wait_subscribed, ws_connect
from test_demo_page import _open_page, _wait, driver  # noqa: F401

SETUP = """
window.__t = {answers: {}, errors: {}};
const h = new Herald(undefined, {minDelay: 100, maxDelay: 500, requestTimeout: 30000});
window.__h = h;
h.on("open", () => { __t.open = (__t.open || 0) + 1; });
"""

PUBLISH = """
const [name, channel, message, options] = arguments;
__h.publish(channel, message, options).then(
  (a) => { __t.answers[name] = a; },
  (e) => { __t.errors[name] = e.code; });
"""


def _t(driver):
    return driver.execute_script("return window.__t;")


def _messages(ws, wait=1.0):
    got = []
    while True:
        try:
            message = json.loads(ws.recv(timeout=wait))
        except TimeoutError:
            return got
        if message.get("type") == "message":
            got.append(message["data"])


def test_an_idempotent_publish_survives_a_dropped_connection_once(driver, start_redis, start_herald):
    redis = start_redis()
    page_herald = start_herald(redis_url=redis.url)
    other = start_herald(redis_url=redis.url)
    channel = f"idem-{uuid.uuid4().hex[:8]}"
    listener = ws_connect(f"{other.ws_url}/subscribe?channel={channel}")
    try:
        wait_subscribed(listener, {"channel": [channel]})
        _open_page(driver, page_herald)
        driver.execute_script(SETUP)
        _wait(driver, lambda d: _t(d).get("open") == 1, "the test client to open")

        # The page's Herald stops reading: the publish is sent and sits unanswered. Then it
        # is killed (the publish never ran) and started again on its port.
        page_herald.proc.send_signal(signal.SIGSTOP)
        driver.execute_script(PUBLISH, "once", channel, "once", {"idempotent": True})
        port = page_herald.port
        page_herald.stop(signal.SIGKILL)
        page_herald = start_herald(redis_url=redis.url, port=port)
        _wait(driver, lambda d: "once" in _t(d)["answers"] or "once" in _t(d)["errors"],
              "the publish to settle after the reconnect", timeout=30)
        state = _t(driver)
        assert state["errors"] == {}, state
        assert state["answers"]["once"]["type"] == "published", state
        assert _messages(listener) == ["once"]

        # The same key again (an application retrying on its own): answered from the first
        # time, replayed, and nothing is published.
        for name in ("first", "retry"):
            driver.execute_script(PUBLISH, name, channel, "twice", {"idempotencyKey": "page-key-" + channel})
            _wait(driver, lambda d: name in _t(d)["answers"] or name in _t(d)["errors"], f"publish {name}")
        state = _t(driver)
        assert state["errors"] == {}, state
        assert "replayed" not in state["answers"]["first"] and state["answers"]["retry"]["replayed"] is True
        assert _messages(listener) == ["twice"]
    finally:
        listener.close()
