"""Flags and environment variables: --help, refused values, precedence, Redis URLs, size suffixes."""

import re
import socket

import pytest

from conftest import (
    REPO,
    assert_json_error,
    free_port,
    http,
    http_json,
    open_subscriber,
    publish,
    recv_json,
    run_herald,
    unique,
    wait_until,
    ws_connect,
)


def readme_config_table():
    """(flag, env) pairs from the Configuration table of the README (the contract)."""
    rows = []
    for line in (REPO / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*`(--[a-z-]+)`\s*\|\s*`(HERALD_[A-Z_]+)(=1)?`", line)
        if m:
            rows.append((m.group(1), m.group(2)))
    assert len(rows) >= 13, f"README configuration table not found or short: {rows}"
    return rows


def test_help_lists_every_flag():
    done = run_herald("--help")
    assert done.returncode == 0, f"--help exited {done.returncode}: {done.stderr}"
    text = done.stdout + done.stderr
    missing = [flag for flag, _ in readme_config_table() if flag not in text]
    assert missing == [], f"--help does not list {missing}:\n{text}"


@pytest.mark.parametrize("args, env, names", [
    (["--port", "70000"], {}, ["--port"]),
    (["--port", "abc"], {}, ["--port"]),
    (["--port", "0"], {}, ["--port"]),
    ([], {"HERALD_PORT": "0"}, ["HERALD_PORT", "--port"]),
    (["--redis", "http://x"], {}, ["--redis"]),
    ([], {"HERALD_REDIS_URL": "localhost:6379"}, ["HERALD_REDIS_URL", "--redis"]),
    (["--loops", "0"], {}, ["--loops"]),
    (["--loops", "257"], {}, ["--loops"]),
    ([], {"HERALD_LOOPS": "many"}, ["HERALD_LOOPS", "--loops"]),
    (["--max-body", "-5"], {}, ["--max-body"]),
    (["--max-body=-5"], {}, ["--max-body"]),
    ([], {"HERALD_MAX_BODY": "-5"}, ["HERALD_MAX_BODY", "--max-body"]),
    (["--max-header", "12q"], {}, ["--max-header"]),
    (["--max-message", "lots"], {}, ["--max-message"]),
    (["--header-timeout", "-1"], {}, ["--header-timeout"]),
    (["--log-level", "loud"], {}, ["--log-level"]),
], ids=lambda v: "" if not isinstance(v, (list, dict)) else (
    " ".join(v) if isinstance(v, list) else ",".join(f"{k}={x}" for k, x in v.items())))
def test_bad_value_refused(redis_server, args, env, names):
    base = ["--host", "127.0.0.1"]
    if "--redis" not in args and "HERALD_REDIS_URL" not in env:
        base += ["--redis", redis_server.url]
    if "--port" not in args and "HERALD_PORT" not in env:
        base += ["--port", str(free_port())]
    done = run_herald(*base, *args, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 2, f"{args} {env}: exit {done.returncode}, expected 2; output {output!r}"
    assert any(name.lower() in output.lower() for name in names), (
        f"{args} {env}: the message does not name {names}: {output!r}")


def test_unknown_flag_refused(redis_server):
    done = run_herald("--redis", redis_server.url, "--port", str(free_port()), "--no-such-flag")
    assert done.returncode != 0, "herald accepted an unknown flag"
    assert "--no-such-flag" in done.stdout + done.stderr


def listens(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_flag_wins_over_environment(start_herald):
    env_port, flag_port = free_port(), free_port()
    srv = start_herald(port=flag_port, env={"HERALD_PORT": str(env_port)})
    assert http("GET", f"http://127.0.0.1:{flag_port}/healthz")[0] == 200
    assert not listens(env_port), "Herald also listens on the port from HERALD_PORT"


def test_environment_used_without_flag(start_herald):
    env_port = free_port()
    srv = start_herald(port=env_port, port_flag=False,
                       env={"HERALD_PORT": str(env_port), "HERALD_MAX_BODY": "1k"})
    assert http("GET", srv.base_url + "/healthz")[0] == 200
    status, _, body = http("POST", srv.base_url + "/publish/x", b"a" * 1100)
    assert_json_error(status, body, 413, "payload_too_large", "HERALD_MAX_BODY=1k, 1100 bytes")


def test_size_suffixes(start_herald):
    srv = start_herald("--max-body", "1k", "--max-header", "1k")
    channel = unique("k")
    status, _, answer = http_json("POST", f"{srv.base_url}/publish/{channel}", b"a" * 1000)
    assert (status, answer) == (200, {"channel": channel, "receivers": 0})
    status, _, body = http("POST", f"{srv.base_url}/publish/{channel}", b"a" * 1100)
    assert_json_error(status, body, 413, "payload_too_large", "--max-body 1k, 1100 bytes")
    status, _, body = http("GET", srv.base_url + "/healthz", headers={"X-Pad": "p" * 2000})
    assert_json_error(status, body, 431, "headers_too_large", "--max-header 1k, 2 KB header")


def test_echo_endpoint_only_when_enabled(start_herald):
    plain = start_herald(echo=False)
    status, _, _ = http("GET", plain.base_url + "/echo")
    assert status == 404, f"/echo answered {status} without --echo"

    by_env = start_herald(echo=False, env={"HERALD_ECHO": "1"})
    ws = ws_connect(by_env.ws_url + "/echo")
    try:
        ws.send("round trip ✓")
        assert ws.recv(timeout=5) == "round trip ✓"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xff"
    finally:
        ws.close()


def client_list(redis, db):
    """Herald's connections in CLIENT LIST (redis-cli's own connection left out)."""
    rows = []
    for line in redis.cli("CLIENT", "LIST", db=db).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("cmd") == "client|list":
            continue
        rows.append(fields)
    return rows


def check_publish_and_subscribe(srv):
    channel = unique("auth")
    ws = open_subscriber(srv, channels=[channel])
    try:
        assert publish(srv, channel, "through auth") == {"channel": channel, "receivers": 1}
        assert recv_json(ws) == {"type": "message", "channel": channel, "data": "through auth"}
    finally:
        ws.close()


def test_redis_url_with_password_and_db_from_environment(start_redis, start_herald):
    redis = start_redis(password="secret")
    srv = start_herald(redis_flag=False,
                       env={"HERALD_REDIS_URL": f"redis://:secret@127.0.0.1:{redis.port}/3"})
    check_publish_and_subscribe(srv)
    herald_links = client_list(redis, db=3)
    assert len(herald_links) >= 2, f"expected Herald's links in CLIENT LIST: {herald_links}"
    wrong_db = [(c.get("id"), c.get("db"), c.get("cmd")) for c in herald_links if c.get("db") != "3"]
    assert wrong_db == [], f"Herald connections not on db 3: {wrong_db}"


def test_redis_url_with_user_and_password(start_redis, start_herald):
    redis = start_redis(password="adminpw")
    redis.cli("ACL", "SETUSER", "herald", "on", ">heraldpw", "~*", "&*", "+@all")
    srv = start_herald(redis_url=f"redis://herald:heraldpw@127.0.0.1:{redis.port}")
    check_publish_and_subscribe(srv)
    users = {c.get("user") for c in client_list(redis, db=None)}
    assert "herald" in users, f"no connection authenticated as 'herald': {users}"


def test_wrong_password_is_not_ready(start_redis, start_herald):
    redis = start_redis(password="right")
    srv = start_herald(redis_url=f"redis://:wrong@127.0.0.1:{redis.port}", wait_ready=False)
    wait_until(lambda: srv.proc.poll() is not None
               or http("GET", srv.base_url + "/healthz", timeout=2)[0] == 200,
               timeout=15, what="Herald to either refuse to start or answer /healthz")
    if srv.proc.poll() is not None:
        assert srv.proc.returncode != 0, "Herald exited 0 with a wrong Redis password"
        return
    status, _, body = http_json("GET", srv.base_url + "/readyz")
    assert status == 503 and body.get("status") == "not_ready", (status, body)
    status, _, body = http("POST", srv.base_url + "/publish/x", b"nope")
    assert_json_error(status, body, 503, "redis_unavailable", "publish with a wrong password")


def readme_config_defaults():
    """{flag: (variable, default cell with backticks removed)} from the README's table."""
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*`(--[a-z-]+)`\s*\|\s*`(HERALD_[A-Z_]+)(=1)?`\s*\|([^|]*)\|", line)
        if m:
            assert m.group(1) not in rows, f"README lists {m.group(1)} twice"
            rows[m.group(1)] = (m.group(2), m.group(4).strip().strip("`"))
    return rows


def test_help_lists_each_option_once_with_the_readme_default():
    done = run_herald("--help")
    assert done.returncode == 0, f"--help exited {done.returncode}: {done.stderr}"
    entries = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  --")]
    flat = " ".join(done.stdout.split())
    readme = readme_config_defaults()
    assert sorted(set(entries) - {"--help"}) == sorted(readme), "--help entries vs README rows"
    assert len(entries) == len(set(entries)), f"an option is listed twice: {entries}"
    for flag, (variable, default) in readme.items():
        # The whole name: HERALD_COMPRESSION also begins HERALD_COMPRESSION_MIN.
        count = len(re.findall(re.escape(variable) + r"(?![A-Z_])", flat))
        assert count == 1, f"{variable} appears {count} times in --help"
        if default not in ("none", "off"):
            assert f"[{variable}, default {default}]" in flat, f"--help does not show {flag}'s default {default!r}"


def test_usage_errors_exit_64_and_name_the_argument():
    done = run_herald("--port")
    assert done.returncode == 64 and "--port" in done.stderr, (done.returncode, done.stderr)
    done = run_herald("healthcheck", "extra")
    assert done.returncode == 64 and "extra" in done.stderr, (done.returncode, done.stderr)
