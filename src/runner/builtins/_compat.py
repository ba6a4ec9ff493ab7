"""Every private name of a dependency the built-in checks rely on, in one place.

Each entry says why it is used, what it buys (with the benchmark figure), and
what happens when an upgrade removes or changes it.
``tests/test_builtins_compat.py`` has one test per entry that fails naming the
dependency, its version and what broke; the upper bounds in pyproject.toml
(httpx, httpcore, dnspython, playwright) keep an untested release out.

Not here, because they are public: httpx's transport API (``http.probe``
implements ``httpx.AsyncBaseTransport`` and maps httpcore's errors to httpx's
itself), httpcore's ``trace`` request extension (its event names are checked
by a test all the same), ``BrowserType.executable_path``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import ssl
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NamedTuple

import httpcore
import httpx

__all__ = [
    "MAX_HEADER_BYTES",
    "NameserverError",
    "build_redirect_request",
    "http11_connection",
    "incomplete_chunked_read",
    "nameserver_errors",
    "playwright_chromium",
    "verified_chain_info",
]


# ---------------------------------------------------------------- httpx
# AsyncClient._build_redirect_request(request, response) -> Request
#
# Why: http-status sends each hop straight to its transport (status._Client.
# send_hop) and follows redirects itself, but keeps httpx's own redirect rules
# (method rewritten on 301/302/303, body dropped, Authorization and Cookie
# dropped across origins, the Location resolved against the request's URL).
# The public way, ``client.send(request, stream=True, follow_redirects=False)``,
# sets ``response.next_request`` the same way but wraps every request in auth
# and event-hook generators, a timer and a log line.
# Figure: bench/README.md, http_status.py: each hop straight to the transport
# took a check from 0.49 to 0.36 CPU ms (with the header merge done once).
# Re-measured for issue 19 with http_status.py on a quiet machine: the public
# call costs 1.14x CPU per check at 16 at once, 1.03x one at a time
# (bench/README.md, "_build_redirect_request against the public send").
# Missing: the first http-status run of the daemon raises RuntimeError naming
# httpx's version (no check can run); tests/test_builtins_compat.py fails first.
def build_redirect_request(
    client: httpx.AsyncClient, request: httpx.Request, response: httpx.Response
) -> httpx.Request:
    """The request httpx would send for ``response``'s redirect.

    Raises:
        httpx.RemoteProtocolError: the Location is not a valid URL.
        RuntimeError: this httpx has no ``AsyncClient._build_redirect_request``.
    """
    method = getattr(client, "_build_redirect_request", None)
    if method is None:
        raise RuntimeError(
            f"httpx {httpx.__version__} has no AsyncClient._build_redirect_request, "
            "which http-status follows redirects with (runner.builtins._compat)"
        )
    redirect: httpx.Request = method(request, response)
    return redirect


# ---------------------------------------------------------------- httpcore
# AsyncHTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE (an undocumented class constant)
#
# Why: the most status line and headers httpcore lets h11 buffer; an answer
# whose headers pass it breaks with a bare RemoteProtocolError ("Receive buffer
# too long"). http-status counts the bytes of the hop and, at this limit, says
# "response headers larger than 100 KiB" instead.
# Figure: none (a message, not speed).
# Missing: None; the answer is then described by h11's own text ("invalid
# HTTP response: Receive buffer too long"), still an error.
MAX_HEADER_BYTES: int | None = getattr(
    httpcore.AsyncHTTP11Connection, "MAX_INCOMPLETE_EVENT_SIZE", None
)


# AsyncHTTP11Connection._state_lock (an httpcore AsyncLock, set in __init__)
#
# Why: the lock guards a connection's state between the requests a pool sends
# on it. http-status sends exactly one request on each connection, from the
# run's own task, and closes it with the answer (http.probe.FreshConnections),
# so there is nothing to guard. httpcore takes it twice a request, each time
# through anyio's Lock (a cancel-shielded checkpoint: a cancel scope and one
# more trip round the event loop), and its first use per connection asks
# sniffio which library runs (asyncio.current_task()) and builds the anyio
# lock; the first one of a process imports anyio's asyncio backend.
# Figure: bench/README.md, "Issue 23: runner run of 1,000 http-status checks":
# in py-spy's profile of `runner run`, the lock was 12 % of the run's samples.
# Missing (renamed, or no longer an AsyncLock): the connection keeps
# httpcore's lock: correct, only slower; tests/test_builtins_compat.py fails.
class _NoLock:
    """An async context manager that locks nothing."""

    async def __aenter__(self) -> _NoLock:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_NO_LOCK = _NoLock()


def http11_connection(
    origin: httpcore.Origin, stream: httpcore.AsyncNetworkStream
) -> httpcore.AsyncHTTP11Connection:
    """httpcore's HTTP/1.1 connection on ``stream``, for one request from one task:
    without the lock that guards it between a pool's requests, when it has the
    one this module knows."""
    connection = httpcore.AsyncHTTP11Connection(origin=origin, stream=stream)
    if type(getattr(connection, "_state_lock", None)).__name__ == "AsyncLock":
        connection._state_lock = _NO_LOCK  # type: ignore[assignment]
    return connection


# ---------------------------------------------------------------- h11 (through httpcore)
# The text of h11's RemoteProtocolError for a chunked body the peer closed
# inside a chunk: "peer closed connection without sending complete message
# body: incomplete chunked read".
#
# Why: h11 raises one type, RemoteProtocolError, for a body cut short and for
# bad chunk framing; only the text tells a closed connection (the server died
# mid-answer) from a server that sends broken chunks. A body with a
# Content-Length needs no text: the bytes counted say it (http.body).
# Figure: none (a message, not speed).
# Missing (text changed): a cut chunked body is reported as "bad chunked
# encoding after N bytes: <h11's text>": still an error, worded less well.
_INCOMPLETE_CHUNKED = "incomplete chunked read"


def incomplete_chunked_read(exc: BaseException) -> bool:
    """``exc`` is h11's error for a chunked body that the peer closed inside a chunk."""
    return isinstance(exc, httpx.RemoteProtocolError) and _INCOMPLETE_CHUNKED in str(exc)


