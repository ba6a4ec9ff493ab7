"""What ``runner status`` and ``runner history`` print (runner.report), read
as a person reads it: at each terminal width, what every row shows."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from runner.config import load_config
from runner.model import Maintenance, RunRecord, Window
from runner.plugin import Result, Status
from runner.report import ago, print_history, print_run_summary, print_status
from runner.results import ResultHub
from runner.status import RunStats, StatusRow, status_rows

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
CONFIG = """
jobs:
  - name: shop-checkout-api
    plugin: http-status
    options: {url: "http://127.0.0.1:9/"}
  - name: nap
    plugin: sleep
    options: {seconds: 0}
  - name: fresh
    plugin: sleep
    options: {seconds: 0}
  - name: db-replica-eu-west-1
    plugin: sleep
    options: {seconds: 0}
  - name: listener
    plugin: echo-listener
    options: {port: 0}
"""
LONG = "status 503 Service Unavailable from upstream payments-gateway after 3 redirects"
WIDTHS = (60, 80, 100, 120, 160)


def record(
    job: str, result: Result, finished_at: float, duration_ms: float = 12.0, plugin: str = "sleep"
) -> RunRecord:
    return RunRecord.of(
        job, plugin, result, started_at=finished_at - duration_ms / 1000, duration_ms=duration_ms
    )


def make_rows(tmp_path: Path) -> list[StatusRow]:
    """shop-checkout-api failing since 165 s ago (1 ok, then 2 not ok, the last with a
    long message), nap ok for 3h 12m, fresh never ran, db-replica-eu-west-1 ok but
    in a maintenance window."""
    path = tmp_path / "checks.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    hub = ResultHub()
    for job in config.jobs:
        hub.track(job.name, job.plugin_name, job.kind)
    shop = "shop-checkout-api"
    hub.publish(record(shop, Result.ok(status_code=200), NOW - 300, plugin="http-status"))
    hub.publish(record(shop, Result.fail("status 500"), NOW - 165, plugin="http-status"))
    hub.publish(record(shop, Result.fail(LONG), NOW - 100, plugin="http-status"))
    hub.publish(record("nap", Result.ok(slept_s=0), NOW - 3 * 3600 - 12 * 60))
    hub.publish(record("db-replica-eu-west-1", Result.ok(), NOW - 2 * 86400 - 4 * 3600))
    stats = {
        shop: RunStats(
            {"1h": 1 / 3, "24h": 0.75, "7d": 0.999, "30d": 1.0}, {"p50": 110.4, "p95": 1200.0}
        ),
        "nap": RunStats({"1h": None, "24h": 1.0, "7d": 1.0, "30d": 1.0}, {"p50": 1.0, "p95": 2.6}),
    }
    maintenance = Maintenance(
        [Window("deploy", ("db-*",), start=NOW - 600, end=NOW + 1800)],
        [job.name for job in config.jobs],
    )
    return status_rows(config.checks, hub.states, stats, maintenance, NOW)


@pytest.fixture
def rows(tmp_path: Path) -> list[StatusRow]:
    return make_rows(tmp_path)


def render(width: int, print_it: object, *args: object, **kwargs: object) -> str:
    """What ``print_it(*args, **kwargs)`` prints on a terminal ``width`` columns wide."""
    out = io.StringIO()
    console = Console(file=out, width=width, soft_wrap=False, highlight=False)
    print_it(*args, console=console, **kwargs)  # type: ignore[operator]
    return out.getvalue()


def split(line: str, columns: int = 0) -> list[str]:
    """The cells of a line of a borderless table: two spaces or more part them
    (but the last of ``columns`` cells keeps its own)."""
    return re.split(r" {2,}", line.strip(), maxsplit=max(0, columns - 1))


def table(text: str, header_starts: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the table whose header line starts with
    ``header_starts``: the lines after it up to the first that is not a row
    (the counts, or the next line of a cell). An empty last cell is ""."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(header_starts))
    header = split(lines[at])
    body = []
    for line in lines[at + 1 :]:
        cells = split(line, len(header))
        if line.startswith(" ") or len(cells) < len(header) - 1:
            break
        body.append(cells + [""] * (len(header) - len(cells)))
    return header, body


# --------------------------------------------------------------------------- runner status

#: The columns runner status shows at each width, for the rows above: the
#: identity, since and the last result always; numbers in NUMERIC_PRIORITY's
#: order as they fit.
COLUMNS = {
    60: ["job", "state", "since", "last result"],
    80: ["job", "state", "since", "last result", "24h"],
    100: ["job", "state", "since", "last result", "24h", "7d", "p50"],
    120: ["job", "state", "since", "last result", "24h", "7d", "30d", "p50", "p95"],
    160: [
        "job", "state", "since", "last result", "1h", "24h", "7d", "30d",
        "p50", "p95", "runs", "failures",
    ],
}  # fmt: skip
#: Every row's job, state and since, as each width shows them.
IDENTITY = [
    ["shop-checkout-api", "FAILING", "2m 45s ago"],
    ["nap", "ok", "3h 12m ago"],
    ["fresh", "UNKNOWN", "—"],
    ["db-replica-eu-west-1", "MAINTENANCE", "2d 4h ago"],
]
NO_STATS = ("1h", "24h", "7d", "30d", "p50", "p95")
#: Every numeric cell, for the widths that show it.
NUMBERS = {
    "shop-checkout-api": {
        "1h": "33.33%", "24h": "75.00%", "7d": "99.90%", "30d": "100.00%",
        "p50": "110 ms", "p95": "1200 ms", "runs": "3", "failures": "2",
    },
    "nap": {
        "1h": "—", "24h": "100.00%", "7d": "100.00%", "30d": "100.00%",
        "p50": "1 ms", "p95": "3 ms", "runs": "1", "failures": "0",
    },
    "fresh": {**dict.fromkeys(NO_STATS, "—"), "runs": "0", "failures": "0"},
    "db-replica-eu-west-1": {**dict.fromkeys(NO_STATS, "—"), "runs": "1", "failures": "0"},
}  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS, ids=[f"{w}-columns" for w in WIDTHS])
def test_status_shows_each_job_on_one_line_with_its_name_and_state_whole(
    rows: list[StatusRow], width: int
) -> None:
    text = render(width, print_status, rows, NOW, where="/var/lib/runner/checks.sqlite3")
    lines = text.splitlines()
    assert lines[0] == "history: /var/lib/runner/checks.sqlite3"
    assert max(len(line) for line in lines) <= width
    header, body = table(text, "job ")
    assert header == COLUMNS[width]
    # One line per job, in the config's order; the counts come right after.
    assert [cells[:3] for cells in body] == IDENTITY
    assert lines[2 + len(body)].startswith("4 jobs: 1 ok, 1 failing (shop-checkout-api)")
    for cells in body:
        shown = dict(zip(header, cells, strict=True))
        assert {k: v for k, v in shown.items() if k in NUMBERS[cells[0]]} == {
            k: v for k, v in NUMBERS[cells[0]].items() if k in header
        }
    last = {cells[0]: cells[3] for cells in body}
    assert last["nap"] == last["db-replica-eu-west-1"] == "ok"
    assert last["fresh"] == "—"
    # The last message is cut to fit: its start, then an ellipsis.
    failing = last["shop-checkout-api"]
    assert failing.startswith("FAIL status")
    assert failing == f"FAIL {LONG}" or (
        failing.endswith("…") and f"FAIL {LONG}".startswith(failing[:-1])
    )


def test_status_off_a_terminal_is_200_columns_with_every_column_and_the_message_whole(
    rows: list[StatusRow], capsys: pytest.CaptureFixture[str]
) -> None:
    print_status(rows, NOW, where="h")
    text = capsys.readouterr().out
    header, body = table(text, "job ")
    assert header == COLUMNS[160]
    assert body[0][:4] == ["shop-checkout-api", "FAILING", "2m 45s ago", f"FAIL {LONG}"]
    assert "listener" not in text  # a service has no row
    assert text.splitlines()[-1] == (
        "4 jobs: 1 ok, 1 failing (shop-checkout-api), 1 without a result yet, 1 in maintenance"
    )


def test_a_name_wider_than_the_terminal_folds_whole_beside_its_state(
    rows: list[StatusRow],
) -> None:
    name = "the-public-website-of-the-company-behind-the-load-balancer-in-eu-1"
    text = render(60, print_status, [replace(rows[0], job=name)], NOW, where="h")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 60
    first, second = lines[2], lines[3]
    assert split(first)[1] == "FAILING"
    assert split(first)[0] + split(second)[0] == name  # whole, over two lines


def test_a_message_of_several_lines_takes_one(rows: list[StatusRow]) -> None:
    message = "expected 'Welcome'\n  in the body\tof 2 KiB"
    failing = replace(rows[0], last=record("shop", Result.fail(message), NOW - 100))
    text = render(160, print_status, [failing], NOW, where="h")
    _, body = table(text, "job ")
    assert len(body) == 1
    assert body[0][3] == "FAIL expected 'Welcome' in the body of 2 KiB"


def test_all_ok_says_so(rows: list[StatusRow], capsys: pytest.CaptureFixture[str]) -> None:
    print_status([rows[1]], NOW, where="h")
    assert capsys.readouterr().out.splitlines()[-1] == "1 job: 1 ok"


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

#: An http-status run with the fields it really has: nested, boolean, lists.
HTTP_FIELDS = {
    "status_code": 503,
    "timings_ms": {"dns": 0.4, "connect": 1.2, "tls": None},
    "body_complete": True,
    "redirects": ["http://a.test/", "http://b.test/"],
}


def runs() -> list[RunRecord]:
    return [
        record("web", Result.fail(LONG, **HTTP_FIELDS), NOW - 60, 41.6, "http-status"),
        record("web", Result.ok(status_code=200), NOW - 120, 12.2, "http-status"),
        record(
            "web", Result(Status.TIMEOUT, "no answer in 10s"), NOW - 180, 10_000.0, "http-status"
        ),
    ]


@pytest.mark.parametrize("width", WIDTHS, ids=[f"{w}-columns" for w in WIDTHS])
def test_history_shows_each_run_on_one_line_with_time_status_duration_and_message(
    width: int,
) -> None:
    text = render(width, print_history, "web", runs())
    lines = text.splitlines()
    assert lines[0] == "web: 3 runs, newest first"
    assert max(len(line) for line in lines) <= width
    header, body = table(text, "finished")
    assert header == ["finished", "status", "duration", "message"]
    assert len(lines) == 2 + len(body)  # one line a run
    assert [cells[:3] for cells in body] == [
        ["2026-05-28 20:25:40Z", "FAIL", "42 ms"],
        ["2026-05-28 20:24:40Z", "ok", "12 ms"],
        ["2026-05-28 20:23:40Z", "TIMEOUT", "10000 ms"],
    ]
    said = body[0][3]
    assert said == LONG or (said.endswith("…") and LONG.startswith(said[:-1]))
    assert len(said) >= 15
    assert body[2][3] == "no answer in 10s"
    # No plugin field without -v.
    assert "status_code" not in text and "dns" not in text


@pytest.mark.parametrize("width", [60, 160], ids=["60-columns", "160-columns"])
def test_history_verbose_has_the_message_whole_and_the_fields_as_values_not_reprs(
    width: int,
) -> None:
    text = render(width, print_history, "web", runs(), verbose=True)
    assert max(len(line) for line in text.splitlines()) <= width
    lines = text.splitlines()
    at = lines[1].index("message")
    message = [line[at:].rstrip() for line in lines[2:]]
    # The first run's cell, line by line, up to the next run's.
    first = message[: message.index("status_code: 200")]
    joined = " ".join(first)
    assert joined.startswith(LONG)
    assert "status_code: 503" in joined
    assert "timings_ms: dns=0.4 connect=1.2 tls=null" in joined
    assert "body_complete: true" in joined
    assert "redirects: http://a.test/, http://b.test/" in joined
    assert "{" not in text and "True" not in text and "None" not in text


def test_history_names_the_maintenance_window_of_a_run() -> None:
    held = replace(runs()[0], maintenance="deploy")
    _, body = table(render(200, print_history, "web", [held]), "finished")
    assert body[0][3] == f"{LONG}  maintenance=deploy"


@pytest.mark.parametrize("width", [60, 120], ids=["60-columns", "120-columns"])
def test_history_of_a_check_run_from_several_locations_says_where(width: int) -> None:
    where = ["eu-west", "us-east", "eu-west"]
    placed = [
        replace(r, member=f"m{i}", location=p)
        for i, (r, p) in enumerate(zip(runs(), where, strict=True))
    ]
    text = render(width, print_history, "web", placed)
    assert max(len(line) for line in text.splitlines()) <= width
    header, body = table(text, "finished")
    assert header == ["finished", "status", "location", "duration", "message"]
    assert [cells[2] for cells in body] == ["eu-west", "us-east", "eu-west"]


def test_status_shows_each_location_of_a_check_beside_its_state(
    rows: list[StatusRow],
) -> None:
    from runner.status import LocationStatus

    places = (
        LocationStatus("eu-west", "down", "fail", "status 500", 41.6, NOW - 5, "eu-1"),
        LocationStatus("us-east", "ok", "ok", None, 12.2, NOW - 4, "us-1"),
        LocationStatus("ap-south", "unknown", None, None, None, None, None),
    )
    row = replace(rows[0], locations=places)
    for width in (60, 120):
        text = render(width, print_status, [row], NOW, where="postgresql://db/runner")
        lines = text.splitlines()
        at = lines.index("shop-checkout-api: 2 of 3 locations reporting")
        assert [" ".join(line.split()) for line in lines[at + 1 : at + 4]] == [
            "eu-west down (status 500), 42 ms, 5s ago",
            "us-east ok, 12 ms, 4s ago",
            "ap-south unknown",
        ]


def test_history_of_no_runs_says_what_was_asked_and_what_there_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_history("web", [])
    assert capsys.readouterr().out == "no runs of web match\n"
    print_history("web", [], matched="--status fail (all its runs: 3 error, 1 ok)")
    assert capsys.readouterr().out == (
        "no runs of web match --status fail (all its runs: 3 error, 1 ok)\n"
    )


# --------------------------------------------------------------------------- runner run


def test_run_summary_writes_fields_as_json_values(capsys: pytest.CaptureFixture[str]) -> None:
    print_run_summary([runs()[0]])
    out = capsys.readouterr().out
    assert 'timings_ms={"dns":0.4,"connect":1.2,"tls":null} body_complete=true' in out


def test_names_and_messages_are_text_never_markup(rows: list[StatusRow]) -> None:
    failing = replace(
        rows[0], job="api [v2]", last=record("api [v2]", Result.fail("[bold]500[/bold]"), NOW)
    )
    text = render(120, print_status, [failing], NOW, where="h")
    _, body = table(text, "job ")
    assert body[0][:4] == ["api [v2]", "FAILING", "2m 45s ago", "FAIL [bold]500[/bold]"]
    assert "1 failing (api [v2])" in text
    history = render(120, print_history, "api [v2]", [failing.last])
    assert history.startswith("api [v2]: 1 run, newest first")
    assert "[bold]500[/bold]" in history
    assert render(120, print_history, "api [v2]", []) == "no runs of api [v2] match\n"
