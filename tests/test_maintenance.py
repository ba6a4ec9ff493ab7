"""Maintenance windows: the model (which window covers which job when), the
config (its errors name file, line and field), the hub (transitions held,
the first result after the window decides), and a real daemon over a failing
target with a local webhook receiver."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cronsim import CronSim

from helpers import Peer, RunnerProcess, run_cli, wait_until
from runner.config import ConfigError, load_config
from runner.model import JobState, Maintenance, RunRecord, Window
from runner.plugin import Result
from runner.results import ResultHub

WriteConfig = Callable[..., Path]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- the model


def test_a_once_window_covers_its_jobs_from_start_to_end() -> None:
    window = Window("deploy", ("db-*", "web"), start=100.0, end=200.0)
    maintenance = Maintenance([window], ["db-main", "db-replica", "web", "webshop", "api"])
    jobs = ("db-main", "db-replica", "web", "webshop", "api")
    assert [job for job in jobs if maintenance.covering(job)] == ["db-main", "db-replica", "web"]
    for t, covered in (
        (99.99, False),
        (100.0, True),
        (150.0, True),
        (199.99, True),
        (200.0, False),
    ):
        assert (maintenance.active("db-main", t) is window) is covered, t
        assert maintenance.active("api", t) is None
    # Asked out of order (runs finish out of order), the answers stay right.
    assert [maintenance.active("web", t) is not None for t in (150, 50, 250, 120, 99)] == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert maintenance.next(50.0) is not None and maintenance.next(50.0).start == 100.0
    assert [o.window.name for o in maintenance.current(150.0)] == ["deploy"]
    assert maintenance.next(150.0) is None and maintenance.current(250.0) == []


def test_a_job_not_known_at_load_is_matched_on_first_use() -> None:
    maintenance = Maintenance([Window("all", start=0.0, end=10.0)])
    assert maintenance.active("anything", 5.0) is not None
    assert not Maintenance() and Maintenance().active("x", 5.0) is None


@pytest.mark.parametrize(
    ("expr", "zone", "at"),
    [
        pytest.param("0 3 * * *", "UTC", "2026-12-07T12:00:00+00:00", id="daily-utc"),
        pytest.param("*/10 * * * * *", "UTC", "2026-12-07T12:00:05+00:00", id="seconds"),
        # 02:30 does not exist on 2026-03-29 in Berlin: it runs right after the gap.
        pytest.param("30 2 * * *", "Europe/Berlin", "2026-03-29T03:30:00+02:00", id="spring"),
        # 02:30 happens twice on 2026-10-25: once.
        pytest.param("30 2 * * *", "Europe/Berlin", "2026-10-25T02:45:00+01:00", id="autumn"),
        pytest.param("0 0 29 2 *", "America/New_York", "2027-06-01T00:00:00-04:00", id="feb29"),
        pytest.param("0 22 * * 5L", "UTC", "2026-12-07T00:00:00+00:00", id="last-friday"),
    ],
)
def test_a_cron_window_starts_at_cronsims_times(expr: str, zone: str, at: str) -> None:
    from zoneinfo import ZoneInfo

    window = Window("w", cron=expr, duration=3600.0, timezone=zone)
    t = datetime.fromisoformat(at).timestamp()
    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    before = next(CronSim(expr, datetime.fromtimestamp(t + 1, tz), reverse=True)).timestamp()
    after = next(CronSim(expr, datetime.fromtimestamp(t, tz))).timestamp()
    start, end, next_start = window.period(t)
    assert (start, end, next_start) == (before, before + 3600.0, after)
    assert start <= t < next_start


def test_a_recurring_window_is_on_for_its_duration_after_each_slot() -> None:
    window = Window("tick", cron="*/10 * * * * *", duration=3.0)
    maintenance = Maintenance([window], ["a"])
    base = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC).timestamp()
    on = [s for s in range(40) if maintenance.active("a", base + s + 0.5) is not None]
    assert on == [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]
    upcoming = maintenance.next(base + 5)
    assert upcoming is not None and (upcoming.start, upcoming.end) == (base + 10, base + 13)
    (now,) = maintenance.current(base + 11)
    assert (now.start, now.end) == (base + 10, base + 13)
    assert now.to_json() == {
        "name": "tick",
        "start": "2026-12-07T12:00:10Z",
        "end": "2026-12-07T12:00:13Z",
        "jobs": ["*"],
        "schedule": 'cron "*/10 * * * * *" for 3s (UTC)',
    }


def test_cronsim_runs_once_a_period_not_once_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    window = Window("nightly", cron="0 3 * * *", duration=7200.0)
    maintenance = Maintenance([window], ["a"])
    calls = []
    real = Window.period

    def counted(self: Window, t: float) -> tuple[float, float, float]:
        calls.append(t)
        return real(self, t)

    monkeypatch.setattr(Window, "period", counted)
    base = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
    for i in range(10_000):
        maintenance.active("a", base + i)  # almost three hours of results
    assert len(calls) == 1


# --------------------------------------------------------------------------- the config


def test_windows_load_with_their_jobs_and_zones(write_config: WriteConfig) -> None:
    config = load_config(
        write_config(
            """
            maintenance:
              - name: nightly
                cron: "0 3 * * SUN"
                duration: 2h
                timezone: Europe/Berlin
                jobs: [db-*]
              - name: move
                start: 2026-12-24T22:00:00+01:00
                end: "2026-12-25T02:00:00"
                timezone: Europe/Berlin
            jobs:
              - {name: db-main, plugin: sleep}
              - {name: web, plugin: sleep}
            """
        )
    )
    nightly, move = config.maintenance.windows
    assert (nightly.cron, nightly.duration, nightly.timezone, nightly.jobs, nightly.line) == (
        "0 3 * * SUN",
        7200.0,
        "Europe/Berlin",
        ("db-*",),
        2,
    )
    assert move.jobs == ("*",)
    assert (iso(move.start or 0), iso(move.end or 0)) == (
        "2026-12-24T21:00:00Z",
        "2026-12-25T01:00:00Z",  # no offset: in the window's time zone
    )
    assert [w.name for w in config.maintenance.covering("db-main")] == ["nightly", "move"]
    assert [w.name for w in config.maintenance.covering("web")] == ["move"]
    checked = run_cli("check", str(config.path))
    assert checked.returncode == 0
    assert checked.stdout.splitlines()[-2:] == [
        '  maintenance nightly: cron "0 3 * * SUN" for 2h (Europe/Berlin), jobs db-*',
        "  maintenance move: once 2026-12-24T21:00:00Z to 2026-12-25T01:00:00Z, jobs *",
    ]


def test_a_window_is_in_the_default_zone_unless_it_names_one(write_config: WriteConfig) -> None:
    config = load_config(
        write_config(
            """
            defaults: {timezone: America/New_York}
            maintenance:
              - {name: nightly, cron: "0 3 * * *", duration: 1h}
              - {name: move, start: "2026-12-24T22:00:00", end: "2026-12-25T02:00:00"}
              - {name: own, cron: "0 3 * * *", duration: 1h, timezone: UTC}
            jobs:
              - {name: web, plugin: sleep}
            """
        )
    )
    nightly, move, own = config.maintenance.windows
    assert (nightly.timezone, own.timezone) == ("America/New_York", "UTC")
    assert (iso(move.start or 0), iso(move.end or 0)) == (
        "2026-12-25T03:00:00Z",
        "2026-12-25T07:00:00Z",
    )


@pytest.mark.parametrize(
    ("window", "line", "message"),
    [
        pytest.param(
            "start: 2026-12-07T20:00:00Z\n    end: 2026-12-07T19:00:00Z",
            4,
            "maintenance[0] 'w': end: end 2026-12-07T19:00:00Z is not after start "
            "2026-12-07T20:00:00Z",
            id="end-before-start",
        ),
        pytest.param(
            'cron: "61 * * * *"\n    duration: 1h',
            3,
            "maintenance[0] 'w': cron: invalid cron line '61 * * * *': Bad minute",
            id="bad-cron",
        ),
        pytest.param(
            'cron: "0 3 * * *"\n    duration: 1h\n    timezone: Mars/Olympus',
            5,
            "maintenance[0] 'w': timezone: unknown time zone 'Mars/Olympus'",
            id="bad-zone",
        ),
        pytest.param(
            'cron: "0 3 * * *"',
            3,
            "maintenance[0] 'w': cron: cron needs duration too",
            id="cron-alone",
        ),
        pytest.param(
            'cron: "0 3 * * *"\n    duration: 1h\n    start: 2026-12-07T20:00:00Z\n'
            "    end: 2026-12-07T21:00:00Z",
            5,
            "maintenance[0] 'w': start: give cron and duration (recurring) or start and end "
            "(once), not both",
            id="both",
        ),
        pytest.param(
            'cron: "0 3 * * *"\n    duration: 1h\n    jobs: [w*, wbe]',
            5,
            "maintenance[0] 'w': jobs[1]: 'wbe' names no job of this config; did you mean 'web'?",
            id="names-no-job",
        ),
    ],
)
def test_a_bad_window_is_a_config_error_naming_line_and_field(
    write_config: WriteConfig, window: str, line: int, message: str
) -> None:
    path = write_config(
        f"maintenance:\n  - name: w\n    {window}\njobs:\n  - {{name: web, plugin: sleep}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.format(str(path)).startswith(f"{path}:{line}: {message}")
    # runner check says the same, and exits 2.
    checked = run_cli("check", str(path))
    assert checked.returncode == 2
    assert f"{path}:{line}: {message}" in checked.stderr + checked.stdout


# --------------------------------------------------------------------------- the hub


class Collect:
    def __init__(self) -> None:
        self.got: list[tuple[RunRecord, JobState]] = []

    async def start(self, exit_stack: Any) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        self.got.append((record, state))


def record(job: str, ok: bool, at: float) -> RunRecord:
    result = Result.ok() if ok else Result.fail("status 500")
    return RunRecord.of(job, "http-status", result, started_at=at, duration_ms=5.0)


def test_the_hub_marks_runs_in_a_window_and_holds_their_transitions() -> None:
    sink = Collect()
    hub = ResultHub([sink])
    hub.maintenance = Maintenance([Window("deploy", ("api",), start=100.0, end=200.0)], ["api"])
    hub.track("api", "http-status", "check", failure_threshold=3, success_threshold=2)
    hub.track("web", "http-status", "check", failure_threshold=3, success_threshold=2)
    # Failing from before the window, through it: no transition inside.
    for at in (90.0, 110.0, 120.0, 130.0, 140.0):
        hub.publish(record("api", False, at))
        hub.publish(record("web", False, at))
    api = [(r.maintenance, s.consecutive_not_ok, s.transition) for r, s in sink.got[::2]]
    assert api == [
        (None, 1, None),
        ("deploy", 2, None),
        ("deploy", 3, None),  # the third failure: down, were it not for the window
        ("deploy", 4, None),
        ("deploy", 5, None),
    ]
    web = [(r.maintenance, s.transition) for r, s in sink.got[1::2]]
    assert web == [(None, None), (None, None), (None, "down"), (None, None), (None, None)]
    assert not hub.state("api").down and hub.state("web").down
    # The first result after the window applies the rule at once.
    state = hub.publish(record("api", False, 200.0))
    assert (state.transition, state.down, state.down_since) == ("down", True, 90.0 + 0.005)
    assert state.last is not None and state.last.maintenance is None


def test_a_job_that_recovers_in_a_window_is_told_recovered_after_it() -> None:
    hub = ResultHub()
    hub.track("api", "http-status", "check", failure_threshold=2, success_threshold=2)
    for at in (10.0, 20.0):
        hub.publish(record("api", False, at))
    assert hub.state("api").down
    hub.maintenance = Maintenance([Window("fix", start=100.0, end=200.0)], ["api"])
    states = [hub.publish(record("api", True, at)) for at in (110.0, 120.0, 130.0)]
    assert [(s.down, s.transition) for s in states] == [(True, None)] * 3
    after = hub.publish(record("api", True, 210.0))
    assert (after.down, after.transition) == (False, "recovered")


# --------------------------------------------------------------------------- a real daemon


def alerting_config(
    write_config: WriteConfig, target: Peer, windows: str, name: str = "runner.yaml"
) -> Path:
    """A failing or passing ``api`` (``target``) whose alerts go to ``target``'s
    /hook, a passing ``other``, and ``windows`` (top-level YAML, unindented)."""
    return write_config(
        "history: {flush_every: 50ms}\n"
        "notifiers:\n"
        f'  - {{name: ops, notifier: webhook, options: {{url: "{target.url}/hook", retries: 0}}}}\n'
        "defaults: {interval: 100ms, failure_threshold: 3, success_threshold: 2}\n"
        f"{windows}\n"
        "jobs:\n"
        "  - {name: api, plugin: http-status, notify: [ops], "
        f'options: {{url: "{target.url}/"}}}}\n'
        "  - {name: other, plugin: sleep, options: {seconds: 0}}\n",
        name,
    )


def test_a_window_over_a_failing_target_holds_its_alert_until_it_ends(
    write_config: WriteConfig, peer: Peer
) -> None:
    peer.status = 500
    start = time.time()
    end = start + 8.0  # time to start, fail 5 times and ask runner status, on a busy machine
    config = alerting_config(
        write_config,
        peer,
        f'maintenance:\n  - {{name: deploy, start: "{iso(start - 1)}", end: "{iso(end)}", '
        'jobs: ["a?i"]}',
    )
    with RunnerProcess("serve", str(config)) as runner:
        inside = runner.wait_for(event="job.finished", job="api", status="fail", count=5)
        assert all(e["maintenance"] == "deploy" for e in inside if epoch(e["timestamp"]) < end)
        assert all("maintenance" not in e for e in runner.find(job="other"))  # not api
        assert time.time() < end, "the machine is too slow for this test's window"
        status = run_cli("status", str(config), "--json")
        (row,) = [r for r in json.loads(status.stdout) if r["job"] == "api"]
        assert (row["state"], row["maintenance"]) == ("maintenance", "deploy")
        assert row["last"]["maintenance"] == "deploy"
        assert status.returncode == 0  # in maintenance: not a failure of runner status
        assert peer.events("down") == [] and time.time() < end

        (down,) = wait_until(lambda: peer.events("down"), 10, "the down alert after the window")
        assert down["at"] >= end
        assert down["last"].get("maintenance") is None
        assert down["consecutive"] > 3  # counted through the window
        after = [e for e in runner.find(event="job.finished", job="api") if "maintenance" not in e]
        runner.wait_for(event="job.finished", job="api", count=len(after) + 5)
        assert len(peer.events("down")) == 1
        assert runner.stop() == 0
    status = run_cli("status", str(config), "--json")
    (row,) = [r for r in json.loads(status.stdout) if r["job"] == "api"]
    assert (row["state"], row.get("maintenance")) == ("failing", None)
    assert row["uptime"]["1h"] == 0.0  # the failures after the window count
    assert status.returncode == 1
    assert peer.events("recovered") == []


def test_failures_inside_a_window_send_nothing_and_do_not_lower_uptime(
    write_config: WriteConfig, peer: Peer
) -> None:
    start = time.time() + 3.0
    end = start + 4.0
    config = alerting_config(
        write_config,
        peer,
        f'maintenance:\n  - {{name: db-move, start: "{iso(start)}", end: "{iso(end)}"}}',
    )
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="job.finished", job="api", status="ok", count=3)
        runner.wait_for(event="job.finished", job="api", maintenance="db-move")
        peer.status = 500
        runner.wait_for(event="job.finished", job="api", status="fail", count=5)
        wait_until(lambda: time.time() > end - 1.0, 10, "the window's last second")
        peer.status = 200
        wait_until(lambda: time.time() > end + 1.0, 10, "the window's end")
        runner.wait_for(event="job.finished", job="api", status="ok", count=20)
        assert runner.stop() == 0
    failed = [e for e in runner.find(event="job.finished", job="api") if e["status"] != "ok"]
    assert failed and all(e["maintenance"] == "db-move" for e in failed)
    assert peer.received == []  # neither down nor recovered
    status = run_cli("status", str(config), "--json")
    (row,) = [r for r in json.loads(status.stdout) if r["job"] == "api"]
    assert row["uptime"]["1h"] == 1.0 and row["state"] == "ok"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_a_reload_applies_window_changes_and_the_api_shows_them(
    write_config: WriteConfig, peer: Peer
) -> None:
    soon = time.time() + 3600

    def later(start: float) -> str:
        return f'  - {{name: later, start: "{iso(start)}", end: "{iso(soon + 600)}", jobs: [api]}}'

    http = "http: {listen: '127.0.0.1:0'}\n"
    config = alerting_config(write_config, peer, f"{http}maintenance:\n{later(soon)}")
    with RunnerProcess("serve", str(config)) as runner:
        (started,) = runner.wait_for(event="http.started")
        base = f"http://127.0.0.1:{started['port']}"
        runner.wait_for(event="job.finished", job="api", count=2)
        assert get_json(f"{base}/api/maintenance") == {
            "active": [],
            "next": {
                "name": "later",
                "start": iso(soon),
                "end": iso(soon + 600),
                "jobs": ["api"],
                "schedule": "once",
            },
        }
        assert {r["job"]: r["state"] for r in get_json(f"{base}/api/status")} == {
            "api": "ok",
            "other": "ok",
        }

        # Twelve hours from now's hour: never on while the test runs (a fixed
        # "0 3 * * *" was on, and the test failed, every day from 03:00 to 04:00 UTC).
        hour = (time.gmtime().tm_hour + 12) % 24
        nightly = f'  - {{name: nightly, cron: "0 {hour} * * *", duration: 1h}}'
        windows = f"{http}maintenance:\n{later(time.time() - 60)}\n{nightly}"
        alerting_config(write_config, peer, windows)
        runner.proc.send_signal(signal.SIGHUP)
        (reloaded,) = runner.wait_for(event="daemon.reloaded")
        assert reloaded["maintenance"] == ["later", "nightly"]
        count = len(runner.find(event="job.finished", job="api", maintenance="later"))
        runner.wait_for(event="job.finished", job="api", maintenance="later", count=count + 2)
        shown = get_json(f"{base}/api/maintenance")
        assert [w["name"] for w in shown["active"]] == ["later"]
        assert shown["next"]["name"] == "nightly"
        rows = {r["job"]: r for r in get_json(f"{base}/api/status")}
        assert (rows["api"]["state"], rows["api"]["maintenance"]) == ("maintenance", "later")
        assert rows["other"]["state"] == "ok" and "maintenance" not in rows["other"]
        with urllib.request.urlopen(f"{base}/badge/api.svg", timeout=5) as response:
            assert "api: maintenance" in response.read().decode()
        page = urllib.request.urlopen(f"{base}/", timeout=5).read().decode()
        assert "api/maintenance" in page

        alerting_config(write_config, peer, http)
        runner.proc.send_signal(signal.SIGHUP)
        runner.wait_for(event="daemon.reloaded", count=2)
        seen = len(runner.find(event="job.finished", job="api"))
        latest = runner.wait_for(event="job.finished", job="api", count=seen + 2)[-1]
        assert "maintenance" not in latest
        assert get_json(f"{base}/api/maintenance") == {"active": [], "next": None}

        # A bad window is refused on reload, naming its line and field; nothing changes.
        bad = f'maintenance:\n  - {{name: oops, start: "{iso(soon)}", end: "{iso(soon - 1)}"}}'
        alerting_config(write_config, peer, http + bad)
        runner.proc.send_signal(signal.SIGHUP)
        (refused,) = runner.wait_for(event="reload.refused")
        assert any(
            f"{config}:7: maintenance[0] 'oops': end: end" in problem
            for problem in refused["problems"]
        ), refused["problems"]
        assert get_json(f"{base}/api/maintenance") == {"active": [], "next": None}
        assert runner.stop() == 0


def test_runner_status_table_shows_maintenance_and_lists_the_windows() -> None:
    from rich.console import Console

    from runner.report import print_status
    from runner.status import status_rows

    now = datetime(2026, 12, 7, 12, 30, tzinfo=UTC).timestamp()
    maintenance = Maintenance(
        [
            Window("deploy", ("db-*",), start=now - 600, end=now + 1800),
            Window("nightly", cron="0 3 * * *", duration=7200.0, timezone="Europe/Berlin"),
        ],
        ["db-main", "web"],
    )
    # status_rows reads a check's name and plugin name.
    checks: Any = [SimpleNamespace(name=name, plugin_name="sleep") for name in ("db-main", "web")]
    rows = status_rows(checks, {}, {}, maintenance, now)
    assert [(r.job, r.shown_state, r.maintenance) for r in rows] == [
        ("db-main", "maintenance", "deploy"),
        ("web", "unknown", None),
    ]
    console = Console(record=True, width=200)
    print_status(rows, now, where="test", console=console, maintenance=maintenance)
    text = console.export_text()
    assert "\ndb-main  MAINTENANCE  " in text
    assert "2 jobs: 0 ok, 1 without a result yet, 1 in maintenance" in text
    assert (
        "maintenance now: deploy (db-*): 2026-12-07 12:20:00Z to 13:00:00Z, ends in 30m 0s" in text
    )
    assert (
        "next maintenance: nightly (*): 2026-12-08 02:00:00Z to 04:00:00Z, starts in 13h 30m"
        in text
    )


def test_runner_schema_knows_windows_and_their_two_forms() -> None:
    import jsonschema

    from runner.schema import build_schema

    schema, _ = build_schema()
    job = {"name": "web", "plugin": "sleep"}

    def valid(window: dict[str, Any]) -> bool:
        config = {"maintenance": [window], "jobs": [job]}
        return jsonschema.Draft202012Validator(schema).is_valid(config)

    assert valid({"name": "n", "cron": "0 3 * * *", "duration": "2h", "jobs": ["db-*"]})
    assert valid({"name": "o", "start": "2026-12-24T22:00:00Z", "end": "2026-12-25T02:00:00Z"})
    assert not valid({"name": "n", "cron": "0 3 * * *"})  # no duration
    assert not valid({"name": "o", "start": "2026-12-24T22:00:00Z"})  # no end
    assert not valid({"name": "b", "cron": "0 3 * * *", "duration": "1h", "start": "x", "end": "y"})
    assert not valid({"name": "x", "cron": "0 3 * * *", "duration": "1h", "every": "day"})


def test_a_plugin_cannot_set_the_maintenance_field_itself() -> None:
    with pytest.raises(ValueError, match="reserved for the daemon"):
        Result.ok(maintenance="mine")


def test_runner_history_table_names_the_window_of_a_run() -> None:
    from dataclasses import replace

    from rich.console import Console

    from runner.report import print_history

    held = replace(record("api", False, 100.0), maintenance="deploy")
    console = Console(record=True, width=200)
    print_history("api", [held, record("api", True, 50.0)], console=console)
    lines = console.export_text().splitlines()
    assert "status 500  maintenance=deploy" in "\n".join(lines)
    assert sum("maintenance=" in line for line in lines) == 1
