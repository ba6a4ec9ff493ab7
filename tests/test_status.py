"""The read side (runner.status): the status rows, built once from the jobs'
states and history's stats, and the view the endpoint and the metrics read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner.config import Config, load_config
from runner.metrics import Exposition
from runner.model import Health, JobState, RunRecord
from runner.plugin import Result
from runner.results import ResultHub
from runner.status import (
    NO_STATS,
    ClusterCounts,
    HistoryCounts,
    RunStats,
    StatusRow,
    StatusView,
    check_word,
    service_rows,
    service_word,
    status_rows,
    uptime_text,
)

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
CONFIG = """
jobs:
  - name: web
    plugin: http-status
    interval: 30s
    options: {url: "http://127.0.0.1:9/"}
  - name: listener
    plugin: echo-listener
    options: {port: 0}
  - name: nap
    plugin: sleep
    interval: 1m
    options: {seconds: 0}
  - name: fresh
    plugin: sleep
    interval: 1m
    options: {seconds: 0}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "checks.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def record(job: str, result: Result, finished_at: float, duration_ms: float = 10.0) -> RunRecord:
    return RunRecord.of(
        job,
        "sleep" if job != "web" else "http-status",
        result,
        started_at=finished_at - duration_ms / 1000,
        duration_ms=duration_ms,
    )


def states_after(config: Config, records: list[RunRecord]) -> Mapping[str, JobState]:
    """The hub's states after ``records``, every job of ``config`` tracked."""
    hub = ResultHub()
    for job in config.jobs:
        hub.track(job.name, job.plugin_name, job.kind)
    for rec in records:
        hub.publish(rec)
    return hub.states


def by_job(rows: list[StatusRow]) -> dict[str, StatusRow]:
    return {row.job: row for row in rows}


def test_one_row_per_check_in_config_order_and_none_for_a_service(config: Config) -> None:
    rows = status_rows(config.checks, states_after(config, []), {})
    assert [row.job for row in rows] == ["web", "nap", "fresh"]
    assert [row.plugin for row in rows] == ["http-status", "sleep", "sleep"]


def test_since_is_the_first_result_of_the_current_streak(config: Config) -> None:
    records = [
        record("web", Result.ok(), NOW - 300),
        record("web", Result.fail("status 500"), NOW - 200),
        record("web", Result.error("refused"), NOW - 100),
    ]
    row = by_job(status_rows(config.checks, states_after(config, records), {}))["web"]
    assert row.state is Health.FAILING
    assert row.since == records[1].finished_at
    assert row.last == records[2]
    assert (row.runs, row.failures) == (3, 2)
    assert row.to_json()["since"] == "2026-05-28T20:23:20Z"
    assert row.to_json()["last"]["message"] == "refused"


def test_down_is_past_the_alert_rule_and_failing_is_below_it(config: Config) -> None:
    # The default rule: 3 not-ok results in a row.
    failures = [record("web", Result.fail("status 500"), NOW - 30 * n) for n in (3, 2, 1)]
    twice = by_job(status_rows(config.checks, states_after(config, failures[:2]), {}))["web"]
    thrice = by_job(status_rows(config.checks, states_after(config, failures), {}))["web"]
    assert (twice.state, twice.down, twice.word) == (Health.FAILING, False, "failing")
    assert (thrice.state, thrice.down, thrice.word) == (Health.FAILING, True, "down")
    assert (twice.to_json()["state"], twice.to_json()["down"]) == ("failing", False)
    assert (thrice.to_json()["state"], thrice.to_json()["down"]) == ("failing", True)
    # A window says maintenance over both; a job without a result is unknown.
    assert replace(thrice, maintenance="upgrade").word == "maintenance"
    assert by_job(status_rows(config.checks, states_after(config, []), {}))["nap"].word == (
        "unknown"
    )
    assert check_word(Health.OK) == "up"


def test_services_are_listed_with_their_state(config: Config) -> None:
    hub = ResultHub()
    for job in config.jobs:
        hub.track(job.name, job.plugin_name, job.kind)
    (starting,) = service_rows(hub.states)
    assert (starting.job, starting.plugin, starting.state) == (
        "listener",
        "echo-listener",
        "starting",
    )
    hub.service_failed("listener", "address in use")
    (failed,) = service_rows(hub.states)
    assert (failed.state, failed.error) == ("down", "address in use")
    assert failed.to_json()["kind"] == "service" and failed.to_json()["since"] is not None
    hub.service_ready("listener")
    (ready,) = service_rows(hub.states)
    assert (ready.state, ready.error) == ("up", None)
    assert service_word(hub.states["listener"]) == "up"


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (1.0, "100.00%"),
        (0.0, "0.00%"),
        (0.76190476, "76.19%"),
        (0.99996, "99.99%"),
        (0.57, "57.00%"),
        (None, "—"),
    ],
)
def test_one_uptime_format_that_never_rounds_up_to_100(share: float | None, text: str) -> None:
    assert uptime_text(share) == text


