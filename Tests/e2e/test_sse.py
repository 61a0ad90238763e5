"""Server-Sent Events as a client sees them: `GET /events` and `GET /subscribe` with
`Accept: text/event-stream`, read with curl, with http.client, and with a real EventSource in
headless Chromium. Checks the response head, `retry:`, the `subscribed` event, deliveries,
multi-line payloads, stream history with `id:` then live entries, resuming (Last-Event-ID,
`lastEventId=`, `from=`), `format=raw`, heartbeats, the refusals, and SIGTERM."""

import http.client as httpclient
import json
import os
import select
import signal
import socket
import subprocess
import time
import urllib.parse

import pytest

from conftest import assert_json_error, http, http_json, publish, unique, wait_until

CURL = "/usr/bin/curl"
CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HERALD_CHROMEDRIVER", "/usr/bin/chromedriver")


# --------------------------------------------------------------------------- an SSE parser

class EventParser:
    """The HTML Living Standard's event-stream interpretation (§9.2.6), fed bytes as they come.

    `items` holds, in arrival order, ("retry", ms), ("comment", text) and ("event", dict with
    `data`, `id`, `event`) tuples; `last_event_id` is the id a browser would send back."""

    def __init__(self):
        self.raw = b""
        self._pending = b""
        self.items = []
        self.last_event_id = ""
        self._data = []
        self._event = None
        self._id = None

    def feed(self, chunk: bytes):
        self.raw += chunk
        self._pending += chunk
        while True:
            cut = [i for i in (self._pending.find(b"\r"), self._pending.find(b"\n")) if i >= 0]
            if not cut:
                return
            i = min(cut)
            if self._pending[i:i + 1] == b"\r":
                if i + 1 == len(self._pending):
                    return  # a CR at the end may be the first half of a CRLF
                end = i + 2 if self._pending[i + 1:i + 2] == b"\n" else i + 1
            else:
                end = i + 1
            line, self._pending = self._pending[:i].decode("utf-8"), self._pending[end:]
            self._line(line)

    def _line(self, line):
        if line == "":
            if self._data:
                self.items.append(("event", {"data": "\n".join(self._data), "id": self._id,
                                             "event": self._event}))
            self._data, self._event, self._id = [], None, None
            return
        if line.startswith(":"):
            self.items.append(("comment", line[1:].lstrip(" ")))
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
            self.last_event_id = value
        elif name == "event":
            self._event = value
        elif name == "retry":
            self.items.append(("retry", int(value)))

    @property
    def events(self):
        return [item[1] for item in self.items if item[0] == "event"]

    def json_events(self):
        return [json.loads(e["data"]) for e in self.events]


class SSEConnection:
    """One event stream over http.client; `read_until` feeds an EventParser."""

    def __init__(self, port, path, headers=None, timeout=10.0):
        self.conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=headers or {})
        # http.client lets go of a socket whose response runs to EOF: keep it, non-blocking,
        # and wait on it with select (a timed-out socket file refuses any further read).
        self.sock = self.conn.sock
        self.response = self.conn.getresponse()
        self.sock.setblocking(False)
        self.parser = EventParser()
        self.closed = False
        self._read_ahead = True

    @property
    def status(self):
        return self.response.status

    def header(self, name):
        return self.response.getheader(name)

    def _recv(self, timeout):
        """The next bytes (b"" at EOF), or None when nothing came within `timeout`."""
        if self._read_ahead:
            self._read_ahead = False
            chunk = self.response.fp.read1(65536)  # what http.client read along with the head
            if chunk:
                return chunk
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return None
        try:
            return self.response.fp.read1(65536)
        except ConnectionResetError:
            return b""

    def read_until(self, predicate, timeout=5.0, what="events"):
        """Read until `predicate(parser)` holds; fails the test on timeout or EOF first."""
        deadline = time.monotonic() + timeout
        while not predicate(self.parser):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout}s waiting for {what}; got {self.parser.raw!r}")
            chunk = self._recv(remaining)
            if chunk == b"":
                self.closed = True
                pytest.fail(f"stream closed while waiting for {what}; got {self.parser.raw!r}")
            if chunk:
                self.parser.feed(chunk)
        return self.parser

    def read_for(self, seconds):
        """Read whatever arrives within `seconds` (to show that nothing more comes)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            chunk = self._recv(remaining)
            if chunk == b"":
                self.closed = True
                break
            if chunk:
                self.parser.feed(chunk)
        return self.parser

    def wait_closed(self, timeout=8.0):
        """True when the server ends the stream within `timeout` (data read on the way is kept)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            chunk = self._recv(remaining)
            if chunk == b"":
                self.closed = True
                return True
            if chunk:
                self.parser.feed(chunk)
        return False

    def close(self):
        self.response.close()
        self.sock.close()
        self.conn.close()


