"""permessage-deflate (RFC 7692) as clients see it.

Deliveries arrive compressed to a client that offered compression and decode to the exact
message; a client that did not offer it, a message under --compression-min, and a Herald run
with --compression off get plain frames; a fan-out to many compressed subscribers compresses the
message once (herald_ws_compressions_total) and every one of them gets the same bytes; client
messages are inflated under --max-message (a deflate bomb closes 1009 with Herald's memory
bounded), and corrupt data (1007) or misplaced RSV1 bits (1002) close the connection.
"""

import json
import os
import socket
import struct
import time
import zlib

import pytest

from conftest import (RawWebSocket, http, publish, unique, wait_until, ws_connect,
                      ws_handshake_request)
from test_metrics import metric
from test_demo_page import _wait, driver  # noqa: F401  (the headless Chromium fixture)

BROWSER_OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"


# --------------------------------------------------------------------------- helpers

class DeflateSocket(RawWebSocket):
    """RawWebSocket whose handshake may offer extensions, and whose frames keep their RSV bits."""

    def __init__(self, port, path="/subscribe", offer=BROWSER_OFFER, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        extra = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
        request, _ = ws_handshake_request(path, extra=extra)
        self.sock.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            assert chunk, f"connection closed during handshake, got {buf!r}"
            buf += chunk
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), head
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        self.extensions = self.headers.get("sec-websocket-extensions")
        self.closed = False

    def recv_message(self, timeout=5.0):
        """(rsv1, opcode, payload as sent on the wire) of the next unfragmented data frame."""
        self._fill(1, time.monotonic() + timeout)
        rsv1 = bool(self.buf[0] & 0x40)
        fin, opcode, payload = self.recv_frame(timeout)
        assert fin, "Herald does not fragment what it sends"
        return rsv1, opcode, payload

    def send_compressed(self, opcode, data, rsv=4):
        """`data` compressed as permessage-deflate does it, in one frame with RSV1 set."""
        self.send_frame(opcode, deflate(data), rsv=rsv)


def deflate(data: bytes, wbits=15) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(payload: bytes, wbits=15) -> bytes:
    """One message compressed without context takeover, as a client inflates it."""
    return zlib.decompressobj(-wbits).decompress(payload + TAIL)


