"""public/openapi.yaml (served at /openapi.yaml) against a running Herald, with schemathesis (property-based, bounded).

The spec is loaded from the file at the repository root. Every operation is probed in
schemathesis's three phases (the spec's examples, deterministic coverage cases such as
boundary values, missing fields and unlisted methods, then random fuzzing), in positive and
negative mode, against two private Heralds: one whose Redis answers (no 5xx is allowed at
all) and one whose Redis does not (the only 5xx allowed is a 503 that the spec documents for
that operation). Each answer must have a documented status code, content type and headers,
and a body that matches its schema; a request that breaks the spec must be refused with a 4xx;
a method the spec does not list must get 405 with an `Allow` header.

HERALD_OPENAPI_EXAMPLES (default 25) bounds the random examples per operation and mode.
"""

from __future__ import annotations

import os

import pytest

from conftest import REPO, free_port, http, wait_herald_ready

try:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
        unsupported_method,
    )
except ImportError as exc:  # pragma: no cover - scripts/deps.sh installs it
    pytest.fail(f"schemathesis is not installed in .venv ({exc}); run scripts/deps.sh",
                pytrace=False)

from hypothesis import HealthCheck, settings

SPEC = REPO / "public" / "openapi.yaml"
MAX_EXAMPLES = int(os.environ.get("HERALD_OPENAPI_EXAMPLES", "25"))

FULL_SCHEMA = schemathesis.openapi.from_path(str(SPEC))
# GET /events answers an endless text/event-stream: a request/response fuzzer cannot read it
# (tests/e2e covers SSE). Everything else is probed.
SCHEMA = FULL_SCHEMA.exclude(path="/events")
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                max_examples=MAX_EXAMPLES)
# GET /subscribe checks the upgrade before the query: without one, every request (valid query or
# not) is refused with 426, which is a refusal all the same.
_rejection = SCHEMA.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "426"]

COMMON_CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
                 response_schema_conformance, negative_data_rejection, unsupported_method]
# With Redis down a 503 is expected where the spec documents it: status_code_conformance
# rejects an undocumented one, and the test itself rejects every other 5xx.
CHECKS = {"redis-up": [not_a_server_error, *COMMON_CHECKS], "redis-down": COMMON_CHECKS}


def test_spec_is_valid_openapi():
    """The file is valid OpenAPI 3.0 (meta-schema) and describes the README's routes."""
    FULL_SCHEMA.validate()
    labels = {result.ok().label for result in FULL_SCHEMA.get_all_operations()}
    for label in ("POST /publish/{channel}", "POST /publish", "GET /subscribe", "GET /events",
                  "POST /streams/{key}", "GET /streams/{key}", "POST /queues/{name}",
                  "GET /queues/{name}", "GET /presence/{channel}", "GET /healthz", "HEAD /healthz", "GET /readyz",
                  "GET /metrics", "GET /", "GET /{file}"):
        assert label in labels, f"{label} missing from {SPEC.name}: {sorted(labels)}"


def _in_range(value, low, high):
    text = str(value)
    return text.isascii() and text.isdigit() and low <= int(text) <= high


@pytest.fixture(params=["redis-up", "redis-down"])
def target(request, start_herald):
    """(herald, mode): a private Herald whose Redis answers, or one whose Redis does not."""
    if request.param == "redis-up":
        return start_herald(), request.param
    # Nothing listens on that port: Herald serves HTTP but its Redis links stay down.
    herald = start_herald(redis_url=f"redis://127.0.0.1:{free_port()}", wait_ready=False)
    wait_herald_ready(herald, ready=False)
    return herald, request.param


@SCHEMA.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_spec(case, target):
    herald, mode = target
    if case.operation.label == "GET /queues/{name}" and isinstance(case.query, dict):
        # A valid wait (1-300 s) on an empty queue blocks that long: keep the run bounded by
        # asking for 0 instead (invalid values are still sent as generated).
        wait = str(case.query.get("wait", ""))
        if wait.isdigit() and 0 < int(wait) <= 300:
            case.query["wait"] = 0
    if case.operation.label in ("POST /streams/{key}", "POST /queues/{name}") and isinstance(case.query, dict):
        # A valid replicas=N against this Redis (it has no replicas) waits for its timeout and
        # answers 504 not_replicated, as it should (test_replicas covers that with a real
        # replica): send valid ones without it (invalid values are still sent as generated).
        query = case.query
        if "replicas" in query and _in_range(query["replicas"], 1, 16) and (
                "timeout" not in query or _in_range(query["timeout"], 1, 60000)):
            query.pop("replicas")
            query.pop("timeout", None)
    response = case.call_and_validate(base_url=herald.base_url, checks=CHECKS[mode], timeout=10)
    if response.status_code >= 500:
        assert mode == "redis-down" and response.status_code == 503, (
            f"{case.operation.label} answered {response.status_code} ({mode}); only a documented "
            f"503 while Redis is down is allowed. Body: {response.text[:300]!r}\n"
            f"Reproduce with: {case.as_curl_command(headers=None)}")


def test_the_spec_is_served_at_openapi_yaml(herald):
    """Tools point at Herald itself for its API description: /openapi.yaml is the file."""
    status, headers, body = http("GET", herald.base_url + "/openapi.yaml")
    assert status == 200
    assert headers.get("content-type", "").startswith("application/yaml"), headers
    assert body == SPEC.read_bytes()
