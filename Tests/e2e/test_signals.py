"""SIGTERM/SIGINT drain: WebSockets closed with 1001, exit 0, listener gone."""

import signal
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed

from conftest import open_subscriber, unique


def wait_exit(proc, timeout):
    started = time.monotonic()
    try:
        code = proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        pytest.fail(f"herald still running {timeout}s after the signal")
    return code, time.monotonic() - started


def assert_refused(port):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_sigterm_closes_websockets_with_1001_and_exits_0(start_herald):
    srv = start_herald()
    clients = [open_subscriber(srv, channels=[unique("term")]) for _ in range(3)]
    try:
        srv.proc.send_signal(signal.SIGTERM)
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    ws.recv(timeout=5)
            assert info.value.rcvd is not None, f"no close frame from Herald: {info.value!r}"
            assert info.value.rcvd.code == 1001, f"close code {info.value.rcvd.code}, expected 1001"
        code, elapsed = wait_exit(srv.proc, 5)
        assert code == 0, f"herald exited {code} after SIGTERM; output:\n{srv.log()}"
        assert_refused(srv.port)
    finally:
        for ws in clients:
            ws.close()


def test_sigint_exits_0(start_herald):
    srv = start_herald()
    ws = open_subscriber(srv, channels=[unique("int")])
    try:
        srv.proc.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001, info.value
        code, _ = wait_exit(srv.proc, 5)
        assert code == 0, f"herald exited {code} after SIGINT; output:\n{srv.log()}"
        assert_refused(srv.port)
    finally:
        ws.close()


def test_sigterm_when_idle_exits_quickly(start_herald):
    srv = start_herald()
    srv.proc.send_signal(signal.SIGTERM)
    code, elapsed = wait_exit(srv.proc, 5)
    assert code == 0
    assert elapsed < 3, f"idle herald took {elapsed:.1f}s to exit"
    assert_refused(srv.port)


def test_request_in_flight_is_answered(start_herald):
    """A request whose body is still arriving when SIGTERM comes is answered, then Herald exits."""
    srv = start_herald()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        sock.sendall(b"POST /publish/drain HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.2)  # the request is now in flight on Herald's side
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        sock.sendall(b"world")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), f"in-flight request answered {data[:200]!r}"
    finally:
        sock.close()
    code, _ = wait_exit(srv.proc, 5)
    assert code == 0