# ---------------------------------------------------------------- ssl
# ssl.SSLObject._sslobj.get_verified_chain() / get_unverified_chain(), and
# _ssl.Certificate.get_info()
#
# Why: the expiry a check reports is the earliest notAfter of the verified
# chain (as blackbox_exporter's probe_ssl_last_chain_expiry), and getpeercert()
# gives the leaf only. The public SSLObject.get_verified_chain() of Python
# 3.13 returns DER bytes, which only an X.509 parser (not a dependency of
# runner) can read; the private object returns certificates that say their
# dates themselves, on 3.10 to 3.13 alike.
# Figure: none measured (one call per TLS connection).
# Missing: the leaf's notAfter alone (getpeercert(), public): the chain's
# intermediates no longer count.
def verified_chain_info(ssl_object: ssl.SSLObject) -> list[dict[str, Any]]:
    """``getpeercert()``-style dicts of the chain: verified, else as the server sent it.

    Empty when this Python has no such private methods or the chain cannot be read.
    """
    private = getattr(ssl_object, "_sslobj", None)
    for getter in ("get_verified_chain", "get_unverified_chain"):
        method = getattr(private, getter, None)
        if method is None:
            continue
        try:
            chain = list(method() or ())
            infos = [cert.get_info() for cert in chain]
        except (ssl.SSLError, ValueError, AttributeError):
            continue
        if infos:
            return infos
    return []


