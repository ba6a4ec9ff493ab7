"""page-title in a real headless Chromium against pages served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from helpers import (
    RunnerProcess,
    chromium_browsers,
    descendants,
    playwright_drivers,
    processes,
)
from runner.builtins.browser import evidence as artifacts
from runner.builtins.browser.page_title import (
    BrowserNotFoundError,
    PageTitle,
    PageTitleOptions,
    find_chromium,
)
from runner.builtins.browser.session import NODE_COMPILE_CACHE_DIR
from runner.plugin import Status
from runner.resources import Resources
from runner.testing import run_check

HELLO = "Hello runner"
METRICS = (
    "ttfb_ms",
    "dom_content_loaded_ms",
    "load_ms",
    "lcp_ms",
    "cls",
    "transfer_bytes",
    "requests",
)


#: A page that renders (red) but has a missing image, logs an error and throws.
BROKEN = """<html><head><title>Broken</title></head>
<body style="background: rgb(220, 20, 20); margin: 0">
<h1 style="color: white">Something broke</h1>
<img src="/missing.png">
<script>console.error("boom from the page"); throw new Error("kaput");</script>
</body></html>"""

IMAGE_DELAY = 0.4
SLOW_IMAGE = """<html><head><title>Slow image</title></head>
<body><p>text first</p><img src="/slow.png" width="400" height="300"></body></html>"""


def make_png(width: int, height: int, pixels: bytes) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` (3 bytes each, row by row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    stride = width * 3
    raw = b"".join(b"\0" + pixels[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def read_png(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes):
    width, height and every pixel, row by row."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour in (2, 6), (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    pixels: list[tuple[int, ...]] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upleft = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else upleft
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(tuple(line[x * channels : x * channels + 3]) for x in range(width))
        previous = line
    return width, height, pixels


#: Noise, not a solid colour: Chromium does not count low-content images for LCP.
SLOW_PNG = make_png(400, 300, random.Random(10).randbytes(400 * 300 * 3))


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
        elif self.path == "/slow-doc":
            time.sleep(0.25)  # a page that takes 0.25 s to answer (this server is threaded)
            self._html(f"<html><head><title>{HELLO}</title></head><body>hi</body></html>")
        elif self.path == "/refresh":
            # A placeholder that sends the browser on after 0.2 s.
            self._html(
                '<html><head><meta http-equiv="Refresh" content="0.2; url=/chapter">'
                "<title>Loading ...</title></head></html>"
            )
        elif self.path == "/refresh-later":
            self._html(
                "<html><head><meta http-equiv=refresh content='600;URL=/chapter'>"
                "<title>Loading ...</title></head></html>"
            )
        elif self.path == "/chapter":
            # DocBook puts a no-break space after the number.
            self._html("<html><head><title>Chapter 10.\u00a0Networking</title></head></html>")
        elif self.path == "/broken":
            self._html(BROKEN)
        elif self.path == "/slow-image":
            self._html(SLOW_IMAGE)
        elif self.path == "/slow.png":
            # Delayed for the metrics test, so load and LCP come after it.
            self.server.release.wait(IMAGE_DELAY)  # type: ignore[attr-defined]
            image = SLOW_PNG
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)
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


def _read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def _is_file(path: str | Path) -> bool:
    return Path(path).is_file()


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
    fields = dict(result.fields)
    assert {k: fields.pop(k) for k in ("title", "url", "http_status")} == {
        "title": HELLO,
        "url": f"{site}/",
        "http_status": 200,
    }
    # What the page did besides: nothing failed, and no evidence for a pass.
    assert fields.pop("failed_requests") == 0
    assert fields.pop("console_errors") == 0
    assert set(fields.pop("metrics")) == set(METRICS)
    assert fields == {}


async def test_a_meta_refresh_is_followed_and_a_no_break_space_matches_a_space(
    site: str, resources: Resources
) -> None:
    result = await run_check(
        PageTitle,
        {"url": f"{site}/refresh", "expect_title": "Chapter 10. Networking"},
        timeout=15,
        resources=resources,
    )
    assert result.status is Status.OK, result.message
    assert result.fields["url"] == f"{site}/chapter"
    assert result.fields["title"] == "Chapter 10.\u00a0Networking"  # the exact title
    regex = await run_check(
        PageTitle,
        {"url": f"{site}/chapter", "expect_title_regex": "^Chapter 10. Networking$"},
        timeout=15,
        resources=resources,
    )
    assert regex.status is Status.OK, regex.message


async def test_a_meta_refresh_past_the_timeout_is_said_not_judged(
    site: str, resources: Resources
) -> None:
    result = await run_check(
        PageTitle,
        {"url": f"{site}/refresh-later", "expect_title": "Chapter 10. Networking"},
        timeout=8,
        resources=resources,
    )
    assert result.status is Status.FAIL
    assert result.message == (
        f"the page redirects to {site}/chapter with <meta http-equiv=refresh> after 600s,"
        " past the job's timeout: its title is not the final one"
    )
    assert result.fields["meta_refresh"] == {"delay_s": 600.0, "url": f"{site}/chapter"}
    assert result.fields["title"] == "Loading ..."


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
    # 4 s: the evidence's share is a quarter of it, and half of what is left
    # then goes to the screenshot (about 0.45 s). With 1.5 s that was 0.15 s,
    # which a loaded machine (a CPU burner beside three benchmarks) missed:
    # the run then says screenshot_error, as designed, and this test failed.
    result = await run_check(PageTitle, {"url": f"{site}/stalled"}, timeout=4, resources=resources)
    assert result.status is Status.TIMEOUT, result.message
    assert time.monotonic() - started < 5.5
    # Taken within the run's own budget, before the daemon's cancellation.
    assert "screenshot" in result.fields, result.fields
    assert _is_file(result.fields["screenshot"]), result.fields
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
    # The browser's own error page is not the target: no URL or metrics of it.
    assert "metrics" not in result.fields and "url" not in result.fields
    assert result.fields["failed_requests"] == 1


async def test_runs_share_one_browser_and_closing_leaves_no_process(site: str) -> None:
    resources = Resources()
    try:
        # Concurrent runs, each in its own task as the daemon runs them.
        results = await asyncio.gather(
            *(
                # Launching the browser counts against the first runs' timeout,
                # and two wait for a page slot: 10 s was too short under a CPU
                # burner on a loaded 2-core machine (on main too).
                run_check(
                    PageTitle,
                    {"url": site, "expect_title": HELLO},
                    timeout=30,
                    resources=resources,
                )
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


async def test_the_driver_keeps_its_compiled_code_in_the_state_folder(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.delenv("NODE_COMPILE_CACHE", raising=False)
    monkeypatch.delenv("NODE_DISABLE_COMPILE_CACHE", raising=False)
    resources = Resources()
    try:
        result = await run_check(PageTitle, {"url": site}, timeout=30, resources=resources)
        assert result.status is Status.OK, result.message
        # Set for the driver's start only: nothing else this process starts gets it.
        assert "NODE_COMPILE_CACHE" not in os.environ
    finally:
        await resources.aclose()
    cache = tmp_path / "state" / NODE_COMPILE_CACHE_DIR
    assert cache.is_dir() and any(cache.rglob("*")), "Node wrote no compile cache"


async def test_a_compile_cache_the_user_chose_is_left_alone(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("NODE_COMPILE_CACHE", str(tmp_path / "mine"))
    resources = Resources()
    try:
        result = await run_check(PageTitle, {"url": site}, timeout=30, resources=resources)
        assert result.status is Status.OK, result.message
        assert os.environ["NODE_COMPILE_CACHE"] == str(tmp_path / "mine")
    finally:
        await resources.aclose()
    assert not (tmp_path / "state" / NODE_COMPILE_CACHE_DIR).exists()
    assert any((tmp_path / "mine").rglob("*"))


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


# --- evidence and metrics ---------------------------------------------------


async def test_failing_page_leaves_a_real_screenshot_a_trace_and_diagnostics(
    site: str, resources: Resources, tmp_path: Path
) -> None:
    result = await run_check(
        PageTitle,
        {"url": f"{site}/broken", "expect_title": "Fine", "trace": "on-failure"},
        timeout=15,
        job="broken page",
        resources=resources,
    )
    assert result.status is Status.FAIL, result.message
    fields = result.fields
    # Under the state folder (the tests point XDG_STATE_HOME at tmp_path), per job.
    shot = Path(fields["screenshot"])
    assert shot.parent == tmp_path / "state" / "runner" / "artifacts" / "broken_page"
    assert shot.suffix == ".png"
    width, height, pixels = read_png(_read(shot))
    assert (width, height) == (1280, 720)  # the default viewport; the page is no taller
    colours = Counter(pixels)
    assert colours[(220, 20, 20)] > 0.8 * width * height, colours.most_common(3)
    assert len(colours) > 2, "only the background: the heading was not drawn"
    assert zipfile.is_zipfile(fields["trace"])
    assert Path(fields["trace"]).parent == shot.parent

    assert fields["http_status"] == 200
    assert fields["failed_requests"] == 1
    assert fields["failed_request_examples"] == [f"404 GET {site}/missing.png"]
    assert fields["console_errors"] == 2
    assert fields["console_error_examples"] == ["boom from the page", "uncaught kaput"]


@pytest.mark.parametrize(
    ("screenshot", "expect_title", "saved"),
    [
        pytest.param("on-failure", HELLO, False, id="on-failure-passing"),
        pytest.param("always", HELLO, True, id="always-passing"),
        pytest.param("never", "Goodbye", False, id="never-failing"),
    ],
)
async def test_screenshot_option(
    site: str, resources: Resources, screenshot: str, expect_title: str, saved: bool
) -> None:
    result = await run_check(
        PageTitle,
        {"url": site, "expect_title": expect_title, "screenshot": screenshot},
        timeout=15,
        resources=resources,
    )
    assert ("screenshot" in result.fields) is saved, result.fields
    if saved:
        assert read_png(_read(result.fields["screenshot"]))[0] == 1280


async def test_page_metrics_are_plausible_and_max_load_fails_a_slow_page(
    site: str, resources: Resources
) -> None:
    result = await run_check(
        PageTitle, {"url": f"{site}/slow-image"}, timeout=15, resources=resources
    )
    assert result.status is Status.OK, result.message
    m = result.fields["metrics"]
    delay_ms = IMAGE_DELAY * 1000
    assert 0 < m["ttfb_ms"] <= m["dom_content_loaded_ms"] <= m["load_ms"]
    assert m["dom_content_loaded_ms"] < delay_ms <= m["load_ms"]
    # The image is the largest element, painted once it arrived.
    assert delay_ms <= m["lcp_ms"]
    assert m["cls"] == 0  # the image has its size: nothing moved
    assert m["requests"] == 2
    assert m["transfer_bytes"] > len(SLOW_PNG)

    slow = await run_check(
        PageTitle,
        {"url": f"{site}/slow-image", "max_load": "200ms", "max_lcp": "10s"},
        timeout=15,
        resources=resources,
    )
    assert slow.status is Status.FAIL
    assert (slow.message or "").startswith("load took "), slow.message
    assert "over the limit of 200ms" in (slow.message or "")
    assert _is_file(slow.fields["screenshot"])


def test_artifacts_keep_the_newest_and_drop_the_old(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    now = time.time()
    stems = [artifacts.new_stem(folder, now - 10 + i) for i in range(5)]
    for stem in stems:
        (folder / f"{stem}.png").write_bytes(b"x")
        (folder / f"{stem}-trace.zip").write_bytes(b"x")
    old = artifacts.new_stem(folder, now - 3 * 86400)
    (folder / f"{old}.png").write_bytes(b"x")
    os.utime(folder / f"{old}.png", (now - 3 * 86400, now - 3 * 86400))
    # The old one is gone by age, then all but the newest four by count.
    assert artifacts.prune(folder, keep=4, keep_for=86400, now=now) == 1 + 2
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{stem}{suffix}" for stem in stems[1:] for suffix in (".png", "-trace.zip")
    )


def test_artifact_folder_names_hold_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.secrets import secret_masker

    secret_masker.set(["hunter2-secret"])
    try:
        folder = artifacts.job_folder(Path("/a"), "login hunter2-secret/../x")
    finally:
        secret_masker.set([])
    assert folder.parent == Path("/a")
    assert "hunter2" not in str(folder)
    assert "/" not in folder.name and not folder.name.startswith(".")


# --- a soak: processes and memory stay flat --------------------------------


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _soak(site: str, tmp_path: Path, checks: int) -> None:
    """``runner serve`` until ``checks`` page-title runs finished, sampling the
    browser's processes and their PSS; after warm-up, both must stay flat."""
    config = tmp_path / "soak.yaml"
    config.write_text(
        "history: {enabled: false}\njobs:\n"
        + "".join(
            f"  - {{name: soak{i}, plugin: page-title, interval: 100ms, "
            f"options: {{url: '{site}/', expect_title: {HELLO}}}}}\n"
            for i in range(2)
        )
    )
    samples: list[tuple[int, int, int]] = []  # (runs finished, processes, PSS KiB)
    with RunnerProcess("serve", str(config)) as runner:
        deadline = time.monotonic() + 30 + checks
        while (done := len(runner.find(event="job.finished"))) < checks:
            assert time.monotonic() < deadline, f"only {done} of {checks} runs finished"
            chromium = {
                pid
                for pid in descendants(runner.proc.pid)
                if "chrom" in _cmdline(pid).decode(errors="replace")
            }
            samples.append((done, len(chromium), sum(_pss_kib(pid) for pid in chromium)))
            time.sleep(0.1)
        assert runner.stop() == 0
    results = runner.find(event="job.finished")
    assert {r["status"] for r in results} == {"ok"}, [r.get("message") for r in results]
    warm = [s for s in samples if checks // 5 <= s[0] < 2 * checks // 5]
    last = [s for s in samples if s[0] >= 4 * checks // 5]
    assert warm and last, samples

    def peak(window: list[tuple[int, int, int]], index: int) -> int:
        return max(s[index] for s in window)

    def median(window: list[tuple[int, int, int]], index: int) -> int:
        return sorted(s[index] for s in window)[len(window) // 2]

    # A renderer more or less at the moment of a sample is the runs, not a leak.
    assert peak(last, 1) <= peak(warm, 1) + 2, (warm, last)
    assert median(last, 2) <= median(warm, 2) * 1.25, (warm, last)


def test_50_checks_keep_processes_and_memory_flat(site: str, tmp_path: Path) -> None:
    # The short version (a check costs about 0.3-0.6 s of a 2-core
    # machine); the 500-check soak is marked slow.
    _soak(site, tmp_path, 50)


@pytest.mark.slow
def test_five_hundred_checks_keep_processes_and_memory_flat(site: str, tmp_path: Path) -> None:
    _soak(site, tmp_path, 500)


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
        [sys.executable, "-m", "runner.builtins.browser.page_title", "--find-browser"],
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
        [sys.executable, "-m", "runner.builtins.browser.page_title", "--find-browser"],
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
            "import runner.builtins.browser.page_title, sys; print('playwright' in sys.modules)",
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


def test_a_hundred_page_checks_in_one_runner_run_all_get_their_page(
    site: str, tmp_path: Path
) -> None:
    """Issue 10: 100 page checks with a 10 s timeout each, 2 pages, each page
    0.25 s: at least 12.5 s of work. Waiting for a page is not on a run's
    clock: 100 results, all ok, though the last waited longer than their
    timeout."""
    jobs = "".join(
        f"  - {{name: page-{i}, plugin: page-title, timeout: 10s,"
        f" options: {{url: '{site}/slow-doc', expect_title: '{HELLO}', screenshot: never}}}}\n"
        for i in range(100)
    )
    config = tmp_path / "pages.yaml"
    config.write_text("history: {enabled: false}\njobs:\n" + jobs)
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(config), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    results = [e for e in events if e["event"] == "job.finished"]
    assert len(results) == 100
    assert Counter(r["status"] for r in results) == {"ok": 100}
    assert max(r["queued_ms"] for r in results) > 10_000
    assert all(r["duration_ms"] < 10_000 for r in results)


# --- isolation: context (default) and page ----------------------------------


class _CookieHandler(BaseHTTPRequestHandler):
    """A page that sets a cookie and says in its title whether one came back."""

    def do_GET(self) -> None:
        came_back = "visited=yes" in (self.headers.get("Cookie") or "")
        title = "cookie came back" if came_back else "no cookie"
        body = f"<html><head><title>{title}</title></head><body>{title}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Set-Cookie", "visited=yes; Path=/; Max-Age=3600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def cookie_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CookieHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="cookie-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def _title(url: str, job: str, resources: Resources, **options: str) -> str:
    result = await run_check(
        PageTitle, {"url": url, **options}, job=job, timeout=15, resources=resources
    )
    assert result.status is Status.OK, result.message
    return str(result.fields["title"])


async def test_page_isolation_shares_cookies_between_runs_of_one_job_only(
    cookie_site: str, resources: Resources
) -> None:
    page = {"isolation": "page"}
    assert await _title(cookie_site, "shop", resources, **page) == "no cookie"
    assert await _title(cookie_site, "shop", resources, **page) == "cookie came back"
    # Another job, same browser and same site: its own context, no cookie.
    assert await _title(cookie_site, "blog", resources, **page) == "no cookie"
    assert await _title(cookie_site, "blog", resources, **page) == "cookie came back"
    assert await _title(cookie_site, "shop", resources, **page) == "cookie came back"
    # One browser and a context per job, kept; each job keeps one emptied
    # page, and Chromium may keep one spare renderer: five pages left open
    # would be five renderers or more.
    assert len(resources) == 3
    assert _browser_count() == 1
    settled = await _wait_for(lambda: _page_renderer_count() <= 3, deadline_s=5)
    assert settled, f"{_page_renderer_count()} page renderers outlived their runs"


async def test_context_isolation_shares_nothing(cookie_site: str, resources: Resources) -> None:
    # The default, and said explicitly: never a cookie from an earlier run.
    assert await _title(cookie_site, "shop", resources) == "no cookie"
    assert await _title(cookie_site, "shop", resources) == "no cookie"
    assert await _title(cookie_site, "shop", resources, isolation="context") == "no cookie"
    # A page-isolated job's cookie does not reach a context-isolated run of it.
    assert await _title(cookie_site, "shop", resources, isolation="page") == "no cookie"
    assert await _title(cookie_site, "shop", resources) == "no cookie"
    assert len(resources) == 2  # the browser, and the page-isolated run's context


async def test_page_isolation_survives_a_killed_browser(
    cookie_site: str, resources: Resources
) -> None:
    page = {"isolation": "page"}
    assert await _title(cookie_site, "shop", resources, **page) == "no cookie"
    chromium = _chromium()
    (browser,) = [pid for pid, ppid in chromium.items() if ppid not in chromium]
    os.kill(browser, 9)
    # A run that starts before Playwright has noticed the browser is gone is
    # an error result, not a crash; the daemon's next run gets a new browser.
    for _ in range(3):
        after = await run_check(
            PageTitle, {"url": cookie_site, **page}, job="shop", timeout=15, resources=resources
        )
        if after.status is Status.OK:
            break
        assert after.status is Status.ERROR, after
    # A new context for the job: the cookie went with the old browser.
    assert after.fields.get("title") == "no cookie", after
    assert await _title(cookie_site, "shop", resources, **page) == "cookie came back"
    assert _browser_count() == 1
    assert len(resources) == 2
    await resources.aclose()
    assert await _wait_for(lambda: not _chromium_pids(), deadline_s=10), _descendants()


def _drivers() -> set[int]:
    return playwright_drivers(descendants(os.getpid()))


async def test_a_run_cancelled_during_a_relaunch_leaves_no_driver(
    site: str, resources: Resources
) -> None:
    # A relaunch closes the old browser and its Playwright driver; the run
    # that found it gone is cancelled (at its timeout, say) during that close.
    # The close is the resources', so it finishes anyway.
    options = {"url": site, "expect_title": HELLO}
    first = await run_check(PageTitle, options, timeout=15, resources=resources)
    assert first.status is Status.OK, first.message
    ((old_driver,), (browser,)) = _drivers(), chromium_browsers(descendants(os.getpid()))
    shared = await resources.get(("browser", "chromium", None), lambda: pytest.fail("cached"))
    os.kill(browser, 9)
    assert await _wait_for(lambda: not shared.browser.is_connected(), deadline_s=10)

    run = asyncio.create_task(run_check(PageTitle, options, timeout=15, resources=resources))
    # The old browser leaves the cache as its close starts; the old driver
    # exits at the close's end: between the two, cancel the run.
    async with asyncio.timeout(10):
        while len(resources):
            assert not run.done(), run
            await asyncio.sleep(0)
    assert processes([old_driver]), "the close was over before the run could be cancelled"
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # The run ended at its cancellation, not when the close was done (which
    # takes round trips to the driver and its exit): the close is not the run's.
    assert processes([old_driver]), "the cancelled run waited for the close"
    # The close went on: the old driver exits, and the cancelled run started
    # no new one.
    assert await _wait_for(lambda: not _drivers(), deadline_s=10), _drivers()
    # The next run relaunches: one driver, one browser.
    again = await run_check(PageTitle, options, timeout=15, resources=resources)
    assert again.status is Status.OK, again.message
    assert len(_drivers()) == 1 and old_driver not in _drivers()
    assert len(chromium_browsers(descendants(os.getpid()))) == 1
    await resources.aclose()
    assert await _wait_for(lambda: not _drivers(), deadline_s=10), _drivers()


async def test_page_isolation_keeps_one_trace_per_failed_run(
    cookie_site: str, resources: Resources, tmp_path: Path
) -> None:
    options = {
        "url": cookie_site,
        "isolation": "page",
        "trace": "on-failure",
        "screenshot": "never",
        "artifacts_dir": str(tmp_path),
    }
    traces = []
    for _ in range(2):
        failed = await run_check(
            PageTitle,
            {**options, "expect_title": "something else"},
            job="shop",
            timeout=15,
            resources=resources,
        )
        assert failed.status is Status.FAIL, failed.message
        traces.append(failed.fields["trace"])
    passed = await run_check(PageTitle, options, job="shop", timeout=15, resources=resources)
    assert passed.status is Status.OK, passed.message
    assert "trace" not in passed.fields and "trace_error" not in passed.fields
    assert traces[0] != traces[1]
    for trace in traces:
        # Each zip holds its own run: one navigation to the page, not the earlier ones.
        with zipfile.ZipFile(trace) as archive:
            events = b"".join(
                archive.read(name) for name in archive.namelist() if name.endswith(".trace")
            )
        assert events.count(b'"method":"goto"') == 1, events.count(b'"method":"goto"')


async def test_page_isolation_runs_of_one_job_at_once_keep_their_own_pages(
    cookie_site: str, resources: Resources
) -> None:
    # The daemon never overlaps two runs of a job; a caller of the plugin may.
    # The run that ends first must not close the other's page.
    results = await asyncio.gather(
        *(
            run_check(
                PageTitle,
                {"url": cookie_site, "isolation": "page"},
                job="shop",
                timeout=15,
                resources=resources,
            )
            for _ in range(4)
        )
    )
    assert [r.status for r in results] == [Status.OK] * 4, [r.message for r in results]
