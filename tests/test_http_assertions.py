"""The assertions of http-status on what an answer says (builtins/http/assertions.py):
body text, JSON (JMESPath) and headers. First the functions themselves, on what
a server sends, then through http-status against the hostile HTTP server of
tests/hostile_http.py on 127.0.0.1."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from hostile_http import HostileServer
from runner.builtins.http.assertions import (
    ExpectBody,
    ExpectJson,
    body_failures,
    clip,
    header_failures,
    json_failures,
)
from runner.builtins.http.status import HttpStatus
from runner.plugin import Status
from runner.testing import run_check

# ------------------------------------------------------------------ the functions


def test_clip_quotes_escapes_and_cuts() -> None:
    assert clip("a\nb") == "'a\\nb'"
    assert clip("x" * 100, limit=3) == "'xxx…'"


def test_body_failures_name_each_expectation_that_fails() -> None:
    spec = ExpectBody(contains=["up", "ready"], not_contains="error", regex="^v[0-9]+")
    content = b"status: up; error: disk"
    assert body_failures(spec, content, complete=True, charset=None) == [
        "body: expected to contain 'ready', got 'status: up; error: disk'",
        "body: expected not to contain 'error', found at character 12: 'status: up; error: disk'",
        "body: expected to match /^v[0-9]+/, got 'status: up; error: disk'",
    ]
    assert body_failures(ExpectBody(contains="up"), content, complete=True, charset=None) == []


def test_body_failures_say_when_only_the_first_bytes_were_read() -> None:
    (failure,) = body_failures(ExpectBody(contains="z"), b"abc", complete=False, charset=None)
    assert failure == "body: expected to contain 'z', got 'abc' (only the first bytes were read)"


def test_body_text_is_decoded_with_the_answers_charset() -> None:
    latin1 = "café".encode("latin-1")
    assert (
        body_failures(ExpectBody(contains="café"), latin1, complete=True, charset="latin-1") == []
    )
    # An unknown charset falls back to UTF-8 rather than failing the check.
    assert body_failures(ExpectBody(contains="ok"), b"ok", complete=True, charset="nope") == []


def test_json_failures() -> None:
    specs = [
        ExpectJson(path="status", equals="UP"),
        ExpectJson(path="latency_ms", less_than=10),
        ExpectJson(path="missing", exists=True),
    ]
    document = b'{"status": "UP", "latency_ms": 42}'
    assert json_failures(specs, document, complete=True, limit=100) == [
        "JSON latency_ms: expected less than 10, got 42",
        "JSON missing: expected a value, got nothing",
    ]
    assert json_failures(specs[:1], b"<html>", complete=True, limit=100) == [
        "body: expected JSON, got '<html>' (Expecting value)"
    ]
    assert json_failures(specs[:1], b'{"status"', complete=False, limit=9) == [
        "body: expected JSON within max_body_bytes (9 bytes), but the body is longer; "
        "raise max_body_bytes"
    ]


def test_json_equality_is_jsons() -> None:
    one = ExpectJson(path="a", equals=1)
    assert one.failure({"a": 1.0}) is None
    assert one.failure({"a": True}) == "JSON a: expected 1, got true"


def test_header_failures_join_repeated_headers_and_hide_cookies() -> None:
    headers = httpx.Headers([("x-a", "1"), ("x-a", "2"), ("set-cookie", "session=s3cret")])
    expected = {
        "X-A": re.compile(r"^1, 2$"),
        "X-Missing": re.compile("x"),
        "Set-Cookie": re.compile("^theme="),
    }
    assert header_failures(expected, headers) == [
        "header X-Missing: expected to match /x/, got none",
        "header Set-Cookie: expected to match /^theme=/, got a value not shown",
    ]


@pytest.mark.parametrize(
    ("model", "options", "text"),
    [
        pytest.param(ExpectBody, {}, "give at least one of contains", id="body-empty"),
        pytest.param(ExpectBody, {"regex": "("}, "not a valid regular expression", id="body-re"),
        pytest.param(ExpectJson, {"path": "a"}, "give exactly one of", id="json-no-test"),
        pytest.param(
            ExpectJson, {"path": "a", "equals": 1, "exists": True}, "(got equals, exists)", id="two"
        ),
        pytest.param(ExpectJson, {"path": "a[", "exists": True}, "JMESPath", id="json-path"),
    ],
)
def test_bad_expectations_are_rejected(
    model: type[ExpectBody | ExpectJson], options: dict[str, Any], text: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(text)):
        model.model_validate(options)


# ------------------------------------------------------------------ through http-status


def _json_test(test: str, value: object, path: str = "status") -> dict[str, Any]:
    return {"expect_json": [{"path": path, test: value}]}


@pytest.mark.parametrize(
    ("path", "options", "message"),
    [
        pytest.param("/page", {"expect_body": {"contains": "Welcome"}}, None, id="contains-ok"),
        pytest.param(
            "/page",
            {"expect_body": {"contains": "Goodbye"}},
            "body: expected to contain 'Goodbye', got '<html><title>Welcome</title><body>All "
            "systems operational</body></html>'",
            id="contains-fail",
        ),
        pytest.param(
            "/page", {"expect_body": {"not_contains": "error"}}, None, id="not-contains-ok"
        ),
        pytest.param(
            "/page",
            {"expect_body": {"not_contains": "systems"}},
            "body: expected not to contain 'systems', found at character 38: "
            "'me</title><body>All systems operational</body><'",
            id="not-contains-fail",
        ),
        pytest.param("/page", {"expect_body": {"regex": r"All \w+ operational"}}, None, id="re-ok"),
        pytest.param(
            "/ok",
            {"expect_body": {"regex": "^up$"}},
            "body: expected to match /^up$/, got 'ok'",
            id="regex-fail",
        ),
        pytest.param("/json", _json_test("equals", "UP"), None, id="json-equals-ok"),
        pytest.param(
            "/json",
            _json_test("equals", "DOWN"),
            "JSON status: expected 'DOWN', got 'UP'",
            id="json-equals-fail",
        ),
        pytest.param(
            "/json",
            _json_test("equals", True, "checks[0].ok"),
            None,
            id="json-equals-bool-ok",
        ),
        pytest.param(
            "/json",
            _json_test("equals", 1, "checks[0].ok"),
            "JSON checks[0].ok: expected 1, got true",
            id="json-equals-true-is-not-1",
        ),
        pytest.param("/json", _json_test("contains", "prod", "tags"), None, id="json-in-array"),
        pytest.param("/json", _json_test("contains", "2.1", "version"), None, id="json-in-str"),
        pytest.param(
            "/json",
            _json_test("contains", "us", "tags"),
            """JSON tags: expected an array containing 'us', got ["prod", "eu"]""",
            id="json-contains-fail",
        ),
        pytest.param("/json", _json_test("exists", True, "checks[0].name"), None, id="exists-ok"),
        pytest.param(
            "/json",
            _json_test("exists", True, "uptime"),
            "JSON uptime: expected a value, got nothing",
            id="exists-fail",
        ),
        pytest.param("/json", _json_test("exists", False, "nothing"), None, id="not-exists-ok"),
        pytest.param(
            "/json",
            _json_test("exists", False, "latency_ms"),
            "JSON latency_ms: expected nothing, got 42",
            id="not-exists-fail",
        ),
        pytest.param("/json", _json_test("regex", r"^2\.", "version"), None, id="json-regex-ok"),
        pytest.param(
            "/json",
            _json_test("regex", r"^3\.", "version"),
            r"JSON version: expected to match /^3\./, got '2.1.0'",
            id="json-regex-fail",
        ),
        pytest.param("/json", _json_test("less_than", 100, "latency_ms"), None, id="lt-ok"),
        pytest.param(
            "/json",
            _json_test("less_than", 10, "latency_ms"),
            "JSON latency_ms: expected less than 10, got 42",
            id="lt-fail",
        ),
        pytest.param(
            "/json",
            _json_test("less_than", 10),
            "JSON status: expected a number less than 10, got 'UP'",
            id="lt-not-a-number",
        ),
        pytest.param("/json", _json_test("greater_than", 0, "latency_ms"), None, id="gt-ok"),
        pytest.param(
            "/json",
            _json_test("greater_than", 50.5, "latency_ms"),
            "JSON latency_ms: expected greater than 50.5, got 42",
            id="gt-fail",
        ),
        pytest.param(
            "/page",
            _json_test("equals", "UP"),
            "body: expected JSON, got '<html><title>Welcome</title><body>All systems "
            "operational</body></html>' (Expecting value)",
            id="not-json",
        ),
        pytest.param(
            "/json",
            {**_json_test("equals", "UP"), "max_body_bytes": 10},
            "body: expected JSON within max_body_bytes (10 bytes), but the body is longer; "
            "raise max_body_bytes",
            id="json-past-window",
        ),
        pytest.param(
            "/headers", {"expect_headers": {"content-type": "^application/json"}}, None, id="hdr-ok"
        ),
        pytest.param(
            "/headers",
            {"expect_headers": {"X-Ready": "^no$"}},
            "header X-Ready: expected to match /^no$/, got 'yes'",
            id="hdr-fail",
        ),
        pytest.param(
            "/headers",
            {"expect_headers": {"X-Version": "."}},
            "header X-Version: expected to match /./, got none",
            id="hdr-missing",
        ),
        pytest.param(
            "/headers",
            {"expect_headers": {"Set-Cookie": "^token="}},
            "header Set-Cookie: expected to match /^token=/, got a value not shown",
            id="hdr-cookie-hidden",
        ),
        pytest.param("/ok", {"max_response_time": "5s"}, None, id="time-ok"),
        pytest.param(
            "/ok",
            {"expect_status": [204], "expect_body": {"contains": "fine"}},
            "status 200, expected 204; body: expected to contain 'fine', got 'ok'",
            id="all-failures-reported",
        ),
    ],
)
async def test_assertions(
    hostile: HostileServer, path: str, options: dict[str, Any], message: str | None
) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url(path), **options})
    if message is None:
        assert result.status is Status.OK, result.message
        assert result.message == "status 200"
    else:
        assert result.status is Status.FAIL
        assert result.message == message
        assert result.fields["status_code"] == 200


async def test_long_body_is_cut_short_in_the_message(hostile: HostileServer) -> None:
    result = await run_check(
        HttpStatus, {"url": hostile.url("/huge"), "expect_body": {"contains": "needle"}}
    )
    assert result.status is Status.FAIL
    assert result.message == (
        f"body: expected to contain 'needle', got '{'x' * 80}…' (only the first bytes were read)"
    )
