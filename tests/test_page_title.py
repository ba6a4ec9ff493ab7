"""page-title in a real headless Chromium against pages served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from runner.builtins.page_title import (
    BrowserNotFoundError,
    PageTitle,
    PageTitleOptions,
    find_chromium,
)
from runner.plugin import Status
from runner.resources import Resources
from runner.testing import run_check

HELLO = "Hello runner"


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event  # set on the server class by the fixture

    def do_GET(self) -> None:
        if self.path == "/":
            self._html(f"<html><head><title>{HELLO}</title></head><body>hi</body></html>")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/stalled":
            # The document itself arrives, but its image never does: the
            # page's load event never fires.
            self._html('<html><head><title>Stalled</title></head><img src="/never"></html>')
        elif self.path == "/never":
            self.server.release.wait(30)  # type: ignore[attr-defined]
        else:
            self.send_error(404)

    def _html(self, text: str) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    """Base URL of a local web server with a few pages; no trailing slash."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="test-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    res = Resources()
    try:
        yield res
    finally:
        await res.aclose()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- processes, read from /proc --------------------------------------------


def _live_processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, executable path) of every process that is not a zombie."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:  # gone, or a zombie (no exe link)
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            found[int(entry)] = (int(ppid), exe)
    return found


def _descendants() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, executable) of every live process descended from this one,
    but for the test session's PostgreSQL server (tests/postgres.py), which outlives
    these tests on purpose."""
    processes = {
        pid: (ppid, exe)
        for pid, (ppid, exe) in _live_processes().items()
        if not exe.startswith("/usr/lib/postgresql/")
    }
    mine: dict[int, tuple[int, str]] = {}
    parents = {os.getpid()}
    while parents:
        children = {pid for pid, (ppid, _) in processes.items() if ppid in parents}
        children -= mine.keys()
        mine.update({pid: processes[pid] for pid in children})
        parents = children
    return mine


def _chromium() -> dict[int, int]:
    """pid -> parent pid of every Chromium process we started (directly or not)."""
    return {pid: ppid for pid, (ppid, exe) in _descendants().items() if "chrom" in Path(exe).name}


def _chromium_pids() -> set[int]:
    return set(_chromium())


def _browser_count() -> int:
    """Browser (main) processes: Chromium processes not started by another Chromium."""
    chromium = _chromium()
    return sum(ppid not in chromium for ppid in chromium.values())


def _page_renderer_count() -> int:
    """Renderers of web pages; the browser's own UI (WebUI) renderer is not one."""
    return sum(
        b"--type=renderer" in cmdline and b"--top-chrome-webui" not in cmdline
        for cmdline in map(_cmdline, _chromium_pids())
    )


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def _wait_for(condition: Callable[[], bool], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- runs in a real browser -------------------------------------------------


async def test_matching_title_is_ok_and_reports_the_final_page(
    site: str, resources: Resources
) -> None:
    result = await run_check(
        PageTitle,
        {"url": f"{site}/moved", "expect_title": HELLO},
        timeout=15,
        resources=resources,
    )
    assert result.status is Status.OK, result.message
    assert result.fields == {"title": HELLO, "url": f"{site}/", "http_status": 200}


async def test_wrong_title_fails_showing_expected_and_actual(
    site: str, resources: Resources
) -> None:
    result = await run_check(
        PageTitle, {"url": site, "expect_title": "Goodbye"}, timeout=15, resources=resources
    )
    assert result.status is Status.FAIL
    assert "'Goodbye'" in (result.message or "")
    assert repr(HELLO) in (result.message or "")
    assert result.fields["title"] == HELLO


@pytest.mark.parametrize(
    ("pattern", "status"),
    [
        pytest.param(r"^Hello\b", Status.OK, id="matches"),
        pytest.param(r"^runner", Status.FAIL, id="no-match"),
    ],
)
async def test_title_regex(site: str, resources: Resources, pattern: str, status: Status) -> None:
    result = await run_check(
        PageTitle,
        {"url": site, "expect_title_regex": pattern},
        timeout=15,
        resources=resources,
    )
    assert result.status is status, result.message
    if status is Status.FAIL:
        assert pattern in (result.message or "")


async def test_page_that_never_finishes_loading_times_out(site: str, resources: Resources) -> None:
    # Launch the browser first so the job's short timeout measures only the page.
    warm = await run_check(PageTitle, {"url": site}, timeout=15, resources=resources)
    assert warm.status is Status.OK, warm.message
    started = time.monotonic()
    result = await run_check(
        PageTitle, {"url": f"{site}/stalled"}, timeout=1.5, resources=resources
    )
    assert result.status is Status.TIMEOUT, result.message
    assert time.monotonic() - started < 3
    # The timed-out run closed its context and left the browser usable.
    after = await run_check(PageTitle, {"url": site}, timeout=15, resources=resources)
    assert after.status is Status.OK, after.message


async def test_wait_until_domcontentloaded_does_not_wait_for_subresources(
    site: str, resources: Resources
) -> None:
    result = await run_check(
        PageTitle,
        {"url": f"{site}/stalled", "wait_until": "domcontentloaded", "expect_title": "Stalled"},
        timeout=15,
        resources=resources,
    )
    assert result.status is Status.OK, result.message


async def test_refused_connection_is_a_short_error(closed_port: int, resources: Resources) -> None:
    result = await run_check(
        PageTitle, {"url": f"http://127.0.0.1:{closed_port}/"}, timeout=15, resources=resources
    )
    assert result.status is Status.ERROR
    assert "ERR_CONNECTION_REFUSED" in (result.message or "")
    assert "\n" not in (result.message or "")
    assert "Call log" not in (result.message or "")


async def test_runs_share_one_browser_and_closing_leaves_no_process(site: str) -> None:
    resources = Resources()
    try:
        # Concurrent runs, each in its own task as the daemon runs them.
        results = await asyncio.gather(
            *(
                run_check(PageTitle, {"url": site, "expect_title": HELLO}, resources=resources)
                for _ in range(4)
            )
        )
        assert [r.status for r in results] == [Status.OK] * 4, [r.message for r in results]
        for _ in range(3):
            more = await run_check(PageTitle, {"url": site}, resources=resources)
            assert more.status is Status.OK, more.message
        assert len(resources) == 1
        assert _browser_count() == 1
        # Each run closed its context, so no page's renderer outlives its run.
        settled = await _wait_for(lambda: _page_renderer_count() == 0, deadline_s=5)
        assert settled, f"{_page_renderer_count()} page renderers outlived their runs"
        launched = _chromium_pids()
        assert launched
    finally:
        await resources.aclose()

    def all_gone() -> bool:
        return not _chromium_pids() and not any(Path(f"/proc/{pid}").exists() for pid in launched)

    assert await _wait_for(all_gone, deadline_s=10), _descendants()


@pytest.mark.parametrize("timeout", [0.05, 0.3, 0.6], ids=lambda t: f"{t}s")
async def test_run_cancelled_while_the_browser_starts_leaves_no_process(
    site: str, timeout: float
) -> None:
    # Starting Playwright and Chromium takes about these times, so the run is
    # cancelled somewhere inside the start (or, on a fast machine, in the
    # navigation: /never does not answer, so the run can never pass).
    result = await run_check(PageTitle, {"url": f"{site}/never"}, timeout=timeout)
    assert result.status is Status.TIMEOUT
    assert await _wait_for(lambda: not _descendants(), deadline_s=10), _descendants()


async def test_no_browser_found_is_an_error_that_says_how_to_fix_it(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNNER_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))
    result = await run_check(PageTitle, {"url": site})
    assert result.status is Status.ERROR
    message = result.message or ""
    assert "apt-get install chromium" in message
    assert "RUNNER_CHROMIUM" in message
    assert "executable_path" in message


