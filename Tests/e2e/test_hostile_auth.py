"""Hostile-client probes of issue 11 on tokens, close codes and browser origins (item 13 and
three decisions), grouped so the next security review starts from them:

- item 13: a JWT naming `crit` extensions, and tokens re-spelled in non-canonical base64url;
- decision a: close codes a client may send (the IANA registry: 1012-1014 are valid);
- decision b: with `--allowed-origins` set, an unlisted Origin is refused on every broker
  endpoint (not only hidden by CORS), auth on or off;
- decision c: without `--allowed-origins`, only Herald's own origin and loopback pages are
  allowed (not any origin), and a queue pop is never made by a page's link, image or form.

JWTs are signed here with hmac/hashlib/base64 only (no JWT package)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time
import urllib.parse

import pytest

from conftest import (
    RawWebSocket,
    assert_json_error,
    http,
    launch_herald,
    parse_responses,
    raw_exchange,
    unique,
    ws_handshake_request,
)

SECRET = b"hostile-auth-secret-0123456789abcdef"  # 36 bytes
API_KEY = "hostile-auth-key-0123456789"
APP_ORIGIN = "https://app.example"
EVIL_ORIGIN = "https://evil.example"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def make_jwt(claims: dict, header: dict | None = None) -> str:
    header = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64url(compact(header))}.{b64url(compact(claims))}"
    signature = hmac.new(SECRET, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def everything(**extra):
    return {"sub": "prober", "exp": int(time.time()) + 3600, "publish": ["*"], "subscribe": ["*"], **extra}


@pytest.fixture(scope="module")
def jwt_herald(redis_server):
    """Tokens only (no API keys), so a refused token's 401 says why."""
    server = launch_herald("--jwt-secret", SECRET.decode(), redis_url=redis_server.url)
    yield server
    server.stop()


def publish_with(herald, token, channel=None):
    channel = channel or unique("tok")
    return http("POST", f"{herald.base_url}/publish/{channel}", b"m", {"Authorization": f"Bearer {token}"})


# =========================================================================== item 13: JWT

@pytest.mark.parametrize("crit", [["x-ext"], [], "exp", None, ["b64"]],
                         ids=["unknown-name", "empty", "not-a-list", "null", "b64"])
def test_jwt_with_crit_header_is_refused(jwt_herald, crit):
    """RFC 7515 §4.1.11: Herald understands no extension, so a validly signed token whose header
    has `crit` (whatever it lists, or if malformed) is refused with a 401 that names crit."""
    header = {"alg": "HS256", "typ": "JWT", "crit": crit}
    if crit == ["x-ext"]:
        header["x-ext"] = True
    token = make_jwt(everything(), header)
    status, hdrs, data = publish_with(jwt_herald, token)
    body = assert_json_error(status, data, 401, "unauthorized", f"token with crit {crit!r}")
    assert "crit" in body["message"], f"the 401 does not say why: {body}"
    # The same token in token= (where browsers put it) is refused alike.
    q = urllib.parse.urlencode({"token": token})
    status, _, data = http("GET", f"{jwt_herald.base_url}/streams/{unique('s')}?{q}")
    assert_json_error(status, data, 401, "unauthorized", f"token= with crit {crit!r}")


def test_jwt_without_crit_still_works(jwt_herald):
    status, _, data = publish_with(jwt_herald, make_jwt(everything()))
    assert status == 200, data


def test_signature_twin_in_unused_bits_is_refused(jwt_herald):
    """A 32-byte HMAC is 43 base64url characters with 2 unused bits in the last one: the three
    other values of those bits decode to the same signature, and must not verify."""
    token = make_jwt(everything())
    assert publish_with(jwt_herald, token)[0] == 200
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    assert last & 3 == 0, "the canonical spelling has the unused bits zero"
    signature = token.rsplit(".", 1)[1]
    for low in (1, 2, 3):
        twin = token[:-1] + alphabet[last | low]
        twin_sig = twin.rsplit(".", 1)[1]
        assert base64.urlsafe_b64decode(twin_sig + "=") == base64.urlsafe_b64decode(signature + "="), \
            "the twin decodes to the same bytes (lenient decoders accept it)"
        status, _, data = publish_with(jwt_herald, twin)
        assert_json_error(status, data, 401, "unauthorized", f"signature twin ending in {twin[-1]}")