class CurlStream:
    """`curl -sS -N -i` in a subprocess, read as it prints (no buffering on either side)."""

    def __init__(self, url, headers=(), max_time=20):
        args = [CURL, "-sS", "-N", "-i", "--max-time", str(max_time)]
        for h in headers:
            args += ["-H", h]
        self.proc = subprocess.Popen(args + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.out = b""
        self.parser = None
        self.head = None

    def read_until(self, predicate, timeout=5.0, what="output"):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not self._check(predicate):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout}s waiting for {what}; curl printed {self.out!r}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"curl ended (exit {self.proc.wait()}, {self.proc.stderr.read()!r}) "
                            f"while waiting for {what}; printed {self.out!r}")
            self.out += chunk
        return self.parser

    def _check(self, predicate):
        if self.head is None:
            end = self.out.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.head = self.out[:end].decode("latin-1")
            self.parser = EventParser()
            self.parser.feed(self.out[end + 4:])
            self._fed = len(self.out)
        elif len(self.out) > self._fed:
            self.parser.feed(self.out[self._fed:])
            self._fed = len(self.out)
        return predicate(self.parser)

    @property
    def status(self):
        return int(self.head.split("\r\n")[0].split(" ")[1])

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def open_stream(client, herald, path, headers=None):
    """An event stream on `path` through `client` ("curl" or "http.client")."""
    headers = dict(headers or {})
    if client == "curl":
        return CurlStream(herald.base_url + path, [f"{k}: {v}" for k, v in headers.items()])
    return SSEConnection(herald.port, path, headers)


def has_events(n):
    return lambda p: len(p.events) >= n


def xadd(herald, key, fields):
    status, _, answer = http_json("POST", f"{herald.base_url}/streams/{urllib.parse.quote(key, safe='')}",
                                  json.dumps(fields), {"Content-Type": "application/json"})
    assert status == 200, answer
    return answer["id"]


def entry(key, entry_id, fields):
    return {"type": "entry", "stream": key, "id": entry_id, "fields": fields}


SSE_ACCEPT = {"Accept": "text/event-stream"}


# --------------------------------------------------------------------------- head, retry, subscribed

@pytest.mark.parametrize("client", ["curl", "http.client"])
@pytest.mark.parametrize("route", ["/events", "/subscribe"])
def test_stream_opens_with_retry_then_subscribed(herald, client, route):
    channel = unique("sse")
    stream = open_stream(client, herald, f"{route}?channel={channel}", SSE_ACCEPT)
    try:
        parser = stream.read_until(has_events(1), what="the subscribed event")
        assert stream.status == 200
        content_type = stream.header("Content-Type") or ""
        assert content_type.split(";")[0].strip() == "text/event-stream", content_type
        assert stream.header("Content-Length") is None, "an event stream has no length"
        assert parser.raw.startswith(b"retry: 3000\n\n"), f"retry must come first: {parser.raw!r}"
        assert parser.items[0] == ("retry", 3000)
        assert parser.json_events()[0] == {"type": "subscribed", "kind": "channel", "names": [channel]}
        assert parser.events[0]["event"] is None, "a plain message event, so onmessage sees it"
    finally:
        stream.close()