# --- finding the browser ----------------------------------------------------


def test_find_chromium_prefers_the_option_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("RUNNER_CHROMIUM", str(fake))
    assert find_chromium() == str(fake)
    assert find_chromium("/usr/lib/chromium/chromium") == "/usr/lib/chromium/chromium"


def test_find_chromium_rejects_a_bad_runner_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(BrowserNotFoundError, match="RUNNER_CHROMIUM='/nonexistent/chromium'"):
        find_chromium()


def test_find_browser_command_finds_chromium_here() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runner.builtins.page_title", "--find-browser"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert os.access(proc.stdout.strip(), os.X_OK)


def test_find_browser_command_says_what_to_do_when_there_is_none(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_CHROMIUM"}
    env.update(PATH=str(tmp_path), PLAYWRIGHT_BROWSERS_PATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "runner.builtins.page_title", "--find-browser"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "apt-get install chromium" in proc.stderr
    assert "RUNNER_CHROMIUM" in proc.stderr


def test_importing_the_plugin_does_not_import_playwright() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runner.builtins.page_title, sys; print('playwright' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --- options ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        pytest.param(
            {"url": "http://x/", "expect_title": "a", "expect_title_regex": "a"},
            "not both",
            id="both-expectations",
        ),
        pytest.param(
            {"url": "http://x/", "expect_title_regex": "(unclosed"},
            "not a valid regular expression",
            id="bad-regex",
        ),
        pytest.param({"url": "ftp://x/"}, "http:// or https://", id="not-http"),
        pytest.param({"url": "http://x/", "browser": "lynx"}, "browser", id="unknown-browser"),
        pytest.param({"url": "http://x/", "wait_until": "idle"}, "wait_until", id="bad-wait"),
        pytest.param({"url": "http://x/", "title": "a"}, "title", id="unknown-key"),
    ],
)
def test_options_are_validated(options: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        PageTitleOptions.model_validate(options)


def test_options_defaults() -> None:
    options = PageTitleOptions.model_validate({"url": "https://example.test/"})
    assert (options.browser, options.wait_until) == ("chromium", "load")
    assert options.expect_title is None and options.expect_title_regex is None