def test_non_canonical_spellings_are_refused(jwt_herald):
    # Find a token whose signature uses `-` or `_`, so the standard alphabet spells it otherwise.
    for n in range(200):
        token = make_jwt(everything(n=n))
        if "-" in token.rsplit(".", 1)[1] or "_" in token.rsplit(".", 1)[1]:
            break
    head, payload, sig = token.split(".")
    spellings = {
        "standard alphabet": f"{head}.{payload}.{sig.replace('-', '+').replace('_', '/')}",
        "padding": f"{token}=",
        "padded signature": f"{head}.{payload}.{sig}" + "=" * (-len(sig) % 4),
        "space inside": f"{head}.{payload}.{sig[:10]} {sig[10:]}",
    }
    for what, spelled in spellings.items():
        assert spelled != token, what
        status, _, data = publish_with(jwt_herald, spelled)
        assert_json_error(status, data, 401, "unauthorized", what)


# =========================================================================== decision a: close codes

VALID_CLOSE = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
INVALID_CLOSE = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]


def close_answer(herald, code):
    """Send a close frame with `code` on a fresh subscription; return the code Herald answers."""
    ws = RawWebSocket(herald.port, f"/subscribe?channel={unique('cc')}")
    try:
        ws.send_frame(0x8, struct.pack("!H", code) + b"bye")
        answer, _, _ = ws.recv_until_close()
        assert ws.wait_eof(), f"close {code}: connection left open"
        return answer
    finally:
        ws.close()


@pytest.mark.parametrize("code", VALID_CLOSE)
def test_valid_client_close_code_is_echoed(herald, code):
    """Registered codes (1012 Service Restart, 1013 Try Again Later, 1014 Bad Gateway included)
    and application codes close cleanly, Herald echoing the code."""
    assert close_answer(herald, code) == code


@pytest.mark.parametrize("code", INVALID_CLOSE)
def test_invalid_client_close_code_is_a_protocol_error(herald, code):
    assert close_answer(herald, code) == 1002


# =========================================================================== decisions b and c: origins

def call(herald, method, path, origin=None, body=None, headers=None):
    h = dict(headers or {})
    if origin is not None:
        h["Origin"] = origin
    return http(method, herald.base_url + path, body, h)


def push(herald, queue, item, headers=None):
    status, _, data = http("POST", f"{herald.base_url}/queues/{queue}", item, headers)
    assert status == 200, data


def pop(herald, queue, headers=None):
    """Pop without an Origin (a backend); the item, or None."""
    status, _, data = http("GET", f"{herald.base_url}/queues/{queue}", None, headers)
    assert status in (200, 204), data
    return data if status == 200 else None


def broker_calls(name):
    """Every broker endpoint over HTTP (method, path, body, headers); `name` is the queue."""
    return [
        ("POST", f"/publish/{name}", b"m", {}),
        ("POST", "/publish", compact({"channel": name, "message": "m"}), {"Content-Type": "application/json"}),
        ("POST", f"/streams/{name}-s", b"v", {}),
        ("GET", f"/streams/{name}-s", None, {}),
        ("HEAD", f"/streams/{name}-s", None, {}),
        ("POST", f"/queues/{name}", b"job", {}),
        ("GET", f"/queues/{name}", None, {}),
        ("GET", f"/subscribe?channel={name}", None, {"Accept": "text/event-stream"}),
        ("GET", f"/events?channel={name}", None, {}),
    ]


def upgrade_status(herald, origin, host=None):
    host = host or f"127.0.0.1:{herald.port}"
    extra = f"Origin: {origin}\r\n" if origin else ""
    request, _ = ws_handshake_request(f"/subscribe?channel={unique('o')}", host=host, extra=extra)
    raw = raw_exchange(herald.port, request, read_timeout=2.0, until=lambda b: b"\r\n\r\n" in b)
    responses, _ = parse_responses(raw)
    assert responses, f"no answer to the upgrade from {origin}: {raw!r}"
    return responses[0].status