def test_uptime_and_latency_come_from_history_and_are_rounded_in_json(config: Config) -> None:
    stats = {
        "nap": RunStats(
            uptime={"1h": 1.0, "24h": 2 / 3, "7d": 0.123456789, "30d": None},
            latency_ms={"p50": 12.34567, "p95": 250.0},
        )
    }
    states = states_after(config, [record("nap", Result.ok(), NOW - 10)])
    row = by_job(status_rows(config.checks, states, stats))["nap"]
    assert row.uptime == stats["nap"].uptime  # as history said, rounded only in JSON
    assert row.to_json()["uptime"] == {"1h": 1.0, "24h": 0.666667, "7d": 0.123457, "30d": None}
    assert row.to_json()["latency_ms"] == {"p50": 12.346, "p95": 250.0}


def test_a_job_with_no_history_has_none_everywhere_and_no_runs(config: Config) -> None:
    row = by_job(status_rows(config.checks, states_after(config, []), {}))["fresh"]
    assert row.state is Health.UNKNOWN
    assert (row.since, row.last, row.runs, row.failures) == (None, None, 0, 0)
    assert row.to_json() == {
        "job": "fresh",
        "plugin": "sleep",
        "state": "unknown",
        "down": False,
        "since": None,
        "last": None,
        "uptime": {"1h": None, "24h": None, "7d": None, "30d": None},
        "latency_ms": {"p50": None, "p95": None},
        "runs": 0,
        "failures": 0,
    }
    # Without a state at all (runner status on a history that never saw it): the same.
    untracked = by_job(status_rows(config.checks, {}, {}))["fresh"]
    assert untracked == row
    assert list(row.to_json()) == list(untracked.to_json())  # the key order is the contract


def test_a_stored_state_whose_runs_are_gone_is_still_shown(config: Config) -> None:
    # History kept the state (failing since, counts) but its runs were pruned:
    # the row says what is known, as /metrics does from the same state, not "unknown".
    seeded = replace(
        states_after(config, [record("web", Result.fail("status 500"), NOW - 60)])["web"],
        last=None,
        counts={"ok": 40, "fail": 2},
    )
    row = by_job(status_rows(config.checks, {"web": seeded}, {}))["web"]
    assert row.state is Health.FAILING and row.since == NOW - 60
    assert (row.last, row.runs, row.failures) == (None, 42, 2)


def test_a_service_state_under_a_check_name_is_not_that_check(config: Config) -> None:
    # A job that was a service before a reload: its state says nothing of the check.
    service = JobState(job="nap", plugin="echo-listener", kind="service", ready=True)
    row = by_job(status_rows(config.checks, {"nap": service}, {}))["nap"]
    assert row.state is Health.UNKNOWN and row.runs == 0


def test_no_stats_has_every_window_and_percentile() -> None:
    assert dict(NO_STATS.uptime) == {"1h": None, "24h": None, "7d": None, "30d": None}
    assert dict(NO_STATS.latency_ms) == {"p50": None, "p95": None}


# --------------------------------------------------------------------------- the view


class FixedView:
    """A StatusView with no daemon behind it: what the metrics need, and no more."""

    def __init__(self, states: Mapping[str, JobState]) -> None:
        self._states = states

    def states(self) -> Mapping[str, JobState]:
        return dict(self._states)

    async def shown_states(self) -> Mapping[str, JobState]:
        return dict(self._states)

    async def status_rows(self) -> list[StatusRow]:
        return []

    async def runs(
        self, job: str, *, since: float | None, status: str | None, limit: int
    ) -> list[RunRecord] | None:
        return None

    def loop_lag(self) -> float:
        return 0.25

    def history_counts(self) -> HistoryCounts | None:
        return HistoryCounts(written=7, dropped=1, queued=2, lag=0.5)

    def cluster_counts(self) -> ClusterCounts | None:
        return ClusterCounts(members=3, owned=10, store_up=False)

    def notifier_counts(self) -> Mapping[str, Mapping[str, int]] | None:
        return {"chat": {"sent": 3, "failed": 1, "dropped": 0}}


def test_the_metrics_read_only_the_view(config: Config) -> None:
    view: StatusView = FixedView(states_after(config, [record("nap", Result.ok(), NOW - 1)]))
    families = {
        f.name: f for f in text_string_to_metric_families(Exposition(view).render().decode())
    }
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert values[("runner_job_up", (("name", "nap"), ("plugin", "sleep")))] == 1.0
    assert values[("runner_loop_lag_seconds", ())] == 0.25
    assert values[("runner_history_written_total", ())] == 7.0
    assert values[("runner_history_queued", ())] == 2.0
    assert values[("runner_notifier_failures_total", (("notifier", "chat"),))] == 1.0
    assert values[("runner_jobs", (("kind", "service"),))] == 1.0
    assert values[("runner_cluster_members", ())] == 3.0
    assert values[("runner_cluster_owned_jobs", ())] == 10.0
    assert values[("runner_cluster_store_up", ())] == 0.0


def test_rows_are_json_as_runner_status_writes_them(config: Config) -> None:
    rows = status_rows(
        config.checks, states_after(config, [record("nap", Result.ok(), NOW - 1)]), {}
    )
    text = json.dumps([row.to_json() for row in rows])
    assert json.loads(text)[1]["last"]["status"] == "ok"
