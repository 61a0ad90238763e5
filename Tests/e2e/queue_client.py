"""What the queue tests say to Herald: paths, pushes and pops over HTTP, worker URLs, and what
they read back from Redis. Shared by test_queues.py and test_hostile_queues.py."""

import urllib.parse

from conftest import http, http_json


def qpath(name):
    return f"/queues/{urllib.parse.quote(name, safe='')}"


def spath(name):
    return f"/streams/{urllib.parse.quote(name, safe='')}"


def bearer(credential):
    return {"Authorization": f"Bearer {credential}"} if credential else {}


def push(herald, name, item, credential=None):
    """POST /queues/{name}; asserts the answer's shape and returns the queue's length."""
    status, _, answer = http_json("POST", herald.base_url + qpath(name), item, bearer(credential))
    assert status == 200, f"POST {qpath(name)} answered {status} {answer}"
    assert set(answer) == {"queue", "length"} and answer["queue"] == name, answer
    return answer["length"]


def pop(herald, name, wait=None, credential=None, timeout=15.0):
    """GET /queues/{name}[?wait=S] -> (status, headers, body)."""
    url = herald.base_url + qpath(name) + (f"?wait={wait}" if wait is not None else "")
    return http("GET", url, headers=bearer(credential), timeout=timeout)


def worker_url(herald, name, credential=None):
    query = {"queue": name}
    if credential:
        query["token"] = credential
    return f"{herald.ws_url}/subscribe?{urllib.parse.urlencode(query)}"


def blocked(redis, command):
    """Redis connections blocked right now in `command` (flags=b, cmd=<command>)."""
    lines = redis.cli("CLIENT", "LIST").splitlines()
    return sum(1 for line in lines if " flags=b " in f" {line} " and f" cmd={command} " in f" {line} ")


def lrange(redis, key):
    out = redis.cli("LRANGE", key, 0, -1)
    return [] if not out.strip() else out.splitlines()