def assert_refused_everywhere(herald, origin, headers=None, context=""):
    """Every broker endpoint answers 403 forbidden to `origin`, without CORS headers, and the
    refused calls changed nothing (a queue item pushed first is still there)."""
    queue = unique("q")
    push(herald, queue, b"keep-me", headers)
    for method, path, body, extra in broker_calls(queue):
        status, hdrs, data = call(herald, method, path, origin, body, {**extra, **(headers or {})})
        what = f"{context}: {method} {path} from {origin}"
        if method == "HEAD":
            assert status == 403, f"{what} answered {status}"
        else:
            assert_json_error(status, data, 403, "forbidden", what)
        assert hdrs.get("Access-Control-Allow-Origin") is None, f"{what}: {dict(hdrs)}"
    assert pop(herald, queue, headers) == b"keep-me", f"{context}: a refused pop took the item"
    assert pop(herald, queue, headers) is None, f"{context}: a refused push added an item"
    assert upgrade_status(herald, origin) == 403, f"{context}: WebSocket from {origin}"
    status, hdrs, _ = call(herald, "OPTIONS", f"/publish/{queue}", origin,
                           headers={"Access-Control-Request-Method": "POST"})
    assert status == 403 and hdrs.get("Access-Control-Allow-Origin") is None, f"{context}: preflight {status}"


def assert_served(herald, origin, headers=None, context="", host=None):
    """Every broker endpoint serves `origin`, naming it in Access-Control-Allow-Origin."""
    queue = unique("q")
    extra_host = {"Host": host} if host else {}
    for method, path, body, extra in broker_calls(queue):
        if "subscribe" in path or "events" in path:
            continue  # an event stream stays open; the WebSocket upgrade below stands for them
        status, hdrs, data = call(herald, method, path, origin, body, {**extra, **extra_host, **(headers or {})})
        what = f"{context}: {method} {path} from {origin}"
        assert status in (200, 204), f"{what} answered {status} {data[:200]!r}"
        if origin is not None:
            assert hdrs.get("Access-Control-Allow-Origin") == origin, f"{what}: {dict(hdrs)}"
    if origin is not None:
        assert upgrade_status(herald, origin, host) == 101, f"{context}: WebSocket from {origin}"


OPS_PATHS = ["/healthz", "/readyz", "/metrics", "/", "/herald.js"]


def assert_ops_open(herald, origin):
    """Health, metrics and static files are not broker endpoints: any origin gets them (the
    page just cannot read them unless its origin is allowed)."""
    for path in OPS_PATHS:
        status, _, _ = call(herald, "GET", path, origin)
        assert status == 200, f"GET {path} from {origin} answered {status}"


# --------------------------------------------------------------------------- decision b: a list is set

@pytest.fixture(scope="module")
def listed_herald(redis_server):
    """Auth off, an Origin allow-list."""
    server = launch_herald("--allowed-origins", f"{APP_ORIGIN},https://b.example", redis_url=redis_server.url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def listed_auth_herald(redis_server):
    """Auth on (an API key), the same allow-list."""
    server = launch_herald("--api-keys", API_KEY, "--allowed-origins", APP_ORIGIN, redis_url=redis_server.url)
    yield server
    server.stop()


@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "https://app.example.evil.example", "http://app.example",
                                    "null", "https://APP.example"])
def test_listed_auth_off_refuses_unlisted_origin_on_every_broker_endpoint(listed_herald, origin):
    """CORS only hides the answer: a simple POST or GET from another site still runs. So an
    unlisted Origin is refused before anything reaches Redis."""
    assert_refused_everywhere(listed_herald, origin, context="auth off, list set")
    assert_ops_open(listed_herald, origin)


def test_listed_auth_off_serves_listed_origins_and_non_browsers(listed_herald):
    assert_served(listed_herald, APP_ORIGIN, context="auth off, listed")
    assert_served(listed_herald, "https://b.example", context="auth off, listed")
    assert_served(listed_herald, None, context="auth off, no Origin (curl, backends)")


