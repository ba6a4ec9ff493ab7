"""What ``runner status`` and ``runner history`` print (runner.report), read
as a person reads it: the cells of each row at a fixed width."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from runner.config import load_config
from runner.model import RunRecord
from runner.plugin import Result, Status
from runner.report import ago, print_history, print_status
from runner.results import ResultHub
from runner.status import RunStats, StatusRow, status_rows

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
CONFIG = """
jobs:
  - name: web
    plugin: http-status
    options: {url: "http://127.0.0.1:9/"}
  - name: nap
    plugin: sleep
    options: {seconds: 0}
  - name: fresh
    plugin: sleep
    options: {seconds: 0}
  - name: listener
    plugin: echo-listener
    options: {port: 0}
"""


def record(
    job: str, result: Result, finished_at: float, duration_ms: float = 12.0, plugin: str = "sleep"
) -> RunRecord:
    return RunRecord.of(
        job, plugin, result, started_at=finished_at - duration_ms / 1000, duration_ms=duration_ms
    )


@pytest.fixture
def rows(tmp_path: Path) -> list[StatusRow]:
    """web failing since 200 s ago (1 ok, then 2 not ok), nap ok, fresh never ran."""
    path = tmp_path / "checks.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    hub = ResultHub()
    for job in config.jobs:
        hub.track(job.name, job.plugin_name, job.kind)
    hub.publish(record("web", Result.ok(status_code=200), NOW - 300, plugin="http-status"))
    hub.publish(record("web", Result.fail("status 500"), NOW - 200, plugin="http-status"))
    hub.publish(record("web", Result.fail("status 503"), NOW - 100, plugin="http-status"))
    hub.publish(record("nap", Result.ok(slept_s=0), NOW - 3 * 3600 - 12 * 60))
    stats = {
        "web": RunStats(
            {"1h": 1 / 3, "24h": 0.75, "7d": 0.999, "30d": 1.0}, {"p50": 110.4, "p95": 200.0}
        ),
        "nap": RunStats({"1h": None, "24h": 1.0, "7d": 1.0, "30d": 1.0}, {"p50": 1.0, "p95": 2.6}),
    }
    return status_rows(config.checks, hub.states, stats)


def console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, soft_wrap=False, highlight=False), out


def cells(text: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``; a cell folded over
    more lines is its lines joined with a space."""
    row: list[list[str]] | None = None
    for line in text.splitlines():
        parts = [cell.strip() for cell in line.split("│")[1:-1]]
        if row is None:
            if parts and parts[0] == first:
                row = [[part] for part in parts]
        elif parts and not parts[0]:  # the row goes on
            for cell, part in zip(row, parts, strict=True):
                if part:
                    cell.append(part)
        else:
            break
    if row is None:
        raise AssertionError(f"no row {first!r} in:\n{text}")
    return [" ".join(cell) for cell in row]


# --------------------------------------------------------------------------- runner status


def test_status_off_a_terminal_prints_every_column_of_every_row(
    rows: list[StatusRow], capsys: pytest.CaptureFixture[str]
) -> None:
    # Off a terminal (a pipe) the table is 200 columns wide: nothing folds.
    print_status(rows, NOW, where="/var/lib/runner/checks.sqlite3")
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].strip() == "history: /var/lib/runner/checks.sqlite3"
    header = [c.strip() for c in lines[2].split("┃")[1:-1]]
    assert header == [
        "job", "state", "since", "last result", "1h", "24h", "7d", "30d",
        "p50", "p95", "runs", "failures",
    ]  # fmt: skip
    assert cells(text, "web") == [
        "web", "FAILING", "2026-05-28 20:23:20Z (3m 20s)", "FAIL status 503",
        "33.33%", "75.00%", "99.90%", "100%", "110 ms", "200 ms", "3", "2",
    ]  # fmt: skip
    assert cells(text, "nap") == [
        "nap", "ok", "2026-05-28 17:14:40Z (3h 12m)", "ok",
        "—", "100%", "100%", "100%", "1 ms", "3 ms", "1", "0",
    ]  # fmt: skip
    assert cells(text, "fresh") == ["fresh", "UNKNOWN", "—", "—", *["—"] * 6, "0", "0"]
    assert "listener" not in text  # a service has no row
    assert lines[-1] == "3 jobs: 1 ok, 1 failing (web), 1 without a result yet"
    assert max(len(line) for line in lines) <= 200