def test_events_route_needs_no_accept_header(herald):
    channel = unique("sse")
    stream = SSEConnection(herald.port, f"/events?channel={channel}")
    try:
        parser = stream.read_until(has_events(1))
        assert stream.status == 200
        assert parser.json_events()[0] == {"type": "subscribed", "kind": "channel", "names": [channel]}
    finally:
        stream.close()


def test_several_kinds_get_one_subscribed_event_each(herald):
    a, b, p = unique("sse-a"), unique("sse-b"), unique("sse-p") + "-*"
    query = urllib.parse.urlencode([("channel", a), ("channel", b), ("pattern", p)])
    stream = SSEConnection(herald.port, f"/events?{query}")
    try:
        events = stream.read_until(has_events(2)).json_events()
        by_kind = {e["kind"]: sorted(e["names"]) for e in events}
        assert all(e["type"] == "subscribed" for e in events), events
        assert by_kind == {"channel": sorted([a, b]), "pattern": [p]}
    finally:
        stream.close()


# --------------------------------------------------------------------------- deliveries

@pytest.mark.parametrize("client", ["curl", "http.client"])
def test_publish_arrives_as_a_message_event(herald, client):
    channel = unique("sse")
    stream = open_stream(client, herald, f"/events?channel={channel}")
    try:
        stream.read_until(has_events(1), what="subscribed")
        assert publish(herald, channel, "hello") == {"channel": channel, "receivers": 1}
        parser = stream.read_until(has_events(2), what="the message event")
        assert parser.json_events()[1] == {"type": "message", "channel": channel, "data": "hello"}
        assert parser.raw.endswith(
            b'data: {"type":"message","channel":"' + channel.encode() + b'","data":"hello"}\n\n')
    finally:
        stream.close()


def test_pattern_delivery(herald):
    prefix = unique("sse-p")
    stream = SSEConnection(herald.port, f"/events?pattern={prefix}-*")
    try:
        stream.read_until(has_events(1))
        publish(herald, f"{prefix}-1", "hi")
        event = stream.read_until(has_events(2)).json_events()[1]
        assert event == {"type": "pmessage", "pattern": f"{prefix}-*", "channel": f"{prefix}-1", "data": "hi"}
    finally:
        stream.close()


def test_multi_line_raw_payload_is_split_into_data_lines(herald):
    channel = unique("sse")
    stream = SSEConnection(herald.port, f"/events?channel={channel}&format=raw")
    try:
        stream.read_until(has_events(1))
        publish(herald, channel, "line1\nline2\nline3")
        parser = stream.read_until(has_events(2))
        assert parser.raw.endswith(b"data: line1\ndata: line2\ndata: line3\n\n"), parser.raw
        assert parser.events[1]["data"] == "line1\nline2\nline3"
        publish(herald, channel, "a\r\nb\rc")
        parser = stream.read_until(has_events(3))
        assert parser.raw.endswith(b"data: a\ndata: b\ndata: c\n\n"), parser.raw
        assert parser.events[2]["data"] == "a\nb\nc", "SSE carries line breaks as LF"
    finally:
        stream.close()


def test_multi_line_payload_in_json_format_stays_one_data_line(herald):
    channel = unique("sse")
    stream = SSEConnection(herald.port, f"/events?channel={channel}")
    try:
        stream.read_until(has_events(1))
        publish(herald, channel, "line1\nline2\r\nline3")
        parser = stream.read_until(has_events(2))
        assert parser.raw.endswith(b'","data":"line1\\nline2\\r\\nline3"}\n\n'), parser.raw
        assert parser.json_events()[1]["data"] == "line1\nline2\r\nline3"
    finally:
        stream.close()


