"""HTTP/1.1 behaviour seen on the wire: keep-alive, pipelining, chunked bodies, limits, errors."""

import json
import re
import socket
import threading
import time

import pytest

from conftest import (
    assert_json_error,
    count_complete_responses,
    http,
    http_json,
    open_subscriber,
    parse_responses,
    raw_exchange,
    read_available,
    recv_json,
    unique,
)


@pytest.fixture(autouse=True)
def still_healthy(herald):
    """Whatever a test sent, the shared Herald still answers afterwards."""
    yield
    assert herald.proc.poll() is None, f"herald exited with {herald.proc.returncode}"
    status, _, body = http("GET", herald.base_url + "/healthz", timeout=5)
    assert (status, json.loads(body)) == (200, {"status": "ok"})


def one_response(raw, context, head=False):
    responses, rest = parse_responses(raw, head_requests=(0,) if head else ())
    assert responses, f"{context}: no complete HTTP response in {bytes(raw)[:500]!r}"
    return responses[0]


def test_healthz_and_readyz(herald):
    status, headers, body = http_json("GET", herald.base_url + "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    assert headers.get("Content-Type", "").startswith("application/json")
    status, _, body = http_json("GET", herald.base_url + "/readyz")
    assert (status, body) == (200, {"status": "ready"})


def test_metrics_is_prometheus_text(herald):
    status, headers, body = http("GET", herald.base_url + "/metrics")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/plain"), headers.get("Content-Type")
    samples = 0
    sample_re = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?\s+\S+(\s+-?\d+)?$")
    for line in body.decode("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        assert sample_re.match(line), f"not a Prometheus sample line: {line!r}"
        samples += 1
    assert samples > 0, body[:500]


def test_keep_alive_two_requests_on_one_connection(herald):
    with socket.create_connection(("127.0.0.1", herald.port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            raw, closed = read_available(sock, 3, count_complete_responses(1))
            resp = one_response(raw, "keep-alive request")
            assert resp.status == 200 and resp.json() == {"status": "ok"}
            assert not closed, "server closed a keep-alive connection"
            assert "close" not in resp.headers.get("connection", "").lower()


def test_pipelined_requests_answered_in_order(herald):
    channels = [unique("pipe") for _ in range(3)]
    ws = open_subscriber(herald, channels=[channels[1]])
    try:
        request = b""
        for i, channel in enumerate(channels):
            body = f"message {i}".encode()
            request += (f"POST /publish/{channel} HTTP/1.1\r\nHost: x\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        request += b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        raw = raw_exchange(herald.port, request, 5, until=count_complete_responses(4))
        responses, rest = parse_responses(raw)
        assert len(responses) == 4, raw
        for resp, channel in zip(responses, channels):
            assert resp.status == 200, resp
            assert resp.json() == {"channel": channel,
                                   "receivers": 1 if channel == channels[1] else 0}
        assert responses[3].status == 200 and responses[3].json() == {"status": "ok"}
        assert rest == b""
        assert recv_json(ws) == {"type": "message", "channel": channels[1], "data": "message 1"}
    finally:
        ws.close()


def test_pipelined_requests_split_at_odd_boundaries(herald):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    with socket.create_connection(("127.0.0.1", herald.port), timeout=5) as sock:
        for i in range(0, len(request), 7):  # 7-byte pieces cut through lines and CRLFs
            sock.sendall(request[i:i + 7])
            time.sleep(0.002)
        raw, _ = read_available(sock, 3, count_complete_responses(3))
    responses, _ = parse_responses(raw)
    assert [r.status for r in responses] == [200, 200, 200], raw


def test_chunked_request_body(herald):
    channel = unique("chunked")
    ws = open_subscriber(herald, channels=[channel])
    try:
        request = (f"POST /publish/{channel} HTTP/1.1\r\nHost: x\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n").encode()
        raw = raw_exchange(herald.port, request, 5, until=count_complete_responses(1))
        resp = one_response(raw, "chunked POST")
        assert resp.status == 200, raw
        assert resp.json() == {"channel": channel, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": "hello world"}
    finally:
        ws.close()


def test_malformed_chunked_body_is_400(herald):
    request = (b"POST /publish/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"zz\r\nhello\r\n0\r\n\r\n")
    raw = raw_exchange(herald.port, request, 5, until=count_complete_responses(1))
    resp = one_response(raw, "bad chunk size")
    assert_json_error(resp.status, resp.body, 400, "bad_request", "chunk size 'zz'")


def test_head_healthz_has_length_but_no_body(herald):
    # HEAD then GET on one connection: the GET's status line must follow the HEAD's headers
    # immediately, which proves the HEAD answer carried no body.
    request = (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = raw_exchange(herald.port, request, 3,
                       until=count_complete_responses(2, head_requests=(0,)))
    responses, rest = parse_responses(raw, head_requests=(0,))
    assert len(responses) == 2, raw
    head, get = responses
    assert head.status == 200
    assert "content-length" in head.headers, head.headers
    assert int(head.headers["content-length"]) == len(get.body) > 0
    assert get.status == 200 and get.json() == {"status": "ok"}
    assert rest == b""


@pytest.mark.parametrize("path", ["/", "/readyz", "/metrics"])
def test_head_answered_for_get_routes(herald, path):
    status, headers, body = http("HEAD", herald.base_url + path)
    assert status == 200, (path, status)
    assert body == b""


def test_connection_close_closes_after_answer(herald):
    raw = raw_exchange(herald.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5)
    resp = one_response(raw, "Connection: close")
    assert resp.status == 200 and resp.json() == {"status": "ok"}
    assert raw.closed, "server kept the connection open after Connection: close"
    assert "close" in resp.headers.get("connection", "").lower(), resp.headers


def test_http_1_0(herald):
    raw = raw_exchange(herald.port, b"GET /healthz HTTP/1.0\r\n\r\n", 5)
    resp = one_response(raw, "HTTP/1.0 request")
    assert resp.status == 200 and resp.json() == {"status": "ok"}
    assert resp.version in ("HTTP/1.0", "HTTP/1.1"), resp.version
    assert raw.closed, "an HTTP/1.0 request without keep-alive must be closed after the answer"


def test_http_1_0_post(herald):
    channel = unique("h10")
    raw = raw_exchange(herald.port, (f"POST /publish/{channel} HTTP/1.0\r\nContent-Length: 2\r\n"
                                     "\r\nhi").encode(), 5)
    resp = one_response(raw, "HTTP/1.0 POST")
    assert resp.status == 200 and resp.json() == {"channel": channel, "receivers": 0}


@pytest.mark.parametrize("method, path", [("GET", "/nope"), ("GET", "/nope/deeper.html"),
                                          ("GET", "/publishx"), ("HEAD", "/nope")])
def test_unknown_route_is_404_json(herald, method, path):
    status, headers, body = http(method, herald.base_url + path)
    if method == "HEAD":
        assert status == 404 and body == b"", (status, body)
        return
    assert_json_error(status, body, 404, "not_found", f"{method} {path}")
    assert headers.get("Content-Type", "").startswith("application/json")


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/publish/x", {"POST"}),
    ("GET", "/publish", {"POST"}),
    ("DELETE", "/healthz", {"GET", "HEAD"}),
    ("POST", "/healthz", {"GET", "HEAD"}),
    ("PUT", "/readyz", {"GET", "HEAD"}),
    ("POST", "/subscribe", {"GET"}),
])
def test_wrong_method_is_405_with_allow(herald, method, path, allowed):
    status, headers, body = http(method, herald.base_url + path)
    assert_json_error(status, body, 405, "method_not_allowed", f"{method} {path}")
    allow = headers.get("Allow")
    assert allow, f"{method} {path}: 405 without an Allow header"
    listed = {m.strip().upper() for m in allow.split(",")}
    assert allowed <= listed, f"{method} {path}: Allow {allow!r} should list {allowed}"
    assert method not in listed, f"{method} {path}: Allow {allow!r} lists the refused method"


@pytest.mark.parametrize("request_bytes", [
    b"BLAH\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"\x00\x01\x02\x03\r\n\r\n",
    b"POST /publish/x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /publish/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
], ids=["garbage", "no-target", "no-version", "extra-token", "header-without-colon", "binary",
        "bad-content-length", "conflicting-content-length"])
def test_malformed_request_is_400(herald, request_bytes):
    raw = raw_exchange(herald.port, request_bytes, 5, until=count_complete_responses(1))
    resp = one_response(raw, f"malformed request {request_bytes!r}")
    assert_json_error(resp.status, resp.body, 400, "bad_request", repr(request_bytes))


def test_header_block_too_large_is_431(herald):
    request = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20480 + b"\r\n\r\n")
    raw = raw_exchange(herald.port, request, 5, until=count_complete_responses(1))
    resp = one_response(raw, "20 KiB header block")
    assert_json_error(resp.status, resp.body, 431, "headers_too_large", "20 KiB header block")


def test_many_small_headers_too_large_is_431(herald):
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(400))  # ~24 KiB
    raw = raw_exchange(herald.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n", 5,
                       until=count_complete_responses(1))
    resp = one_response(raw, "400 headers")
    assert_json_error(resp.status, resp.body, 431, "headers_too_large", "400 headers of 60 bytes")


def send_and_read(port, head: bytes, body_pieces, timeout=10):
    """Send `head` then the body in a background thread while reading the answer, so an early
    answer (and close) by the server is seen even if the upload is cut short."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def upload():
        try:
            sock.sendall(head)
            for piece in body_pieces:
                sock.sendall(piece)
        except OSError:
            pass  # the server may stop reading once it has answered

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    try:
        raw, _ = read_available(sock, timeout, count_complete_responses(1), total_timeout=timeout)
    finally:
        sender.join(timeout)
        sock.close()
    return raw


def test_body_over_default_limit_is_413(herald):
    size = 2 * 1024 * 1024
    head = f"POST /publish/big HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
    raw = send_and_read(herald.port, head, [b"x" * 65536] * (size // 65536))
    resp = one_response(raw, "2 MiB Content-Length body")
    assert_json_error(resp.status, resp.body, 413, "payload_too_large", "2 MiB body")


def test_chunked_body_over_limit_is_413(herald):
    head = b"POST /publish/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"10000\r\n" + b"y" * 65536 + b"\r\n"
    raw = send_and_read(herald.port, head, [chunk] * 32 + [b"0\r\n\r\n"])
    resp = one_response(raw, "2 MiB chunked body")
    assert_json_error(resp.status, resp.body, 413, "payload_too_large", "2 MiB chunked body")


def test_body_at_the_limit_is_accepted(herald):
    channel = unique("max")
    status, _, answer = http_json("POST", f"{herald.base_url}/publish/{channel}",
                                  b"z" * (1024 * 1024))
    assert (status, answer) == (200, {"channel": channel, "receivers": 0})


def test_unsupported_transfer_encoding_is_501(herald):
    request = (b"POST /publish/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
               b"\x1f\x8b\x08\x00")
    raw = raw_exchange(herald.port, request, 5, until=count_complete_responses(1))
    resp = one_response(raw, "Transfer-Encoding: gzip")
    assert_json_error(resp.status, resp.body, 501, "not_implemented", "Transfer-Encoding: gzip")


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9"])
def test_unsupported_http_version_is_505(herald, version):
    raw = raw_exchange(herald.port, b"GET /healthz " + version + b"\r\nHost: x\r\n\r\n", 5,
                       until=count_complete_responses(1))
    resp = one_response(raw, version.decode())
    assert_json_error(resp.status, resp.body, 505, "http_version_not_supported", version.decode())


@pytest.fixture(scope="module")
def impatient_herald(redis_server):
    from conftest import launch_herald
    server = launch_herald("--header-timeout", "1", redis_url=redis_server.url)
    yield server
    server.stop()


def test_slowloris_partial_header_gets_408(impatient_herald):
    with socket.create_connection(("127.0.0.1", impatient_herald.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        raw, closed = read_available(sock, 6, total_timeout=6)
        elapsed = time.monotonic() - started
    resp = one_response(raw, "partial header block")
    assert_json_error(resp.status, resp.body, 408, "request_timeout", "partial header block")
    assert closed, "connection still open after the 408"
    assert 0.5 <= elapsed <= 4, f"answered after {elapsed:.2f}s with --header-timeout 1"


def test_slowloris_trickle_is_cut_by_the_deadline(impatient_herald):
    """One header byte every 0.2 s keeps the connection busy but must not extend the deadline."""
    with socket.create_connection(("127.0.0.1", impatient_herald.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        trickle = b"X-Slow: " + b"a" * 100
        raw = b""
        closed = False
        for byte in trickle:
            if time.monotonic() - started > 6:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            chunk, closed = read_available(sock, 0.2, total_timeout=0.2)
            raw += chunk
            if closed or raw:
                break
        if not closed:
            more, closed = read_available(sock, 3, total_timeout=3)
            raw += more
        elapsed = time.monotonic() - started
    assert closed, f"connection still open after {elapsed:.1f}s of trickling"
    assert elapsed <= 4, f"trickling client kept for {elapsed:.2f}s with --header-timeout 1"
    if raw:
        resp = one_response(raw, "trickled header")
        assert resp.status == 408, raw
