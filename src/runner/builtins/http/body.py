"""Reading an answer's body within a byte budget, and naming what broke on the way.

The body is read as it comes off the connection (``aiter_raw``: chunked
framing removed, content encoding kept) and decoded here rather than by
httpx, because httpx inflates each network read whole: 64 KiB of a gzip bomb
become 64 MiB at once. Here zlib stops at the budget (``max_length``), so
neither the bytes received nor the bytes decoded pass ``max_body_bytes``
(plus one network read of at most 64 KiB on the wire).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast

import httpx

from runner.builtins._compat import incomplete_chunked_read
from runner.plugin import describe_error

__all__ = ["DECODED_ENCODINGS", "Body", "BodyError", "read_body", "readable_text"]

#: Content encodings decoded here; the shared client asks for these only.
DECODED_ENCODINGS = ("gzip", "deflate")

_BYTEARRAY_REPR = re.compile(r"bytearray\(b(['\"])(.*?)\1\)")


class BodyError(Exception):
    """The body broke within the budget; the message says how, for a person.

    ``error_type`` names the failure for the result: the httpx exception of a
    broken transfer (``ReadError``, ``RemoteProtocolError``), or ``DecodingError``.
    """

    def __init__(self, message: str, error_type: str = "DecodingError") -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class Body:
    """What was read of a body.

    Attributes:
        size: bytes of the body read, at most the budget: decoded, unless its
            encoding is one runner does not decode.
        complete: the body ended within the budget (False: it went on past it
            and was not read further).
        content: the bytes read, when they were kept for assertions.
        encoding: a content encoding that was not decoded (``br``), or None.
    """

    size: int
    complete: bool
    content: bytes | None = None
    encoding: str | None = None


class _Inflater:
    """A gzip or deflate decoder that never returns more than it is asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        # gzip: its header and trailer; deflate: zlib-wrapped, though some
        # servers send it raw (as httpx, try zlib first, then raw).
        self._wbits = 16 + zlib.MAX_WBITS if name == "gzip" else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(self._wbits)
        self._started = False

    def decode(self, data: bytes, max_length: int) -> bytes:
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error as exc:
            if self.name == "deflate" and not self._started:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                return self.decode(data, max_length)
            raise BodyError(f"cannot decode the {self.name} body: {_zlib_reason(exc)}") from exc
        self._started = True
        return out

    def finish(self) -> None:
        """The body ended: the compressed data must have ended too."""
        if self._started and not self._zlib.eof:
            raise BodyError(
                f"cannot decode the {self.name} body: it ends before its compressed data does"
            )


async def read_body(response: httpx.Response, limit: int, *, keep: bool) -> Body:
    """Read ``response``'s body up to ``limit`` decoded bytes, keeping them if ``keep``.

    Raises:
        BodyError: the transfer broke (reset, short Content-Length, bad
            chunking) or the content could not be decoded, within the budget.
    """
    header = response.headers.get("content-encoding", "")
    encodings = [e.strip().lower() for e in header.split(",") if e.strip()]
    encodings = ["gzip" if e == "x-gzip" else e for e in encodings if e != "identity"]
    # One gzip or deflate layer is decoded. Anything else, stacked layers
    # included (zlib's output cap would strand input between layers), is
    # read as it came: the transfer is still checked, the content is not.
    inflater = None
    undecoded = None
    if len(encodings) == 1 and encodings[0] in DECODED_ENCODINGS:
        inflater = _Inflater(encodings[0])
    elif encodings:
        undecoded = ", ".join(encodings)
    kept = bytearray() if keep else None
    received = size = 0
    try:
        # aiter_raw is a generator: close it here, not when the garbage collector gets to it.
        raw_chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        async with aclosing(raw_chunks) as chunks:
            async for chunk in chunks:
                received += len(chunk)
                # At most one byte past the budget: enough to know it was passed.
                data = chunk if inflater is None else inflater.decode(chunk, limit - size + 1)
                size += len(data)
                if kept is not None:
                    kept += data[: limit - len(kept)]
                if size > limit or received > limit:
                    return Body(min(size, limit), False, _bytes(kept), undecoded)
    except httpx.HTTPError as exc:
        raise BodyError(_transfer_error(exc, response, received), type(exc).__name__) from exc
    if inflater is not None:
        inflater.finish()
    return Body(size, True, _bytes(kept), undecoded)


def _bytes(kept: bytearray | None) -> bytes | None:
    return None if kept is None else bytes(kept)


def _transfer_error(exc: httpx.HTTPError, response: httpx.Response, received: int) -> str:
    """What broke in the transfer of a body, in words."""
    if isinstance(exc, httpx.RemoteProtocolError):
        length = response.headers.get("content-length", "")
        if length.isdigit() and "transfer-encoding" not in response.headers:
            return (
                f"body shorter than its Content-Length: the connection closed after "
                f"{received} of {length} bytes"
            )
        if incomplete_chunked_read(exc):
            return (
                f"chunked body cut short: the connection closed inside a chunk, "
                f"after {received} bytes"
            )
        return f"bad chunked encoding after {received} bytes: {readable_text(str(exc))}"
    return f"body broken after {received} bytes: {readable_text(describe_error(exc))}"


def _zlib_reason(exc: zlib.error) -> str:
    # "Error -3 while decompressing data: incorrect header check" -> the reason.
    return str(exc).rsplit(": ", 1)[-1]


def readable_text(text: str, limit: int = 100) -> str:
    """``text`` with any ``bytearray(b'...')`` repr (h11's) turned into quoted text."""

    def replace(match: re.Match[str]) -> str:
        raw = match.group(2).encode("latin-1", "backslashreplace").decode("unicode_escape")
        return repr(raw[:limit] + "…" if len(raw) > limit else raw)

    return _BYTEARRAY_REPR.sub(replace, text)