def test_status_cuts_a_long_message_at_80_characters(
    rows: list[StatusRow], capsys: pytest.CaptureFixture[str]
) -> None:
    long = "x" * 79 + "yz" + "!" * 40
    rows[0] = replace(rows[0], last=record("web", Result.fail(long), NOW - 100, plugin="http"))
    print_status(rows, NOW, where="h")
    last = cells(capsys.readouterr().out, "web")[3]
    # Even at 200 columns the cell folds (over 3 lines): the cut is what is asserted.
    assert last.replace(" ", "") == "FAIL" + "x" * 79 + "y"


def test_status_at_160_columns_keeps_names_states_and_numbers(rows: list[StatusRow]) -> None:
    out_console, out = console(160)
    print_status(rows, NOW, where="h", console=out_console)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 160
    web = cells(text, "web")
    assert web[1] == "FAILING" and web[-4:] == ["110 ms", "200 ms", "3", "2"]
    assert cells(text, "fresh")[1] == "UNKNOWN"


def test_all_ok_says_so(rows: list[StatusRow], capsys: pytest.CaptureFixture[str]) -> None:
    print_status([rows[1]], NOW, where="h")
    assert capsys.readouterr().out.splitlines()[-1] == "1 jobs: 1 ok"


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        pytest.param(0, "0s", id="now"),
        pytest.param(45.9, "45s", id="seconds"),
        pytest.param(125, "2m 5s", id="minutes"),
        pytest.param(3 * 3600 + 12 * 60 + 5, "3h 12m", id="hours"),
        pytest.param(2 * 86400 + 4 * 3600 + 59, "2d 4h", id="days"),
        pytest.param(-3, "0s", id="clock-skew"),
    ],
)
def test_ago_reads_as_a_person_says_it(seconds: float, said: str) -> None:
    assert ago(seconds) == said


# --------------------------------------------------------------------------- runner history


def test_history_prints_newest_first_with_status_time_duration_and_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = [
        record("web", Result.fail("status 500", status_code=500), NOW - 60, 41.6, "http-status"),
        record("web", Result.ok(status_code=200), NOW - 120, 12.2, "http-status"),
        record(
            "web", Result(Status.TIMEOUT, "no answer in 10s"), NOW - 180, 10_000.0, "http-status"
        ),
    ]
    print_history("web", runs)
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].strip() == "web: 3 runs, newest first"
    assert cells(text, "2026-05-28 20:25:40Z") == [
        "2026-05-28 20:25:40Z", "FAIL", "42 ms", "status 500  status_code=500",
    ]  # fmt: skip
    assert cells(text, "2026-05-28 20:24:40Z") == [
        "2026-05-28 20:24:40Z", "ok", "12 ms", "status_code=200",
    ]  # fmt: skip
    assert cells(text, "2026-05-28 20:23:40Z")[1:3] == ["TIMEOUT", "10000 ms"]
    finished = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert finished == ["2026-05-28 20:25:40Z", "2026-05-28 20:24:40Z", "2026-05-28 20:23:40Z"]


def test_history_of_no_runs_says_none_match(capsys: pytest.CaptureFixture[str]) -> None:
    print_history("web", [])
    assert capsys.readouterr().out == "no runs of web match\n"


def test_history_at_100_columns_folds_the_message_not_the_time() -> None:
    out_console, out = console(100)
    message = "a long message " * 12
    print_history("web", [record("web", Result.fail(message), NOW - 60)], console=out_console)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 100
    assert len([line for line in lines if line.startswith("│")]) > 1  # it folded
    _, status, duration, said = cells(out.getvalue(), "2026-05-28 20:25:40Z")
    assert (status, duration) == ("FAIL", "12 ms")
    assert said == message.strip()  # whole, over several lines