def test_format_raw_sends_bare_payloads(herald):
    channel = unique("sse")
    stream = SSEConnection(herald.port, f"/events?channel={channel}&format=raw")
    try:
        parser = stream.read_until(has_events(1))
        assert parser.json_events()[0] == {"type": "subscribed", "kind": "channel", "names": [channel]}, \
            "control answers stay JSON"
        publish(herald, channel, '{"not":"wrapped"}')
        publish(herald, channel, "plain text")
        publish(herald, channel, "")
        parser = stream.read_until(has_events(4))
        assert [e["data"] for e in parser.events[1:]] == ['{"not":"wrapped"}', "plain text", ""]
        assert all(e["event"] is None for e in parser.events[1:])
    finally:
        stream.close()


def test_format_raw_binary_payload_is_a_base64_binary_event(herald):
    channel = unique("sse")
    stream = SSEConnection(herald.port, f"/events?channel={channel}&format=raw")
    try:
        stream.read_until(has_events(1))
        publish(herald, channel, b"\xff\x00\xc0\xaf")
        parser = stream.read_until(has_events(2))
        assert parser.events[1] == {"data": "/wDArw==", "id": None, "event": "binary"}
    finally:
        stream.close()


# --------------------------------------------------------------------------- streams

@pytest.mark.parametrize("client", ["curl", "http.client"])
def test_stream_history_carries_ids_then_goes_live(herald, client):
    key = unique("sse-s")
    ids = [xadd(herald, key, {"n": str(i)}) for i in range(3)]
    stream = open_stream(client, herald, f"/events?stream={key}&from=0")
    try:
        parser = stream.read_until(has_events(3), what="the history")
        assert [e["id"] for e in parser.events] == ids
        assert parser.json_events() == [entry(key, i, {"n": str(n)}) for n, i in enumerate(ids)]
        assert f"id: {ids[0]}\ndata: ".encode() in parser.raw
        live = xadd(herald, key, {"n": "live"})
        parser = stream.read_until(has_events(4), what="the live entry")
        assert parser.events[3]["id"] == live
        assert parser.json_events()[3] == entry(key, live, {"n": "live"})
        assert parser.last_event_id == live
        if isinstance(stream, SSEConnection):
            stream.read_for(0.3)
        assert len(stream.parser.events) == 4, "no duplicate at the seam"
    finally:
        stream.close()


def test_stream_without_from_gets_only_new_entries(herald):
    key = unique("sse-s")
    xadd(herald, key, {"n": "old"})
    stream = SSEConnection(herald.port, f"/events?stream={key}")
    try:
        stream.read_until(lambda p: p.items, what="retry")
        # The tail joins asynchronously: append until one arrives, then check it is not the old one.
        new = []
        parser = stream.parser

        def got_new():
            new.append(xadd(herald, key, {"n": "new"}))
            stream.read_for(0.2)
            return parser.events
        wait_until(got_new, timeout=5, what="a live entry")
        assert parser.events[0]["id"] in new
        assert all(json.loads(e["data"])["fields"] == {"n": "new"} for e in parser.events)
    finally:
        stream.close()


def resume_case(herald):
    key = unique("sse-r")
    ids = [xadd(herald, key, {"n": str(i)}) for i in range(4)]
    return key, ids


@pytest.mark.parametrize("how", ["header", "query-lastEventId", "query-from"])
def test_resume_gets_only_later_entries(herald, how):
    key, ids = resume_case(herald)
    path, headers = f"/events?stream={key}", {}
    if how == "header":
        headers["Last-Event-ID"] = ids[1]
    elif how == "query-lastEventId":
        path += f"&lastEventId={ids[1]}"
    else:
        path += f"&from={ids[1]}"
    stream = SSEConnection(herald.port, path, headers)
    try:
        parser = stream.read_until(has_events(2))
        assert [e["id"] for e in parser.events] == ids[2:]
        stream.read_for(0.3)
        assert [e["id"] for e in parser.events] == ids[2:], "nothing at or before the resume id"
        live = xadd(herald, key, {"n": "4"})
        assert [e["id"] for e in stream.read_until(has_events(3)).events] == ids[2:] + [live]
    finally:
        stream.close()


