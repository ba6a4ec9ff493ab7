"""The status page in a real headless Chromium against a real daemon on 127.0.0.1:
every state (up, failing, down, unknown, maintenance; services up and down) told
apart in words the badges share, not-ok first, local times with their age, bar
tooltips, no console error, no horizontal scroll at 1280x800 and at 390 px, and
every card greyed out with "no data since HH:MM" once the daemon is gone.

Screenshots are kept in the test's temporary folder (status-*.png)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from helpers import RunnerProcess, wait_until
from runner.builtins.browser.page_title import CHROMIUM_ARGS, BrowserNotFoundError, find_chromium

WriteConfig = Callable[..., Path]

#: The viewer's zone and locale: +05:45, so a time left in UTC cannot pass.
ZONE, LOCALE = "Asia/Kathmandu", "en-GB"
LONG = "a-job-name-much-longer-than-a-phone-is-wide-and-without-any-space-in-it"
#: data-job of the checks, as the page orders them: not ok first, then config order.
ORDER = ["broken", "flaky", "stuck", "held", "nap", "beat", LONG]
WORDS = {
    "broken": "down",
    "flaky": "failing",
    "stuck": "unknown",
    "held": "maintenance",
    "nap": "up",
    "beat": "up",
    LONG: "up",
}
SERVICES = {"wobbly": "down", "echo": "up"}
SYMBOLS = {"up": "✔", "failing": "⚠", "down": "✖", "unknown": "?", "maintenance": "⚒"}


def _chromium() -> str:
    try:
        return find_chromium()
    except BrowserNotFoundError as exc:
        import os

        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required under CI: {exc}", pytrace=False)
        pytest.skip(f"no Chromium (scripts/dev.sh setup installs it): {exc}")


def get(url: str, data: bytes | None = None) -> tuple[int, str]:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        return r.status, r.read().decode()


@pytest.fixture
def daemon(write_config: WriteConfig, testplugins: Path) -> Iterator[tuple[RunnerProcess, str]]:
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    config = write_config(
        f"""
        http: {{listen: "127.0.0.1:0"}}
        history: {{flush_every: 50ms}}
        defaults: {{interval: 1h}}
        maintenance:
          - {{name: upgrade, start: "{start}", end: "{end}", jobs: [held]}}
        jobs:
          - {{name: nap, plugin: sleep, options: {{seconds: 0}}}}
          - {{name: flaky, plugin: raises, failure_threshold: 3, options: {{message: once}}}}
          - {{name: broken, plugin: raises, failure_threshold: 1, options: {{message: kaput}}}}
          - {{name: stuck, plugin: hangs, timeout: 1h}}
          - {{name: held, plugin: sleep, options: {{seconds: 0}}}}
          - {{name: beat, plugin: heartbeat, options: {{period: 1h}}}}
          - {{name: {LONG}, plugin: sleep, options: {{seconds: 0}}}}
          - {{name: echo, plugin: echo-listener, options: {{port: 0}}}}
          - {{name: wobbly, plugin: flaky-service, options: {{message: port taken}}}}
        """
    )
    with RunnerProcess("serve", str(config)) as runner:
        base = f"http://127.0.0.1:{runner.wait_for(event='http.started')[0]['port']}"
        for job in ("nap", "flaky", "broken", "held", LONG):
            runner.wait_for(event="job.finished", job=job)
        runner.wait_for(event="service.started", job="echo")
        runner.wait_for(event="service.failed", job="wobbly")
        # The heartbeat: ok, a failure with a message, ok (three bar cells).
        for count, (path, body) in enumerate(
            [("/ping/beat", None), ("/ping/beat/3", b"disk full"), ("/ping/beat", None)], 1
        ):
            assert get(base + path, body) == (200, "OK")
            runner.wait_for(event="job.finished", job="beat", count=count)
        # History (50 ms behind) holds beat's last run: its tooltips can be matched.
        wait_until(
            lambda: len(json.loads(get(f"{base}/api/jobs/beat/history")[1])) == 3,
            10,
            "beat's three runs stored",
        )
        yield runner, base


async def _open(pw: Any, base: str, width: int, height: int) -> tuple[Any, Any, dict[str, list]]:
    browser = await pw.chromium.launch(executable_path=_chromium(), args=list(CHROMIUM_ARGS))
    context = await browser.new_context(
        viewport={"width": width, "height": height}, locale=LOCALE, timezone_id=ZONE
    )
    page = await context.new_page()
    seen: dict[str, list] = {"console": [], "errors": [], "requests": [], "failed": []}
    page.on("console", lambda m: seen["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on(
        "response", lambda r: seen["failed"].append((r.status, r.url)) if r.status >= 400 else None
    )
    await page.goto(f"{base}/")
    await page.wait_for_function("document.querySelectorAll('#jobs .job').length === 7")
    await page.wait_for_function("document.querySelectorAll('#services .job').length === 2")
    return browser, page, seen


def _local(iso: str) -> str:
    """``iso`` (UTC, as the API writes it) as the viewer's clock shows it today."""
    at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return at.astimezone(ZoneInfo(ZONE)).strftime("%H:%M:%S")


