"""Static files from --public: content types, ETag revalidation, 404s, and no path traversal."""

import json
import os

import pytest

from conftest import (
    PUBLIC_DIR,
    REPO,
    assert_json_error,
    count_complete_responses,
    http,
    launch_herald,
    parse_responses,
    raw_exchange,
)

SECRET = "top-secret-" + os.urandom(6).hex()


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_server):
    """A private Herald serving a folder made here, with a secret file beside that folder."""
    root = tmp_path_factory.mktemp("static")
    public = root / "public"
    (public / "sub").mkdir(parents=True)
    (public / "index.html").write_text("<!doctype html><title>t</title><p>index</p>\n")
    (public / "style.css").write_text("body { color: #333; }\n")
    (public / "app.js").write_text("console.log('hi');\n")
    (public / "sub" / "page.html").write_text("<p>nested</p>\n")
    (root / "secret.txt").write_text(SECRET + "\n")
    server = launch_herald(redis_url=redis_server.url, public=public)
    server.public = public
    yield server
    server.stop()


def test_root_serves_repo_index_html(herald):
    status, headers, body = http("GET", herald.base_url + "/")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/html"), headers.get("Content-Type")
    assert body == (PUBLIC_DIR / "index.html").read_bytes()


def test_root_and_index_html_are_the_same(site):
    status, headers, body = http("GET", site.base_url + "/")
    assert status == 200 and body == (site.public / "index.html").read_bytes()
    assert headers.get("Content-Type", "").startswith("text/html")
    status, _, body2 = http("GET", site.base_url + "/index.html")
    assert status == 200 and body2 == body


@pytest.mark.parametrize("path, types", [
    ("/style.css", ("text/css",)),
    ("/app.js", ("text/javascript", "application/javascript")),
    ("/sub/page.html", ("text/html",)),
])
def test_content_types(site, path, types):
    status, headers, body = http("GET", site.base_url + path)
    assert status == 200, (path, status, body[:200])
    content_type = headers.get("Content-Type", "")
    assert content_type.split(";")[0].strip() in types, f"{path}: Content-Type {content_type!r}"
    assert body == (site.public / path.lstrip("/")).read_bytes()
    assert int(headers.get("Content-Length")) == len(body)


def test_head_static_file(site):
    status, headers, body = http("HEAD", site.base_url + "/style.css")
    assert status == 200 and body == b""
    assert int(headers.get("Content-Length")) == (site.public / "style.css").stat().st_size


def test_etag_and_if_none_match(site):
    status, headers, body = http("GET", site.base_url + "/app.js")
    assert status == 200
    etag = headers.get("ETag")
    assert etag, "no ETag header"

    status, headers304, body304 = http("GET", site.base_url + "/app.js",
                                       headers={"If-None-Match": etag})
    assert status == 304, status
    assert body304 == b""
    assert headers304.get("ETag") == etag

    status, _, again = http("GET", site.base_url + "/app.js",
                            headers={"If-None-Match": '"something-else"'})
    assert status == 200 and again == body

    status, _, _ = http("GET", site.base_url + "/app.js",
                        headers={"If-None-Match": f'"nope", {etag}'})
    assert status == 304, "an ETag in a list of candidates must match"


def test_changed_file_gets_new_etag(site):
    path = site.public / "changing.css"
    path.write_text("a { color: red; }\n")
    status, headers, _ = http("GET", site.base_url + "/changing.css")
    assert status == 200
    old = headers.get("ETag")
    path.write_text("a { color: blue; text-decoration: underline; }\n")
    status, headers, body = http("GET", site.base_url + "/changing.css",
                                 headers={"If-None-Match": old})
    assert status == 200, "a stale ETag revalidated a changed file"
    assert body == path.read_bytes()
    assert headers.get("ETag") != old


@pytest.mark.parametrize("path", ["/missing.html", "/sub/missing.css", "/nothing/here.js"])
def test_missing_file_is_404_json(site, path):
    status, headers, body = http("GET", site.base_url + path)
    assert_json_error(status, body, 404, "not_found", f"GET {path}")


TRAVERSALS = [
    "/../{f}",
    "/%2e%2e/{f}",
    "/..%2f{f}",
    "/%2e%2e%2f{f}",
    "/%2E%2E/{f}",
    "/sub/../../{f}",
    "/sub/%2e%2e/%2e%2e/{f}",
    "/..%5c{f}",
    "/%2e%2e%5c{f}",
    "/%252e%252e/{f}",
    "/./../{f}",
    "/..;/{f}",
    "//../{f}",
]


@pytest.mark.parametrize("template", TRAVERSALS)
def test_traversal_never_serves_outside_file(site, template):
    path = template.format(f="secret.txt")
    raw = raw_exchange(site.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 5,
                       until=count_complete_responses(1))
    assert SECRET.encode() not in raw, f"GET {path} leaked the file outside --public"
    responses, _ = parse_responses(raw)
    assert responses, f"GET {path}: no answer {bytes(raw)!r}"
    assert responses[0].status in (400, 404), f"GET {path} answered {responses[0].status}"


@pytest.mark.parametrize("template", TRAVERSALS[:4])
def test_traversal_to_package_swift(herald, template):
    path = template.format(f="Package.swift")
    raw = raw_exchange(herald.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 5,
                       until=count_complete_responses(1))
    assert b"PackageDescription" not in raw and b"swift-tools-version" not in raw, (
        f"GET {path} served {REPO / 'Package.swift'}")
    responses, _ = parse_responses(raw)
    assert responses and responses[0].status in (400, 404), bytes(raw)[:300]


@pytest.mark.parametrize("path", ["/%2fetc%2fpasswd", "/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
                                  "/../../../../../../etc/passwd"])
def test_absolute_and_deep_traversal(site, path):
    raw = raw_exchange(site.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 5,
                       until=count_complete_responses(1))
    assert b"root:" not in raw, f"GET {path} served /etc/passwd"
    responses, _ = parse_responses(raw)
    assert responses and responses[0].status in (400, 404), bytes(raw)[:300]


def test_directory_is_not_listed(site):
    status, _, body = http("GET", site.base_url + "/sub")
    assert status in (301, 302, 308, 403, 404), (status, body[:300])


def test_post_to_static_file_is_refused(site):
    status, headers, body = http("POST", site.base_url + "/style.css", b"x")
    assert status in (404, 405), status
    decoded = json.loads(body)
    assert decoded["error"] in ("not_found", "method_not_allowed")