# ---------------------------------------------------------------- dnspython
# dns.resolver.NoNameservers(errors=[(nameserver, tcp, port, exception, answer), ...])
# and the nameserver's text "Do53:192.0.2.1@53".
#
# Why: when no server gave a usable answer, the dns check names each server
# and what went wrong with it, and a server that answered SERVFAIL or REFUSED
# is reported as that response code, not as an error. dnspython passes those
# facts only as this keyword argument of the exception, in this shape.
# Figure: none (a message).
# Missing (shape changed): the check reports "no DNS server answered" with
# the exception's own text, and a SERVFAIL becomes an error, not a fail.
class NameserverError(NamedTuple):
    """What one server did in a query that failed, from dnspython's ``NoNameservers``."""

    address: str
    tcp: bool
    port: int
    error: BaseException | None
    answer: Any  # a dns.message.Message the server sent, or None


_DO53 = re.compile(r"Do53:(.+)@\d+")


def nameserver_errors(exc: BaseException) -> list[NameserverError]:
    """The servers' errors that ``NoNameservers`` carries; [] if it carries none we know."""
    kwargs = getattr(exc, "kwargs", None)
    errors = kwargs.get("errors") if isinstance(kwargs, dict) else None
    out = []
    for entry in errors or ():
        if not (isinstance(entry, tuple) and len(entry) == 5):
            return []
        server, tcp, port, error, answer = entry
        match = _DO53.fullmatch(str(server))
        address = match.group(1) if match else str(server)
        out.append(NameserverError(address, tcp, port, error, answer))
    return out


# ---------------------------------------------------------------- playwright
# The Playwright wheel's driver/package/browsers.json and the layout of its
# browser cache (registryDirectory and EXECUTABLE_PATHS in Playwright's
# registry): <cache>/<name with _>-<revision>/<build path>.
#
# Why: find_chromium() is file-system only and synchronous: `python -m
# runner.builtins.browser.page_title --find-browser`, the benchmarks and the
# tests ask it without starting Playwright's driver (a Node process, about
# 100 ms of import and more to start). It also prefers the headless shell,
# which Playwright itself launches headless; the public
# BrowserType.executable_path names the full Chromium only, and needs the
# driver running.
# Figure: none measurable here (no Playwright browser can be downloaded on
# these machines); what it saves is a driver start per --find-browser.
# Missing (layout changed): None, so Chromium is looked for on PATH; the
# test compares this path with the public BrowserType.executable_path.
PLAYWRIGHT_CHROMIUM_BUILDS: dict[str, tuple[tuple[str, str], ...]] = {
    "x86_64": (
        ("chromium-headless-shell", "chrome-headless-shell-linux64/chrome-headless-shell"),
        ("chromium", "chrome-linux64/chrome"),
    ),
    "aarch64": (
        ("chromium-headless-shell", "chrome-headless-shell-linux-arm64/chrome-headless-shell"),
        ("chromium", "chrome-linux-arm64/chrome"),
    ),
}


def playwright_browser_paths() -> dict[str, Path]:
    """Where Playwright's own builds of this machine would be, by browser name, in order."""
    builds = PLAYWRIGHT_CHROMIUM_BUILDS.get(platform.machine())
    # find_spec locates a top-level package without importing it.
    spec = find_spec("playwright")
    if builds is None or spec is None or not spec.submodule_search_locations:
        return {}
    package = Path(next(iter(spec.submodule_search_locations))) / "driver" / "package"
    try:
        listed = json.loads((package / "browsers.json").read_text())["browsers"]
        revisions = {b["name"]: str(b["revision"]) for b in listed}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    # The same lookup as Playwright's registryDirectory.
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured == "0":
        registry = package / ".local-browsers"
    elif configured:
        registry = Path(configured).absolute()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        registry = Path(cache) / "ms-playwright"
    return {
        name: registry / f"{name.replace('-', '_')}-{revisions[name]}" / relative
        for name, relative in builds
        if name in revisions
    }


def playwright_chromium() -> str | None:
    """Playwright's downloaded Chromium for this Playwright version, if installed."""
    for path in playwright_browser_paths().values():
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None