def _tooltip(run: dict[str, Any]) -> str:
    """A bar cell's tooltip for ``run``: time, status and message."""
    message = run.get("message")
    return f"{_local(run['finished_at'])} · {run['status']}" + (f" · {message}" if message else "")


@pytest.mark.parametrize(
    ("width", "height"), [pytest.param(1280, 800, id="desktop"), pytest.param(390, 844, id="phone")]
)
async def test_the_page_tells_every_state_apart_in_the_words_of_the_badges(
    daemon: tuple[RunnerProcess, str], tmp_path: Path, width: int, height: int
) -> None:
    from playwright.async_api import async_playwright

    _, base = daemon
    api = {row["job"]: row for row in json.loads(get(f"{base}/api/status")[1])}
    async with async_playwright() as pw:
        browser, page, seen = await _open(pw, base, width, height)
        try:
            jobs = await page.eval_on_selector_all(
                "#jobs .job",
                """cards => cards.map(c => ({
                    job: c.dataset.job, word: c.dataset.state,
                    state: c.querySelector('.state').textContent,
                    since: c.querySelector('.since').textContent,
                    datetime: c.querySelector('.since time')?.dateTime ?? null,
                    uptime: c.querySelector('.uptime').textContent,
                    cells: [...c.querySelectorAll('.bar span')].map(s => s.title),
                }))""",
            )
            services = await page.eval_on_selector_all(
                "#services .job",
                """cards => cards.map(c => ({job: c.dataset.job, word: c.dataset.state,
                    state: c.querySelector('.state').textContent,
                    error: c.querySelector('.error')?.textContent ?? null}))""",
            )
            summary = await page.locator("#summary").inner_text()
            overflow = await page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            shot = tmp_path / f"status-{width}.png"
            await page.screenshot(path=str(shot), full_page=True)
            beat_cells: list[str] = []
            tapped = ""
            if width > 1000:  # a pointer: hovering a bar fetches its tooltips
                await page.hover("[data-job='beat'] .bar span:first-child")
                await page.wait_for_function(
                    "document.querySelector(\"[data-job='beat'] .bar span\").title.includes('·')"
                )
                beat_cells = await page.eval_on_selector_all(
                    "[data-job='beat'] .bar span", "cells => cells.map(c => c.title)"
                )
            else:  # a phone has no hover: a tap shows the tooltip under the bar
                await page.click("[data-job='beat'] .bar span:nth-child(2)")
                detail = page.locator("[data-job='beat'] .cell-detail")
                await detail.filter(has_text="exit status 3").wait_for()
                tapped = await detail.inner_text()
                await page.screenshot(path=str(tmp_path / "status-390-tapped.png"), full_page=True)
        finally:
            await browser.close()

    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 5000
    # Not ok first (down, failing, no result, maintenance), then config order.
    assert [j["job"] for j in jobs] == ORDER
    assert {j["job"]: j["word"] for j in jobs} == WORDS
    assert all(j["state"] == f"{SYMBOLS[j['word']]} {j['word']}" for j in jobs)
    assert [(s["job"], s["word"], s["state"]) for s in services] == [
        ("wobbly", "down", "✖ down"),
        ("echo", "up", "✔ up"),
    ]
    assert "port taken" in services[0]["error"] and services[1]["error"] is None
    assert summary.startswith("1 down, 1 failing, 1 unknown, 1 in maintenance, 3 of 7 up")
    assert summary.endswith("; 1 of 2 services not up")

    # The same words as /api/status's `down` and the badges.
    assert (api["broken"]["state"], api["broken"]["down"]) == ("failing", True)
    assert (api["flaky"]["state"], api["flaky"]["down"]) == ("failing", False)
    for job, word in {**WORDS, **SERVICES}.items():
        svg = get(f"{base}/badge/{urllib.request.quote(job, safe='')}.svg")[1]
        said = re.search(r'aria-label="[^"]*: ([^"]*)"', svg)
        assert said is not None
        assert said.group(1) == (f"service {word}" if job in SERVICES else word), job

    # Times in the viewer's zone, with their age; one uptime format.
    by_job = {j["job"]: j for j in jobs}
    broken = by_job["broken"]
    assert broken["datetime"] == api["broken"]["since"]
    assert re.fullmatch(
        rf"since {re.escape(_local(api['broken']['since']))} \((\d+m )?\d+s ago\)", broken["since"]
    ), broken["since"]
    assert by_job["stuck"]["since"] == "since —"
    assert by_job["nap"]["uptime"] == "uptime 24h 100.00% · 7d 100.00% · 30d 100.00%"
    assert re.fullmatch(r"uptime 24h 0\.00% · 7d \S+ · 30d \S+", broken["uptime"])
    # The last cell's tooltip: time, status and message.
    last = api["broken"]["last"]
    assert broken["cells"] == [f"{_local(last['finished_at'])} · error · kaput"]
    if beat_cells:
        runs = json.loads(get(f"{base}/api/jobs/beat/history")[1])[::-1]
        assert beat_cells == [_tooltip(r) for r in runs]
        assert [r["status"] for r in runs] == ["ok", "fail", "ok"]
        assert "exit status 3" in beat_cells[1]
    if tapped:
        runs = json.loads(get(f"{base}/api/jobs/beat/history")[1])[::-1]
        assert tapped == _tooltip(runs[1])

    assert overflow[0] <= overflow[1], f"horizontal scroll at {width}px: {overflow}"
    assert not seen["errors"], seen["errors"]
    assert not [m for m in seen["console"] if m[0] in ("error", "warning")], seen["console"]
    assert not seen["failed"], seen["failed"]
    assert not [u for u in seen["requests"] if u.endswith("/favicon.ico")]
    assert all(u.startswith(base) or u.startswith("data:") for u in seen["requests"])


