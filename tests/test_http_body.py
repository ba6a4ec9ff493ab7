"""Reading an answer's body within a budget (builtins/http/body.py), against the
hostile HTTP server of tests/hostile_http.py on 127.0.0.1: first straight
through ``read_body`` on an httpx response, then as http-status reports it."""

from __future__ import annotations

import tracemalloc
from typing import Any

import httpx
import pytest

from hostile_http import HostileServer
from runner.builtins.http.body import Body, BodyError, read_body, readable_text
from runner.builtins.http.status import HttpStatus
from runner.plugin import Status
from runner.testing import run_check

MIB = 1024 * 1024
GZIP_TEXT = b"hello from a gzip body " * 100


async def read(url: str, limit: int = MIB, *, keep: bool = True) -> Body:
    """``read_body`` on the answer to GET ``url``, fetched as http-status fetches it."""
    headers = {"Accept-Encoding": "gzip, deflate"}
    async with (
        httpx.AsyncClient(trust_env=False, headers=headers) as client,
        client.stream("GET", url) as response,
    ):
        return await read_body(response, limit, keep=keep)


# ------------------------------------------------------------------ read_body


async def test_a_gzip_body_is_decoded_whole_within_the_budget(hostile: HostileServer) -> None:
    body = await read(hostile.url("/gzip"))
    assert body == Body(len(GZIP_TEXT), True, GZIP_TEXT, None)


async def test_the_budget_counts_decoded_bytes(hostile: HostileServer) -> None:
    body = await read(hostile.url("/gzip"), limit=100)
    assert (body.size, body.complete) == (100, False)
    assert body.content == GZIP_TEXT[:100]


async def test_bytes_are_counted_not_kept_unless_asked(hostile: HostileServer) -> None:
    body = await read(hostile.url("/gzip"), keep=False)
    assert (body.size, body.complete, body.content) == (len(GZIP_TEXT), True, None)


async def test_an_encoding_runner_does_not_decode_is_read_as_it_came(
    hostile: HostileServer,
) -> None:
    body = await read(hostile.url("/brotli"))
    assert body.encoding == "br"
    assert body.complete and body.size == 9


@pytest.mark.parametrize(
    ("path", "error_type", "message"),
    [
        pytest.param(
            "/short",
            "RemoteProtocolError",
            "body shorter than its Content-Length: the connection closed after 100 of 1000 bytes",
            id="short",
        ),
        pytest.param(
            "/reset",
            "ReadError",
            "body broken after 1000 bytes: connection reset by the server",
            id="reset",
        ),
        pytest.param(
            "/bad-gzip",
            "DecodingError",
            "cannot decode the gzip body: incorrect header check",
            id="bad-gzip",
        ),
    ],
)
async def test_a_broken_body_is_a_body_error_in_words(
    hostile: HostileServer, path: str, error_type: str, message: str
) -> None:
    with pytest.raises(BodyError) as caught:
        await read(hostile.url(path))
    assert (caught.value.error_type, str(caught.value)) == (error_type, message)


def test_h11_bytearray_reprs_become_quoted_text() -> None:
    assert readable_text("illegal status line: bytearray(b'HTTP/1.1 abc OK')") == (
        "illegal status line: 'HTTP/1.1 abc OK'"
    )
    assert readable_text("x bytearray(b'" + "a" * 200 + "')", limit=5) == "x 'aaaaa…'"


# ------------------------------------------------------------------ as http-status reports it


@pytest.mark.parametrize(
    ("path", "error_type"),
    [("/short", "RemoteProtocolError"), ("/reset", "ReadError"), ("/bad-gzip", "DecodingError")],
)
async def test_broken_body_error_keeps_status_and_type(
    hostile: HostileServer, path: str, error_type: str
) -> None:
    result = await run_check(HttpStatus, {"url": hostile.url(path)})
    assert result.fields["status_code"] == 200
    assert result.fields["error_type"] == error_type


@pytest.mark.parametrize(
    "options",
    [pytest.param({}, id="discarded"), pytest.param({"expect_body": {"contains": "x"}}, id="kept")],
)
async def test_5gb_body_reads_one_window_with_flat_memory(
    hostile: HostileServer, options: dict[str, Any]
) -> None:
    tracemalloc.start()
    try:
        result = await run_check(HttpStatus, {"url": hostile.url("/huge"), **options})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is Status.OK, result.message
    assert result.fields["body_bytes"] == MIB
    assert result.fields["body_complete"] is False
    # One window and what is in flight, not gigabytes; the server stopped early.
    assert peak < 8 * MIB
    assert hostile.sent < 16 * MIB


async def test_gzip_bomb_stops_at_the_window(hostile: HostileServer) -> None:
    tracemalloc.start()
    try:
        result = await run_check(
            HttpStatus, {"url": hostile.url("/gzip-bomb"), "expect_body": {"not_contains": "x"}}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is Status.OK, result.message
    assert result.fields["body_bytes"] == MIB
    assert result.fields["body_complete"] is False
    assert peak < 8 * MIB
    assert hostile.sent < 16 * MIB  # what the socket buffers took, not 5 GB


async def test_gzip_body_is_decoded(hostile: HostileServer) -> None:
    options = {"url": hostile.url("/gzip"), "expect_body": {"contains": "hello from a gzip body"}}
    result = await run_check(HttpStatus, options)
    assert result.status is Status.OK, result.message
    assert result.fields["body_bytes"] == len(b"hello from a gzip body ") * 100
    assert result.fields["body_complete"] is True


async def test_raw_deflate_body_is_decoded(hostile: HostileServer) -> None:
    options = {"url": hostile.url("/deflate"), "expect_body": {"contains": "raw deflate"}}
    result = await run_check(HttpStatus, options)
    assert result.status is Status.OK, result.message


async def test_body_in_an_encoding_runner_does_not_decode(hostile: HostileServer) -> None:
    url = hostile.url("/brotli")
    read = await run_check(HttpStatus, {"url": url})
    assert read.status is Status.OK  # the transfer is checked all the same
    assert read.fields["body_bytes"] == 9

    checked = await run_check(HttpStatus, {"url": url, "expect_body": {"contains": "hello"}})
    assert checked.status is Status.ERROR
    assert checked.message == (
        "cannot check the body: it is encoded with 'br', and runner decodes one layer of "
        "gzip or deflate; drop Accept-Encoding from headers"
    )