def test_listed_auth_on_refuses_unlisted_origin_even_with_a_valid_key(listed_auth_herald):
    key = {"Authorization": f"Bearer {API_KEY}"}
    assert_refused_everywhere(listed_auth_herald, EVIL_ORIGIN, key, context="auth on, list set")
    assert_served(listed_auth_herald, APP_ORIGIN, key, context="auth on, listed")
    assert_served(listed_auth_herald, None, key, context="auth on, no Origin")


def test_listed_list_is_the_whole_truth_even_for_herald_own_origin(listed_herald):
    """With a list, Herald's own origin is allowed only when listed: the Host header a page
    sends is the page's to choose under DNS rebinding, so it must not widen the list."""
    own = f"http://127.0.0.1:{listed_herald.port}"
    status, _, data = call(listed_herald, "POST", f"/publish/{unique('own')}", own)
    assert_json_error(status, data, 403, "forbidden", "own origin, unlisted")


# --------------------------------------------------------------------------- decision c: no list

LOOPBACK_PAGES = ["http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8081", "https://localhost",
                  "http://LOCALHOST:4200"]


@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "http://localhost.evil.example", "http://127.0.0.1.evil.example",
                                    "http://10.1.2.3:8080", "null", "file://"])
def test_default_refuses_pages_of_other_sites(herald, origin):
    """No list: a page from another site (the developer browsing the web while Herald runs on
    their machine) can neither pop, push, publish, read nor subscribe."""
    assert_refused_everywhere(herald, origin, context="default")
    assert_ops_open(herald, origin)


@pytest.mark.parametrize("origin", LOOPBACK_PAGES)
def test_default_serves_loopback_pages(herald, origin):
    """Local development: a dev server on another port of this machine talks to Herald."""
    assert_served(herald, origin, context="default, loopback page")


def test_default_serves_herald_own_origin(herald):
    """The demo page served by Herald itself, reached under any host name (a container): its
    Origin names the host and port its Host header names."""
    host = f"herald.internal:{herald.port}"
    assert_served(herald, f"http://{host}", context="default, own origin", host=host)
    # The same Origin on a request for another host is another site.
    status, _, data = call(herald, "POST", f"/publish/{unique('own')}", f"http://{host}")
    assert_json_error(status, data, 403, "forbidden", "a foreign host's origin")


def test_star_still_allows_any_origin(start_herald):
    star = start_herald("--allowed-origins", "*")
    assert_served(star, EVIL_ORIGIN, context="*")


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_pop_from_a_link_image_or_form_is_refused(start_herald, herald, site):
    """A cross-site `<img src=/queues/x>` or link is a GET with no Origin header (only CORS
    requests carry one), so the Origin check cannot see it; browsers mark it with
    `Sec-Fetch-Site`. A pop is a state change, so that GET is refused, list or not."""
    star = start_herald("--allowed-origins", "*")
    for server in (herald, star):
        queue = unique("q")
        push(server, queue, b"keep-me")
        status, _, data = call(server, "GET", f"/queues/{queue}",
                               headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"})
        assert_json_error(status, data, 403, "forbidden", f"{server.args[-1]}: no-cors pop, {site}")
        assert pop(server, queue) == b"keep-me"


def test_pop_from_the_same_origin_or_typed_url_still_works(herald):
    """A page's own fetch() (`same-origin`) and a URL typed in the address bar (`none`) pop."""
    for site in ("same-origin", "none"):
        queue = unique("q")
        push(herald, queue, b"item")
        status, _, data = call(herald, "GET", f"/queues/{queue}", headers={"Sec-Fetch-Site": site})
        assert status == 200 and data == b"item", f"{site}: {status} {data!r}"
    # A CORS fetch from an allowed page carries an Origin and is judged by it.
    queue = unique("q")
    push(herald, queue, b"item")
    status, hdrs, data = call(herald, "GET", f"/queues/{queue}", "http://localhost:5173",
                              headers={"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"})
    assert status == 200 and data == b"item", f"{status} {data!r}"
    assert hdrs.get("Access-Control-Allow-Origin") == "http://localhost:5173"
