"""The HTTP endpoint of a real daemon: metrics parsed by prometheus_client, the JSON
API against the CLI's, the status page in real headless Chromium, auth."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from html import escape
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import RunnerProcess, closed_port, run_cli, wait_until
from runner.badges import HORIZONTAL_PADDING, badge_svg, text_width
from runner.builtins.browser.page_title import CHROMIUM_ARGS, find_chromium

WriteConfig = Callable[..., Path]

NASTY = "<script>window.pwned=1</script>"


def get(url: str, token: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture
def daemon(write_config: WriteConfig, testplugins: Path) -> Iterator[tuple[RunnerProcess, str]]:
    config = write_config(
        f"""
        http: {{listen: "127.0.0.1:0"}}
        history: {{flush_every: 50ms}}
        defaults: {{interval: 1h, failure_threshold: 1}}
        jobs:
          - {{name: nap, plugin: sleep, options: {{seconds: 0}}}}
          - {{name: "{NASTY}", plugin: raises, options: {{message: "<b>bold</b> {NASTY}"}}}}
          - {{name: closed, plugin: http-status, options: {{url: "http://127.0.0.1:{closed_port()}/"}}}}
        """
    )
    with RunnerProcess("serve", str(config)) as runner:
        started = runner.wait_for(event="http.started")[0]
        assert started["host"] == "127.0.0.1"
        runner.wait_for(event="job.finished", count=3)
        yield runner, f"http://127.0.0.1:{started['port']}"


def test_metrics_parse_and_count_what_history_stored(
    daemon: tuple[RunnerProcess, str], write_config: WriteConfig
) -> None:
    runner, base = daemon
    status, text, headers = get(f"{base}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["name"]: s.value for s in families["runner_job_up"].samples}
    assert up == {"nap": 1.0, NASTY: 0.0, "closed": 0.0}
    runs: dict[str, float] = {}
    for sample in families["runner_job_runs"].samples:
        if sample.name == "runner_job_runs_total":
            runs[sample.labels["name"]] = runs.get(sample.labels["name"], 0) + sample.value
    assert runs == {"nap": 1.0, NASTY: 1.0, "closed": 1.0}
    assert {s.labels["name"] for s in families["runner_job_down"].samples if s.value} == {
        NASTY,
        "closed",
    }
    assert "runner_build_info" in families and "runner_loop_lag_seconds" in families
    # Prometheus sets `job` itself: our label is `name`.
    assert all("job" not in s.labels for f in families.values() for s in f.samples)

    # /api/status is runner status --json, and the counts match the history.
    status, body, _ = get(f"{base}/api/status")
    api = {row["job"]: row for row in json.loads(body)}
    assert {name: row["runs"] for name, row in api.items()} == runs
    assert api[NASTY]["last"]["message"] == f"<b>bold</b> {NASTY}"
    # History is written every 50 ms: wait for nap's run to be there.
    history = wait_until(
        lambda: json.loads(get(f"{base}/api/jobs/nap/history?limit=5")[1]), 10, "a stored run"
    )
    assert [r["job"] for r in history] == ["nap"]
    assert runner.stop() == 0
    config = Path(runner.find(event="daemon.starting")[0]["config"])
    cli = {row["job"]: row for row in json.loads(run_cli("status", str(config)).stdout)}
    assert {name: row["runs"] for name, row in cli.items()} == runs
    assert cli["nap"].keys() == api["nap"].keys()


def test_healthz_and_badges(daemon: tuple[RunnerProcess, str]) -> None:
    _, base = daemon
    assert get(f"{base}/healthz")[:2] == (200, "ok\n")
    status, svg, headers = get(f"{base}/badge/nap.svg")
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    assert "nap: up" in svg
    status, svg, _ = get(f"{base}/badge/{urllib.request.quote(NASTY, safe='')}.svg")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert f"{escape(NASTY)}: down" in svg  # failure_threshold 1: down, not failing
    assert get(f"{base}/badge/nope.svg")[0] == 404
    status, body, _ = get(f"{base}/api/status")
    assert {row["job"]: row["down"] for row in json.loads(body)} == {
        "nap": False,
        NASTY: True,
        "closed": True,
    }
    assert json.loads(get(f"{base}/api/services")[1]) == []


#: Widths (px) of texts in 11px Verdana as shields.io's own measure (the npm
#: package anafanafo 2.0.0, run with node) gives them.
SHIELDS_WIDTHS = {
    "build": 26.7,
    "passing": 41.75,
    "up": 13.81,
    "down": 29.49,
    "failing": 33.35,
    "unknown": 50.03,
    "maintenance": 70.98,
    "service up": 56.46,
    "service starting": 85.17,
    "a-much-longer-job-name": 139.85,
    "WWW": 32.64,
    "iiii": 12.08,
    "Ünïcödé ✓": 56.12,
    "日本語": 33.0,  # outside the table: each as wide as "m"
    "<script>": 48.35,
}


@pytest.mark.parametrize("text", list(SHIELDS_WIDTHS))
def test_badge_text_is_measured_as_shields_measures_it(text: str) -> None:
    assert text_width(text) == pytest.approx(SHIELDS_WIDTHS[text], abs=0.005)


def test_badges_are_laid_out_as_shields_lays_them_out() -> None:
    # shields.io's "build | passing" is 88 px: 37 + 51.
    svg = badge_svg("build", "passing", "#4c1")
    assert 'width="88"' in svg and '<rect class="label" width="37"' in svg
    assert '<rect class="message" x="37" width="51"' in svg
    for label, message in [("nap", "down"), ("a-much-longer-job-name", "maintenance")]:
        svg = badge_svg(label, message, "#c62828")
        boxes = [int(w) for w in re.findall(r'<rect class="\w+" (?:x="\d+" )?width="(\d+)"', svg)]
        lengths = [int(n) / 10 for n in re.findall(r'class="\w+" [^>]*textLength="(\d+)"', svg)]
        # Each text is drawn at its measured width (rounded as shields rounds
        # it, within 1 px), with 5 px on each side.
        assert [box - 2 * HORIZONTAL_PADDING for box in boxes] == lengths
        for text, length in zip((label, message), lengths, strict=True):
            assert abs(length - text_width(text)) <= 1


async def test_the_status_page_in_chromium_shows_every_job_as_text_and_stays_local(
    daemon: tuple[RunnerProcess, str], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    _, base = daemon
    requests: list[str] = []
    dialogs: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_chromium(), args=list(CHROMIUM_ARGS)
        )
        try:
            page = await browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: dialogs.append(d.message))
            await page.goto(f"{base}/")
            await page.wait_for_function("document.querySelectorAll('.job').length === 3")
            names = await page.locator(".job .name").all_inner_texts()
            states = await page.locator(".job .state").all_inner_texts()
            await page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
            pwned = await page.evaluate("window.pwned === 1")
            cells = await page.locator(".bar span").count()
            message = await page.locator(f"[data-job='{NASTY}'] .message").inner_text()
        finally:
            await browser.close()
    assert sorted(names) == sorted(["nap", NASTY, "closed"])  # HTML shown as text
    # failure_threshold 1: both failures are down (alerted), not just failing.
    assert "✔ up" in states and states.count("✖ down") == 2
    assert cells == 3  # one result per job so far, one cell each
    assert message == f"error: <b>bold</b> {NASTY}"
    assert not pwned and not dialogs
    assert requests and all(url.startswith(base) for url in requests), requests
    assert (tmp_path / "status-page.png").stat().st_size > 1000


def test_a_public_listen_needs_a_token_and_the_token_guards_every_path_but_healthz(
    write_config: WriteConfig,
) -> None:
    open_to_all = write_config(
        'http: {listen: "0.0.0.0:9150"}\njobs:\n  - {name: nap, plugin: sleep}\n'
    )
    refused = run_cli("check", str(open_to_all))
    assert refused.returncode == 2
    assert f"{open_to_all}:1: http: listen 0.0.0.0:9150 is reachable from other machines" in (
        refused.stderr
    )
    token = "a-token-that-is-long-enough"
    guarded = write_config(
        """
        http: {listen: "127.0.0.1:0", auth: {token: "${RUNNER_TOKEN}"}}
        jobs:
          - {name: nap, plugin: sleep, interval: 1h}
        """
    )
    with RunnerProcess("serve", str(guarded), env={"RUNNER_TOKEN": token}) as runner:
        base = f"http://127.0.0.1:{runner.wait_for(event='http.started')[0]['port']}"
        runner.wait_for(event="job.finished")
        for path in ("/", "/metrics", "/api/status", "/badge/nap.svg"):
            status, _, headers = get(base + path)
            assert status == 401 and "WWW-Authenticate" in headers, path
            assert get(base + path, token="wrong-token-wrong-token")[0] == 401
            assert get(base + path, token=token)[0] == 200, path
        assert get(base + "/healthz")[0] == 200
        pages = [get(base + p, token=token)[1] for p in ("/", "/metrics", "/api/status")]
        assert runner.stop() == 0
    assert all(token not in page for page in pages)
    assert token not in "".join(runner.raw_lines) + runner.stderr


def test_no_secret_from_the_environment_reaches_any_page_answer_or_stored_result(
    write_config: WriteConfig, http_base: str
) -> None:
    secret = "s3cr3t-api-key-from-env"
    received: list[bytes] = []
    config = write_config(
        f"""
        http: {{listen: "127.0.0.1:0"}}
        history: {{flush_every: 50ms}}
        notifiers:
          - {{name: journal, notifier: log}}
        defaults: {{interval: 1h, failure_threshold: 1}}
        jobs:
          - name: api
            plugin: http-status
            notify: [journal]
            options:
              url: "{http_base}/error?key=${{API_KEY}}"
              headers: {{Authorization: "Bearer ${{API_KEY}}"}}
        """
    )
    with RunnerProcess("serve", str(config), env={"API_KEY": secret}) as runner:
        base = f"http://127.0.0.1:{runner.wait_for(event='http.started')[0]['port']}"
        runner.wait_for(event="alert.down")
        wait_until(lambda: json.loads(get(f"{base}/api/jobs/api/history")[1]), 10, "a stored run")
        for path in ("/", "/metrics", "/api/status", "/api/recent", "/api/jobs/api/history"):
            status, body, _ = get(base + path)
            received.append(body.encode())
            assert status == 200, path
        assert runner.stop() == 0
    status = run_cli("status", str(config), env={"API_KEY": secret}).stdout
    history = run_cli("history", str(config), "api", env={"API_KEY": secret}).stdout
    assert "key=***" in json.loads(history)[0]["url"]  # masked, not dropped
    for text in (*[r.decode() for r in received], status, history, "".join(runner.raw_lines)):
        assert secret not in text


def test_a_taken_port_is_logged_and_the_checks_run_on(write_config: WriteConfig) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            f"""
            http: {{listen: "127.0.0.1:{port}"}}
            jobs:
              - {{name: nap, plugin: sleep, interval: 100ms, options: {{seconds: 0}}}}
            """
        )
        with RunnerProcess("serve", str(config)) as runner:
            failed = runner.wait_for(event="http.failed")[0]
            runner.wait_for(event="job.finished", count=3)
            assert runner.stop() == 0
    assert failed["port"] == port and "in use" in failed["error"]
    # `runner run` serves no page at all.
    once = run_cli("run", str(config))
    assert once.returncode == 0 and "http." not in once.stdout