def subscribe(sock, channel):
    sock.send_text(json.dumps({"op": "subscribe", "channel": channel}))
    rsv1, opcode, payload = sock.recv_message()
    assert not rsv1 and json.loads(payload) == {"type": "subscribed", "kind": "channel", "names": [channel]}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def big_json(n=2000):
    return json.dumps({"items": [{"id": i, "name": f"item {i}", "price": i * 3} for i in range(n // 40)]})[:n]


# --------------------------------------------------------------------------- negotiation

def test_browser_offer_gets_server_no_context_takeover(herald):
    sock = DeflateSocket(herald.port)
    try:
        assert sock.extensions == "permessage-deflate; server_no_context_takeover"
    finally:
        sock.close()


def test_server_max_window_bits_is_honoured(herald):
    """A client with a 1 KB window (server_max_window_bits=10) can inflate every delivery."""
    channel = unique()
    sock = DeflateSocket(herald.port, f"/subscribe?channel={channel}",
                         offer="permessage-deflate; server_max_window_bits=10")
    try:
        assert sock.extensions == "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        sock.recv_message()  # subscribed
        # Repeats 4 KB apart: a 32 KB window would refer back further than 1 KB.
        block = os.urandom(3000).hex()
        message = block + "-" + block
        publish(herald, channel, message)
        rsv1, _, payload = sock.recv_message()
        assert rsv1
        assert json.loads(inflate(payload, wbits=10))["data"] == message
    finally:
        sock.close()


def test_declined_offer_and_no_offer_get_plain_frames(herald):
    channel = unique()
    message = big_json()
    plain = DeflateSocket(herald.port, f"/subscribe?channel={channel}", offer=None)
    # An 8-bit server window is declined (zlib cannot make one): no extension, plain frames.
    declined = DeflateSocket(herald.port, f"/subscribe?channel={channel}",
                             offer="permessage-deflate; server_max_window_bits=8")
    try:
        for sock in (plain, declined):
            assert sock.extensions is None
            sock.recv_message()
        publish(herald, channel, message)
        for sock in (plain, declined):
            rsv1, opcode, payload = sock.recv_message()
            assert not rsv1 and opcode == 0x1
            assert json.loads(payload)["data"] == message
    finally:
        plain.close()
        declined.close()


def test_compression_off_never_negotiates(start_herald):
    srv = start_herald("--compression", "off")
    sock = DeflateSocket(srv.port)
    try:
        assert sock.extensions is None
        # RSV1 is then a protocol error like any reserved bit.
        sock.send_compressed(0x1, b'{"op":"ping"}' * 30)
        code, _, _ = sock.recv_until_close()
        assert code == 1002
    finally:
        sock.close()
    ws = ws_connect(srv.ws_url + "/subscribe")
    try:
        assert not ws.protocol.extensions
    finally:
        ws.close()


# --------------------------------------------------------------------------- deliveries

def test_websockets_client_gets_compressed_deliveries_that_decode_exactly(herald):
    channel = unique()
    message = big_json(4000) + " ünïcödé ✓"
    ws = ws_connect(herald.ws_url + f"/subscribe?channel={channel}")
    raw = DeflateSocket(herald.port, f"/subscribe?channel={channel}&format=raw")
    try:
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        raw.recv_message()
        publish(herald, channel, message)
        envelope = json.loads(ws.recv(timeout=5))
        assert envelope == {"type": "message", "channel": channel, "data": message}
        rsv1, opcode, payload = raw.recv_message()
        assert rsv1 and opcode == 0x1
        assert len(payload) < len(message.encode()) / 3
        assert inflate(payload) == message.encode()
    finally:
        ws.close()
        raw.close()


def test_messages_under_the_minimum_go_uncompressed(start_herald):
    srv = start_herald("--compression-min", "1k")
    channel = unique()
    sock = DeflateSocket(srv.port, f"/subscribe?channel={channel}&format=raw")
    try:
        assert sock.extensions
        sock.recv_message()
        publish(srv, channel, "x" * 1023)
        publish(srv, channel, "y" * 1024)
        rsv1, _, payload = sock.recv_message()
        assert not rsv1 and payload == b"x" * 1023
        rsv1, _, payload = sock.recv_message()
        assert rsv1 and inflate(payload) == b"y" * 1024
        # Answers follow the same rule: a short one is plain.
        sock.send_text('{"op":"ping"}')
        rsv1, _, payload = sock.recv_message()
        assert not rsv1 and json.loads(payload) == {"type": "pong"}
    finally:
        sock.close()


def test_fan_out_compresses_once_for_every_subscriber(start_herald):
    """40 compressed subscribers of one channel on one loop: the same bytes for all, one
    compression in all (herald_ws_compressions_total), the bytes saved counted."""
    srv = start_herald(loops=1)
    channel = unique()
    subscribers = [DeflateSocket(srv.port, f"/subscribe?channel={channel}") for _ in range(40)]
    plain = DeflateSocket(srv.port, f"/subscribe?channel={channel}", offer=None)
    try:
        for sock in subscribers + [plain]:
            sock.recv_message()
        assert metric(srv, "herald_ws_compressed_connections") == 40
        before = metric(srv, "herald_ws_compressions_total")
        message = big_json(1000)
        publish(srv, channel, message)
        frames = {sock.recv_message() for sock in subscribers}
        assert len(frames) == 1, "every compressed subscriber gets the same bytes"
        rsv1, _, payload = frames.pop()
        assert rsv1
        assert json.loads(inflate(payload)) == {"type": "message", "channel": channel, "data": message}
        rsv1, _, plain_payload = plain.recv_message()
        assert not rsv1 and json.loads(plain_payload)["data"] == message
        wait_until(lambda: metric(srv, "herald_ws_compressions_total") == before + 1,
                   what="one compression for the whole fan-out")
        compressed = metric(srv, "herald_ws_compressed_bytes_total")
        uncompressed = metric(srv, "herald_ws_uncompressed_bytes_total")
        assert compressed >= 40 * len(payload) and uncompressed > 2 * compressed
    finally:
        for sock in subscribers + [plain]:
            sock.close()
    wait_until(lambda: metric(srv, "herald_ws_compressed_connections") == 0, what="gauge back to 0")


# --------------------------------------------------------------------------- client messages

def test_compressed_client_messages_with_context_takeover(start_herald):
    """Python's websockets keeps its compression context between messages (as browsers do):
    every echo comes back exact, and compressed ops work on /subscribe."""
    srv = start_herald()
    ws = ws_connect(srv.ws_url + "/echo")
    try:
        for i in range(20):
            message = big_json(3000) + str(i)
            ws.send(message)
            assert ws.recv(timeout=5) == message
        ws.send(os.urandom(5000))  # incompressible binary
        assert len(ws.recv(timeout=5)) == 5000
    finally:
        ws.close()
    channel = unique()
    ws = ws_connect(srv.ws_url + "/subscribe")
    try:
        ws.send(json.dumps({"op": "subscribe", "channel": channel, "pad": "p" * 500}))
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        ws.send(json.dumps({"op": "publish", "channel": channel, "message": "m" * 600}))
        answers = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        assert {"type": "message", "channel": channel, "data": "m" * 600} in answers
    finally:
        ws.close()


def test_deflate_bomb_closes_1009_with_memory_bounded(start_herald):
    """64 MB of zeros compress to 64 KB, under --max-message 1m on the wire; inflating stops at
    1 MB. Herald's RSS stays far below what inflating them would take."""
    srv = start_herald("--max-message", "1m")
    bomb = deflate(b"\x00" * (64 << 20))
    assert len(bomb) < 100_000
    baseline = rss_kb(srv.proc.pid)
    for _ in range(5):
        sock = DeflateSocket(srv.port)
        try:
            sock.send_frame(0x2, bomb, rsv=4)
            code, reason, _ = sock.recv_until_close()
            assert code == 1009, reason
            assert b"inflated" in reason
        finally:
            sock.close()
    assert rss_kb(srv.proc.pid) - baseline < 32 * 1024, "inflating is capped, not done whole"
    # Herald still serves.
    assert http("GET", srv.base_url + "/healthz")[0] == 200


def test_corrupt_deflate_data_closes_1007(herald):
    sock = DeflateSocket(herald.port)
    try:
        sock.send_frame(0x1, b"\xff\xff\xff\xff\xff", rsv=4)  # reserved block type 11
        code, reason, _ = sock.recv_until_close()
        assert code == 1007 and b"DEFLATE" in reason
    finally:
        sock.close()


@pytest.mark.parametrize("case", ["no negotiation", "control frame", "continuation frame"])
def test_misplaced_rsv1_closes_1002(herald, case):
    sock = DeflateSocket(herald.port, offer=None if case == "no negotiation" else BROWSER_OFFER)
    try:
        if case == "no negotiation":
            sock.send_compressed(0x1, b'{"op":"ping"}')
        elif case == "control frame":
            sock.send_frame(0x9, b"", rsv=4)
        else:
            data = deflate(b'{"op":"ping"}' * 10)
            sock.send_frame(0x1, data[:5], fin=False, rsv=4)
            sock.send_frame(0x0, data[5:], rsv=4)
        code, _, _ = sock.recv_until_close()
        assert code == 1002
    finally:
        sock.close()


def test_fragmented_compressed_message(herald):
    """RSV1 on the first frame only; the continuation carries the rest (RFC 7692 §6.1)."""
    sock = DeflateSocket(herald.port)
    try:
        data = deflate(json.dumps({"op": "ping", "pad": "z" * 2000}).encode())
        sock.send_frame(0x1, data[:7], fin=False, rsv=4)
        sock.send_frame(0x9, b"p")
        sock.send_frame(0x0, data[7:])
        _, opcode, payload = sock.recv_message()
        assert opcode == 0xA and payload == b"p"
        rsv1, _, payload = sock.recv_message()
        assert json.loads(payload) == {"type": "pong"}
    finally:
        sock.close()


# --------------------------------------------------------------------------- a real browser

def test_chromium_negotiates_compression_both_ways(start_herald, driver):  # noqa: F811
    """Chromium offers permessage-deflate on its own, compresses what it sends with context
    takeover, and inflates what Herald sends: a round trip of large messages through /subscribe."""
    srv = start_herald(loops=1)
    channel = unique()
    driver.get(srv.base_url + "/herald.js")  # Herald's origin, without the demo page's own socket
    driver.execute_script("""
        const [url, channel] = arguments;
        window.__c = {messages: [], extensions: null, closed: null};
        const ws = new WebSocket(url + "/subscribe?channel=" + encodeURIComponent(channel));
        ws.onopen = () => { __c.extensions = ws.extensions; };
        ws.onclose = (e) => { __c.closed = e.code; };
        ws.onmessage = (e) => {
            const m = JSON.parse(e.data);
            __c.messages.push(m);
            if (m.type === "subscribed") {
                for (let i = 0; i < 5; i++) {
                    ws.send(JSON.stringify({op: "publish", channel, message: ("order " + i + " ").repeat(300)}));
                }
            }
        };
    """, srv.ws_url, channel)
    _wait(driver, lambda d: len([m for m in d.execute_script("return __c.messages;")
                                 if m.get("type") == "message"]) == 5, "five deliveries")
    state = driver.execute_script("return __c;")
    assert state["extensions"].startswith("permessage-deflate"), state["extensions"]
    assert state["closed"] is None
    data = [m["data"] for m in state["messages"] if m.get("type") == "message"]
    assert data == [("order %d " % i) * 300 for i in range(5)]
    assert metric(srv, "herald_ws_compressed_connections") == 1
    wait_until(lambda: metric(srv, "herald_ws_compressions_total") >= 5, what="deliveries compressed")


# --------------------------------------------------------------------------- watched values

def test_watched_values_are_compressed_once_for_every_watcher(start_herald, redis_server):
    """A watched key's value is one message for every watcher of it; compressed watchers get
    one compressed frame made once, which inflates to the exact value."""
    server = start_herald("--keyspace-events", loops=1)
    key = unique("watched")
    value = big_json(3000)
    redis_server.cli("SET", key, "first")
    socks = [DeflateSocket(server.port, path=f"/subscribe?watch={key}") for _ in range(3)]
    try:
        before = metric(server, "herald_ws_compressions_total") or 0
        for sock in socks:
            rsv1, _, payload = sock.recv_message()
            assert json.loads(payload)["value"] == "first"
            rsv1, _, payload = sock.recv_message()
            assert json.loads(payload)["type"] == "watching"
        redis_server.cli("SET", key, value)
        frames = []
        for sock in socks:
            rsv1, opcode, payload = sock.recv_message()
            assert rsv1, "a 3 KB value goes compressed"
            message = json.loads(inflate(payload))
            assert message == {"type": "value", "key": key, "kind": "string", "value": value}
            frames.append(payload)
        assert frames[0] == frames[1] == frames[2], "one compressed frame for every watcher"
        # The loop publishes its counters every housekeeping tick.
        wait_until(lambda: (metric(server, "herald_ws_compressions_total") or 0) - before == 1,
                   what="one compression counted")
        time.sleep(0.6)
        assert (metric(server, "herald_ws_compressions_total") or 0) - before == 1
    finally:
        for sock in socks:
            sock.close()