async def test_every_card_greys_out_with_no_data_since_when_the_daemon_is_gone(
    daemon: tuple[RunnerProcess, str], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    runner, base = daemon
    async with async_playwright() as pw:
        browser, page, seen = await _open(pw, base, 390, 844)
        try:
            updated = await page.locator("#updated").inner_text()
            assert runner.stop() == 0
            await page.evaluate("refresh()")  # the page's own 10 s timer, run now
            await page.wait_for_function("document.body.classList.contains('stale')")
            notes = await page.locator(".job .stale-note").all_inner_texts()
            filters = await page.eval_on_selector_all(
                ".job", "cards => cards.map(c => getComputedStyle(c).filter)"
            )
            summary = await page.locator("#summary").inner_text()
            states = await page.locator("#jobs .job").evaluate_all(
                "cards => cards.map(c => c.dataset.state)"
            )
            overflow = await page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            await page.screenshot(path=str(tmp_path / "status-stale.png"), full_page=True)
        finally:
            await browser.close()

    hhmm = re.fullmatch(r"updated (\d\d:\d\d):\d\d", updated)
    assert hhmm is not None, updated
    assert len(notes) == 9 and set(notes) == {f"no data since {hhmm.group(1)}"}
    assert set(filters) == {"grayscale(1)"}
    assert summary == f"cannot reach the daemon: no data since {hhmm.group(1)}"
    assert [WORDS[j] for j in ORDER] == states  # the last known states stay, greyed
    assert overflow[0] <= overflow[1]
    assert not seen["errors"], seen["errors"]
    # The only console errors are the browser's own about the refused requests.
    assert all(
        "ERR_CONNECTION_REFUSED" in text for kind, text in seen["console"] if kind == "error"
    )


def _verdana_or_its_fallback() -> bool:
    """Whether fontconfig gives Verdana or DejaVu Sans (its fallback in a badge's
    font-family, with much the same widths) for Verdana."""
    import shutil
    import subprocess

    if shutil.which("fc-match") is None:
        return False
    found = subprocess.run(
        ["fc-match", "-f", "%{family}", "Verdana"], capture_output=True, text=True, check=False
    ).stdout
    return "Verdana" in found or "DejaVu Sans" in found


async def test_badge_text_keeps_its_padding_in_chromium(
    daemon: tuple[RunnerProcess, str],
) -> None:
    """Every badge of the daemon drawn by Chromium: each text inside its half with
    5 px on both sides (the longest name, ``maintenance``, ``service down``), each
    clipped to its own size; and, where Verdana or DejaVu Sans is installed, the
    font's own widths within 5% of the table's."""
    from playwright.async_api import async_playwright

    _, base = daemon
    badges = {job: get(f"{base}/badge/{job}.svg")[1] for job in [*WORDS, *SERVICES]}
    drawn: dict[str, list[list[float]]] = {}
    natural: dict[str, list[float]] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=_chromium(), args=list(CHROMIUM_ARGS))
        try:
            page = await browser.new_page()
            # All inline in one page, as a page that embeds them would have them.
            await page.set_content("".join(f"<div>{svg}</div>" for svg in badges.values()))
            for index, job in enumerate(badges):
                svg = f"div:nth-child({index + 1}) svg"
                drawn[job] = await page.eval_on_selector(
                    svg,
                    """svg => [...svg.querySelectorAll('text.label, text.message')].map(t => {
                        const box = t.getBBox();  // in the text's own units: 10x
                        const rect = svg.querySelector('rect.' + t.getAttribute('class'));
                        const x = rect.x.baseVal.value, end = x + rect.width.baseVal.value;
                        return [x, box.x / 10, (box.x + box.width) / 10, end];
                    })""",
                )
                # The badge is clipped by its own clip path, as wide as itself.
                clip = await page.eval_on_selector(
                    svg,
                    """svg => {
                        const id = svg.querySelector('g[clip-path]').getAttribute('clip-path');
                        const rect = document.querySelector(id.slice(4, -1) + ' rect');
                        return [rect.width.baseVal.value, svg.width.baseVal.value];
                    }""",
                )
                assert clip[0] == clip[1], (job, clip)
                # The same texts as the font draws them without textLength.
                natural[job] = await page.eval_on_selector(
                    svg,
                    """svg => [...svg.querySelectorAll('text.label, text.message')].map(t => {
                        t.removeAttribute('textLength');
                        return t.getComputedTextLength() / 10;
                    })""",
                )
        finally:
            await browser.close()
    for job, halves in drawn.items():
        for left, start, end, right in halves:
            assert start - left >= 4.5 and right - end >= 4.5, (job, left, start, end, right)
    if _verdana_or_its_fallback():
        from runner.badges import text_width

        for job, widths in natural.items():
            word = WORDS.get(job) or f"service {SERVICES[job]}"
            for text, width in zip((job, word), widths, strict=True):
                assert abs(width - text_width(text)) <= 0.05 * text_width(text), (text, width)