def test_browser_reconnect_with_last_event_id_resumes_despite_from_zero(herald):
    """What EventSource does after a drop: the same URL (here `from=0`, as the README's
    example) plus `Last-Event-ID: <last id seen>`. It must resume after that id, not replay."""
    key, ids = resume_case(herald)
    stream = SSEConnection(herald.port, f"/events?stream={key}&from=0", {"Last-Event-ID": ids[1]})
    try:
        parser = stream.read_until(has_events(2))
        stream.read_for(0.3)
        assert [e["id"] for e in parser.events] == ids[2:], (
            "a reconnecting EventSource got entries it had already seen")
    finally:
        stream.close()


def test_bad_resume_id_is_400(herald):
    status, _, body = http("GET", f"{herald.base_url}/events?stream={unique('s')}",
                           headers={"Last-Event-ID": "not-an-id"})
    assert_json_error(status, body, 400, "bad_id", "Last-Event-ID: not-an-id")
    status, _, body = http("GET", f"{herald.base_url}/events?stream={unique('s')}&lastEventId=junk")
    assert_json_error(status, body, 400, "bad_id", "lastEventId=junk")


# --------------------------------------------------------------------------- heartbeat

def test_heartbeat_comment_with_short_ping_interval(start_herald):
    srv = start_herald("--ping-interval", "1")
    channel = unique("sse")
    start = time.monotonic()
    stream = SSEConnection(srv.port, f"/events?channel={channel}")
    try:
        stream.read_until(has_events(1))
        parser = stream.read_until(lambda p: ("comment", "ping") in p.items, timeout=3, what=": ping")
        first = time.monotonic() - start
        assert first <= 1.6, f"first heartbeat after {first:.2f}s with --ping-interval 1"
        assert b"\n: ping\n\n" in parser.raw
        stream.read_until(lambda p: p.items.count(("comment", "ping")) >= 2, timeout=2.5,
                          what="a second : ping")
    finally:
        stream.close()


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("route", ["/events", "/subscribe"])
@pytest.mark.parametrize("query", ["stream=jobs&group=g&consumer=c", "queue=jobs"])
def test_groups_and_queues_are_refused_over_sse(herald, route, query):
    status, headers, body = http("GET", f"{herald.base_url}{route}?{query}", headers=SSE_ACCEPT)
    assert_json_error(status, body, 400, "bad_request", f"GET {route}?{query}")
    assert "text/event-stream" not in (headers.get("Content-Type") or "")


@pytest.mark.parametrize("headers", [{}, {"Accept": "application/json"}, {"Accept": "text/html"}])
def test_subscribe_without_accept_or_upgrade_is_426(herald, headers):
    status, _, body = http("GET", f"{herald.base_url}/subscribe?channel=a", headers=headers)
    assert_json_error(status, body, 426, "upgrade_required", f"GET /subscribe with {headers}")


def test_sse_accept_among_others_is_an_event_stream(herald):
    channel = unique("sse")
    stream = SSEConnection(herald.port, f"/subscribe?channel={channel}",
                           {"Accept": "text/html, text/event-stream;q=0.9"})
    try:
        assert stream.read_until(has_events(1)).json_events()[0]["type"] == "subscribed"
    finally:
        stream.close()


# --------------------------------------------------------------------------- SIGTERM

def test_sigterm_ends_open_event_streams(start_herald):
    srv = start_herald()
    channel, key = unique("sse"), unique("sse-s")
    streams = [SSEConnection(srv.port, f"/events?channel={channel}"),
               SSEConnection(srv.port, f"/events?stream={key}&from=0")]
    try:
        streams[0].read_until(has_events(1))
        streams[1].read_until(lambda p: p.items)
        srv.proc.send_signal(signal.SIGTERM)
        for s in streams:
            assert s.wait_closed(timeout=8), "the event stream was still open 8 s after SIGTERM"
        assert srv.proc.wait(timeout=10) == 0, srv.log()
    finally:
        for s in streams:
            s.close()


