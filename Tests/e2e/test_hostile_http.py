"""Hostile-client probes of Herald's HTTP/1.x layer (issue 11, items 7-12), grouped by item.

Each probe is what a hostile or merely unusual client sends, and asserts what that client (or a
strict proxy's checklist) expects back. The next security review starts from these.
"""

import http.client as httpclient
import re
import socket
import struct
import subprocess
import time

import pytest

from conftest import (
    RawWebSocket,
    assert_json_error,
    count_complete_responses,
    http,
    parse_responses,
    raw_exchange,
    read_available,
    unique,
    wait_until,
)

MIB = 1024 * 1024


def one_response(raw, context):
    responses, _ = parse_responses(raw)
    assert responses, f"{context}: no complete HTTP response in {bytes(raw)[:500]!r}"
    return responses[0]


def http_connections(herald):
    """herald_connections{kind="http"}, the scraping connection included."""
    _, _, body = http("GET", herald.base_url + "/metrics")
    match = re.search(rb'^herald_connections\{kind="http"\} (\d+)', body, re.M)
    assert match, body[:500]
    return int(match.group(1))


def send_whole_then_read(port, data, timeout=10.0):
    """Send every byte before reading anything (as http.client and urllib do), then read the
    answer. Returns (bytes, closed); a reset while sending or reading fails the test."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError) as exc:
            pytest.fail(f"Herald reset the connection while the client was still sending: {exc!r}")
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError as exc:
                pytest.fail(f"Herald reset the connection before the answer was read ({buf[:200]!r}): {exc!r}")
            if not chunk:
                return buf, True
            buf += chunk


# --------------------------------------------------------------------------- item 7
# A refused request must be readable by a client that sends all of it first: Herald half-closes
# and drains what still arrives (lingering close) instead of closing with unread input (RST).

@pytest.mark.parametrize("attempt", range(5))
def test_7_http_client_sending_2_mib_reads_the_413(herald, attempt):
    # Item 7 / RFC 9112 §9.6: http.client writes the whole body before reading the answer.
    conn = httpclient.HTTPConnection("127.0.0.1", herald.port, timeout=10)
    try:
        try:
            conn.request("POST", f"/publish/{unique('big')}", body=b"x" * (2 * MIB))
            resp = conn.getresponse()
            body = resp.read()
        except (ConnectionResetError, BrokenPipeError) as exc:
            pytest.fail(f"attempt {attempt}: the client got {exc!r} instead of the 413 answer")
    finally:
        conn.close()
    assert_json_error(resp.status, body, 413, "payload_too_large", "2 MiB sent before reading")
    assert resp.getheader("Connection") == "close"


def test_7_chunked_body_over_the_limit_sent_whole_reads_the_413(herald):
    # Item 7: the 413 found part-way through a chunked body, the rest still coming.
    chunk = b"10000\r\n" + b"y" * 65536 + b"\r\n"
    raw, closed = send_whole_then_read(herald.port, b"POST /publish/x HTTP/1.1\r\nHost: x\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 32 + b"0\r\n\r\n")
    resp = one_response(raw, "2 MiB chunked body sent whole")
    assert_json_error(resp.status, resp.body, 413, "payload_too_large", "2 MiB chunked body")
    assert closed


def test_7_header_block_too_large_with_more_input_reads_the_431(herald):
    # Item 7, same class: 431 answered while the client still sends.
    raw, closed = send_whole_then_read(herald.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                                       + b"a" * (64 * 1024) + b"\r\n\r\n" + b"b" * MIB)
    resp = one_response(raw, "64 KiB header block and 1 MiB more")
    assert_json_error(resp.status, resp.body, 431, "headers_too_large", "64 KiB header block")
    assert closed


def test_7_malformed_request_with_a_body_behind_it_reads_the_400(herald):
    # Item 7, same class: 400 for a bad Content-Length, with a large body right behind it.
    raw, closed = send_whole_then_read(herald.port, b"POST /publish/x HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: 1x\r\n\r\n" + b"z" * (2 * MIB))
    resp = one_response(raw, "bad Content-Length and 2 MiB behind it")
    assert_json_error(resp.status, resp.body, 400, "bad_request", "bad Content-Length")
    assert closed


def test_7_timed_out_request_that_goes_on_sending_reads_the_408(start_herald):
    # Item 7, same class: the 408 for a head that did not arrive in time is written while the
    # client may still be sending; the client must still be able to read it.
    srv = start_herald("--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"POST /publish/x HTTP/1.1\r\nHost: x\r\n")
        time.sleep(2.2)  # past the header deadline (1 s, checked every 0.5 s): the 408 is sent
        try:
            for _ in range(16):
                sock.sendall(b"X-Late: " + b"l" * 16384 + b"\r\n")
        except (ConnectionResetError, BrokenPipeError) as exc:
            pytest.fail(f"Herald reset the connection after its 408: {exc!r}")
        raw, closed = read_available(sock, 5)
    resp = one_response(raw, "late head")
    assert_json_error(resp.status, resp.body, 408, "request_timeout", "late head")
    assert closed


def test_7_websocket_frame_over_the_limit_sent_whole_reads_the_1009(herald):
    # Item 7, same class (RFC 6455 §7.1.7): the close frame for an oversize message must reach a
    # client that is still sending that message, not be destroyed by a reset.
    ws = RawWebSocket(herald.port, "/echo")
    try:
        try:
            # A 3 MiB binary frame (zero mask key: the payload goes out as is) through a small
            # send buffer, so the client is still sending when Herald refuses it.
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
            size = 3 * MIB
            ws.sock.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, size) + b"\0\0\0\0" + b"m" * size)
        except (ConnectionResetError, BrokenPipeError) as exc:
            pytest.fail(f"Herald reset the WebSocket while the client was still sending: {exc!r}")
        try:
            code, _, _ = ws.recv_until_close(timeout=5)
        except (EOFError, ConnectionResetError) as exc:
            pytest.fail(f"no close frame before the connection ended: {exc!r}")
        assert code == 1009, code
        assert ws.wait_eof(5), "Herald must end the connection after its close frame"
    finally:
        ws.close()


def test_7_lingering_close_is_bounded_in_time(start_herald):
    # Item 7: a client that neither closes nor stops after the 413 is let go within ~2 s; it does
    # not count as a connection forever.
    srv = start_herald()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        sock.sendall(b"POST /publish/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        raw, closed = read_available(sock, 5)
        resp = one_response(raw, "oversize Content-Length")
        assert_json_error(resp.status, resp.body, 413, "payload_too_large", "oversize Content-Length")
        assert closed, "the answer must be followed by end of stream (write side shut down)"
        # The gauge counts the scraping connection too: 2 while lingering, then 1.
        wait_until(lambda: http_connections(srv) == 2, timeout=1.5, what="the lingering socket to be counted")
        wait_until(lambda: http_connections(srv) == 1, timeout=6,
                   what="the lingering connection to be closed by the timers")
    finally:
        sock.close()


def test_7_lingering_close_is_bounded_in_bytes(herald):
    # Item 7: what Herald reads and drops after a refusal is capped (a few MiB), then it resets.
    sock = socket.create_connection(("127.0.0.1", herald.port), timeout=10)
    sent = 0
    try:
        sock.sendall(b"POST /publish/x HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while sent < 256 * MIB:
                sock.sendall(b"q" * 65536)
                sent += 65536
    finally:
        sock.close()
    assert sent < 64 * MIB, f"Herald drained {sent} bytes of a refused body"


def test_7_answer_the_client_never_reads_is_dropped_after_the_idle_timeout(start_herald, tmp_path):
    # Item 7, same class: a `Connection: close` answer that never drains (the client does not
    # read it) kept the connection for good; it now goes after --keepalive-timeout, as an idle
    # keep-alive connection with an unread answer already did.
    (tmp_path / "big.bin").write_bytes(b"x" * (8 * MIB))
    srv = start_herald("--keepalive-timeout", "1", public=tmp_path)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(12) == b"HTTP/1.1 200", "the download must start (then it is never read)"
        # The gauge counts the scraping connection too: 1 once the download is dropped.
        wait_until(lambda: http_connections(srv) == 1, timeout=8,
                   what="the undrained Connection: close answer to be dropped")
    finally:
        sock.close()


# --------------------------------------------------------------------------- item 8
# Chunk extensions and trailer fields are parsed and checked (RFC 9112 §7.1.1, §7.1.2): a bare LF
# there is a line end to a lenient proxy in front, so the two would frame the stream differently.

CHUNKED_HEAD = b"POST /publish/%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("body", [
    b"5;a\nb\r\nhello\r\n0\r\n\r\n",        # bare LF in a chunk extension
    b"5;a\rb\r\nhello\r\n0\r\n\r\n",        # bare CR in a chunk extension
    b"5;a=\"x\x01\"\r\nhello\r\n0\r\n\r\n",  # control byte in a quoted value
    b"5;\r\nhello\r\n0\r\n\r\n",            # ";" without a name
    b"5\r\nhello\r\n0\r\nX-T: a\nb\r\n\r\n",  # bare LF in a trailer field
    b"5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n",  # bare CR in a trailer field
    b"5\r\nhello\r\n0\r\n folded\r\n\r\n",  # obs-fold in the trailer section
], ids=["ext-lf", "ext-cr", "ext-ctl", "ext-empty", "trailer-lf", "trailer-cr", "trailer-fold"])
def test_8_bad_chunk_extension_or_trailer_is_400_and_closes(herald, body):
    # Item 8 / RFC 9112 §7.1.1-7.1.2.
    raw = raw_exchange(herald.port, CHUNKED_HEAD % unique("ch").encode() + body, 5)
    resp = one_response(raw, f"chunked body {body!r}")
    assert_json_error(resp.status, resp.body, 400, "bad_request", repr(body))
    assert raw.closed, "the connection must close after a framing error"


def test_8_well_formed_extensions_and_trailers_are_accepted(herald):
    # Item 8: extensions (token and quoted-string values, BWS) and trailers are fine.
    channel = unique("ch")
    body = b'3 ; a = b ;flag\r\nabc\r\n2;q="x \\" y"\r\nde\r\n0\r\nX-T: 1\r\n\r\n'
    raw = raw_exchange(herald.port, CHUNKED_HEAD % channel.encode() + body, 5,
                       until=count_complete_responses(1))
    resp = one_response(raw, "well-formed extensions")
    assert resp.status == 200, resp
    assert resp.json() == {"channel": channel, "receivers": 0}


# --------------------------------------------------------------------------- item 9
# RFC 9112 §3.2: Host is required once in HTTP/1.1; two Origins are ambiguous (decided: 400).

@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: user@a\r\n\r\n",
], ids=["no-host", "two-hosts", "two-hosts-same", "two-hosts-1.0", "host-space", "host-userinfo"])
def test_9_missing_duplicate_or_invalid_host_is_400(herald, request_bytes):
    # Item 9 / RFC 9112 §3.2: "MUST respond with a 400".
    raw = raw_exchange(herald.port, request_bytes, 5)
    resp = one_response(raw, repr(request_bytes))
    assert_json_error(resp.status, resp.body, 400, "bad_request", repr(request_bytes))


def test_9_http10_without_host_is_served(herald):
    # Item 9: HTTP/1.0 has no Host.
    raw = raw_exchange(herald.port, b"GET /healthz HTTP/1.0\r\n\r\n", 5)
    assert one_response(raw, "HTTP/1.0 without Host").status == 200


def test_9_two_origin_headers_are_400(herald):
    # Item 9 decision / RFC 6454 §7.3: a browser sends one Origin; two are refused as ambiguous.
    raw = raw_exchange(herald.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
                       b"Origin: https://b.example\r\n\r\n", 5)
    resp = one_response(raw, "two Origin headers")
    assert_json_error(resp.status, resp.body, 400, "bad_request", "two Origin headers")


# --------------------------------------------------------------------------- item 10
# RFC 9112 §3.2.2: an absolute-form target is accepted; its path and query are used.

def test_10_absolute_form_target_is_served(herald):
    # Item 10: GET http://host/healthz.
    raw = raw_exchange(herald.port, b"GET http://herald.example/healthz HTTP/1.1\r\nHost: herald.example\r\n\r\n",
                       5, until=count_complete_responses(1))
    resp = one_response(raw, "absolute-form /healthz")
    assert (resp.status, resp.json()) == (200, {"status": "ok"})


def test_10_absolute_form_serves_static_files_like_origin_form(herald):
    # Item 10: the static file route sees the same path.
    def get(target):
        raw = raw_exchange(herald.port, b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n", 5,
                           until=count_complete_responses(1))
        return one_response(raw, target.decode())
    origin, absolute, bare = get(b"/"), get(b"HTTP://h:1/"), get(b"http://h")
    assert origin.status == 200 and origin.body
    assert (absolute.status, absolute.body) == (200, origin.body)
    assert (bare.status, bare.body) == (200, origin.body), "an empty path is /"


def test_10_absolute_form_keeps_its_query(herald):
    # Item 10: the query of an absolute-form target reaches the handler (count=1 of 2 entries).
    key = unique("st")
    for n in range(2):
        status, _, _ = http("POST", f"{herald.base_url}/streams/{key}", f"m{n}".encode())
        assert status == 200
    raw = raw_exchange(herald.port, f"GET http://h/streams/{key}?count=1 HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
                       5, until=count_complete_responses(1))
    resp = one_response(raw, "absolute-form with a query")
    assert resp.status == 200, resp
    assert len(resp.json()["entries"]) == 1, resp.json()


@pytest.mark.parametrize("target", [b"ftp://h/healthz", b"http://u@h/healthz", b"healthz", b"h:80"])
def test_10_other_target_forms_are_400(herald, target):
    # Item 10: only origin-form, http(s) absolute-form and OPTIONS * are request targets here.
    raw = raw_exchange(herald.port, b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n", 5)
    resp = one_response(raw, target.decode())
    assert_json_error(resp.status, resp.body, 400, "bad_request", target.decode())


# --------------------------------------------------------------------------- item 11
# RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing: answer, then close.

def test_11_http10_with_transfer_encoding_is_400_and_closes(herald):
    # Item 11: even with keep-alive asked for, the connection closes after the answer.
    raw = raw_exchange(herald.port, b"POST /publish/x HTTP/1.0\r\nConnection: keep-alive\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n", 5)
    responses, _ = parse_responses(raw)
    assert len(responses) == 1, f"only the refusal may be answered: {bytes(raw)!r}"
    assert_json_error(responses[0].status, responses[0].body, 400, "bad_request", "HTTP/1.0 chunked")
    assert raw.closed


# --------------------------------------------------------------------------- item 12
# RFC 9110 §10.1.1: Expect: 100-continue gets 100 Continue (or the final answer at once).

def read_until(sock, predicate, timeout=5.0):
    buf, _ = read_available(sock, timeout, predicate, total_timeout=timeout)
    return buf


def test_12_expect_continue_gets_100_then_the_answer(herald):
    # Item 12: head, then 100 Continue, then the body, then the 200.
    channel = unique("ch")
    with socket.create_connection(("127.0.0.1", herald.port), timeout=5) as sock:
        sock.sendall(f"POST /publish/{channel} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     f"Content-Length: 5\r\n\r\n".encode())
        interim = read_until(sock, lambda b: b"\r\n\r\n" in b, timeout=3)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", f"expected 100 Continue, got {interim!r}"
        sock.sendall(b"hello")
        raw = read_until(sock, count_complete_responses(1))
    resp = one_response(raw, "after 100 Continue")
    assert (resp.status, resp.json()) == (200, {"channel": channel, "receivers": 0})


def test_12_expect_continue_with_an_oversize_body_gets_413_at_once(herald):
    # Item 12: no 100 when the answer is known from the head; the connection closes gracefully.
    with socket.create_connection(("127.0.0.1", herald.port), timeout=5) as sock:
        sock.sendall(b"POST /publish/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 4194304\r\n\r\n")
        raw, closed = read_available(sock, 3)
    assert not raw.startswith(b"HTTP/1.1 100"), raw[:100]
    resp = one_response(raw, "oversize body with Expect")
    assert_json_error(resp.status, resp.body, 413, "payload_too_large", "oversize with Expect")
    assert closed


def test_12_unknown_expectation_is_417(herald):
    # Item 12 / RFC 9110 §10.1.1.
    raw = raw_exchange(herald.port, b"POST /publish/x HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
                       b"Content-Length: 2\r\n\r\nhi", 5)
    resp = one_response(raw, "Expect: 200-ok")
    assert_json_error(resp.status, resp.body, 417, "expectation_failed", "Expect: 200-ok")


def test_12_http10_expect_is_ignored(herald):
    # Item 12: "MUST ignore" 100-continue in HTTP/1.0: no interim answer, the body is awaited.
    with socket.create_connection(("127.0.0.1", herald.port), timeout=5) as sock:
        sock.sendall(b"POST /publish/x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        early, _ = read_available(sock, 0.5, total_timeout=0.5)
        assert early == b"", f"HTTP/1.0 got {early!r} before its body"
        sock.sendall(b"hi")
        raw, _ = read_available(sock, 5, count_complete_responses(1))
    assert one_response(raw, "HTTP/1.0 with Expect").status == 200


@pytest.mark.parametrize("first", [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                                   b"POST /publish/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"],
                         ids=["answered-at-once", "answered-after-redis"])
def test_12_continue_never_overtakes_an_earlier_pipelined_answer(herald, first):
    # Item 12: the 100 for the second request comes after the first request's answer, also when
    # that answer waits on Redis.
    with socket.create_connection(("127.0.0.1", herald.port), timeout=5) as sock:
        sock.sendall(first + b"POST /publish/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        raw = read_until(sock, count_complete_responses(2))
        responses, _ = parse_responses(raw)
        assert [r.status for r in responses] == [200, 100], raw
        sock.sendall(b"hi")
        raw += read_until(sock, lambda more: len(parse_responses(raw + more)[0]) >= 3)
    responses, _ = parse_responses(raw)
    assert [r.status for r in responses] == [200, 100, 200], raw


@pytest.mark.parametrize("how", ["large-body", "explicit-header"])
def test_12_curl_gets_100_continue(start_herald, tmp_path, how):
    # Item 12: curl sends Expect on its own for bodies over 1 MiB, and without a 100 waits
    # (1 s by default, here 30 s) before sending the body anyway; its trace shows the 100.
    srv = start_herald("--max-body", str(4 * MIB))
    channel = unique("ch")
    payload = tmp_path / "body"
    payload.write_bytes(b"p" * (MIB + MIB // 2 if how == "large-body" else 10))
    args = ["curl", "-sS", "-v", "--expect100-timeout", "30", "--max-time", "20",
            "--data-binary", f"@{payload}", f"{srv.base_url}/publish/{channel}"]
    if how == "explicit-header":
        args[1:1] = ["-H", "Expect: 100-continue"]
    done = subprocess.run(args, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    assert b"> Expect: 100-continue" in done.stderr, "curl did not ask (the probe needs it to)"
    assert b"< HTTP/1.1 100 Continue" in done.stderr, done.stderr[-2000:]
    assert done.stdout == f'{{"channel":"{channel}","receivers":0}}'.encode(), done.stdout