# --------------------------------------------------------------------------- EventSource in Chromium

@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.skip(f"{path} is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


OPEN_EVENT_SOURCE = """
window.__got = []; window.__errors = 0; window.__opens = 0;
const es = new EventSource(arguments[0]);
window.__es = es;
es.onopen = () => { window.__opens += 1; };
es.onmessage = (e) => window.__got.push({data: e.data, lastEventId: e.lastEventId, origin: e.origin});
es.onerror = () => { window.__errors += 1; };
"""


def page_got(driver):
    return driver.execute_script("return window.__got || [];")


def wait_page(driver, condition, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        got = page_got(driver)
        if condition(got):
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; the page got {got}")
        time.sleep(0.1)


def test_event_source_in_chromium_gets_history_and_live_entries_with_ids(browser, herald):
    key = unique("sse-b")
    first = [xadd(herald, key, {"n": str(i)}) for i in range(2)]
    browser.get(herald.base_url + "/")
    browser.execute_script(OPEN_EVENT_SOURCE, f"/events?stream={key}&from=0")
    got = wait_page(browser, lambda g: len(g) >= 2, "the history")
    later = [xadd(herald, key, {"n": str(i)}) for i in range(2, 4)]
    got = wait_page(browser, lambda g: len(g) >= 4, "the live entries")
    ids = first + later
    assert [m["lastEventId"] for m in got] == ids, "e.lastEventId is each entry's id"
    assert [json.loads(m["data"]) for m in got] == [entry(key, i, {"n": str(n)}) for n, i in enumerate(ids)]
    assert got[0]["origin"] == herald.base_url
    assert browser.execute_script("return window.__es.readyState;") == 1, "OPEN"
    browser.execute_script("window.__es.close();")


def test_event_source_in_chromium_receives_channel_messages(browser, herald):
    channel = unique("sse-b")
    browser.get(herald.base_url + "/")
    browser.execute_script(OPEN_EVENT_SOURCE, f"/events?channel={channel}")
    wait_page(browser, lambda g: len(g) >= 1, "the subscribed event")
    assert publish(herald, channel, "from python")["receivers"] >= 1
    got = wait_page(browser, lambda g: len(g) >= 2, "the message")
    assert json.loads(got[0]["data"]) == {"type": "subscribed", "kind": "channel", "names": [channel]}
    assert json.loads(got[1]["data"]) == {"type": "message", "channel": channel, "data": "from python"}
    browser.execute_script("window.__es.close();")


def test_event_source_in_chromium_resumes_after_herald_restarts(browser, start_herald):
    """Herald goes away mid-stream and comes back on the same port: the browser reconnects by
    itself after `retry: 3000` and must get only the entries it has not seen."""
    srv = start_herald()
    port = srv.port
    key = unique("sse-b")
    seen = [xadd(srv, key, {"n": str(i)}) for i in range(3)]
    browser.get(srv.base_url + "/")
    browser.execute_script(OPEN_EVENT_SOURCE, f"/events?stream={key}&from=0")
    wait_page(browser, lambda g: len(g) >= 3, "the history")
    srv.stop()
    wait_until(lambda: browser.execute_script("return window.__errors;") >= 1, timeout=10,
               what="the page to notice the stream ended")
    back = start_herald(port=port)
    after = [xadd(back, key, {"n": str(i)}) for i in range(3, 5)]
    got = wait_page(browser, lambda g: len(g) >= 5, "entries after the reconnect", timeout=20)
    time.sleep(0.5)
    got = page_got(browser)
    assert browser.execute_script("return window.__opens;") >= 2, "the page reconnected"
    assert [m["lastEventId"] for m in got] == seen + after, "replayed or lost entries across the reconnect"
    browser.execute_script("window.__es.close();")
