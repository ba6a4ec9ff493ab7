"""Checks that share a limited resource (``Check.slots``, as page checks share
a browser's pages): waiting for a slot is not the target's time (issue 10).

``one-at-a-time`` (tests/testplugins) holds the single slot of its resource
for ``seconds``; nothing is mocked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from helpers import RunnerProcess, run_cli
from runner.model import Job
from runner.scheduler import first_run_offset
from runner.schedules import Interval

WriteConfig = Callable[..., Path]


def finished(stdout: str) -> list[dict[str, object]]:
    events = [json.loads(line) for line in stdout.splitlines()]
    return [e for e in events if e["event"] == "job.finished"]


def test_runner_run_makes_every_run_each_with_its_full_timeout(
    testplugins: Path, write_config: WriteConfig
) -> None:
    # Six runs of 0.3 s through one slot take 1.8 s; each has a 1 s timeout.
    # Were the wait on the clock, the last three would be timeouts.
    jobs = "".join(
        f"  - {{name: q{i}, plugin: one-at-a-time, timeout: 1s, options: {{seconds: 0.3}}}}\n"
        for i in range(6)
    )
    config = write_config("jobs:\n" + jobs)
    result = run_cli("run", str(config), "--log-format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    records = finished(result.stdout)
    assert sorted(r["job"] for r in records) == [f"q{i}" for i in range(6)]
    assert {r["status"] for r in records} == {"ok"}
    assert {r["at_once"] for r in records} == {1}  # the slot held: one at a time
    queued = sorted(float(r["queued_ms"]) for r in records)  # type: ignore[arg-type]
    assert queued[0] < 100
    assert queued[-1] > 1000  # waited longer than the timeout, and was not cut short
    for r in records:
        assert float(r["duration_ms"]) < 1000  # type: ignore[arg-type]


def test_an_oversubscribed_slot_shows_as_skips_not_timeouts(
    testplugins: Path, write_config: WriteConfig
) -> None:
    # Three jobs of 0.6 s every 1 s through one slot: 1.8 s of work a second.
    # (A run that waited and then ran past the next due time is skipped as
    # "still going": both reasons appear.)
    config = write_config(
        "jobs:\n"
        + "".join(
            f"  - {{name: s{i}, plugin: one-at-a-time, interval: 1s, timeout: 900ms,"
            " options: {seconds: 0.6}}\n"
            for i in range(3)
        )
    )
    with RunnerProcess("serve", str(config)) as runner:
        waiting = "previous run still waiting for a tests.one-at-a-time slot"
        runner.wait_for(event="job.skipped", reason=waiting, timeout=20)
        runner.wait_for(event="job.finished", count=6)
        assert runner.stop() == 0
    records = runner.find(event="job.finished")
    # Every run made was ok: none of them paid for the line with its timeout,
    # though some waited longer than it.
    assert records and {r["status"] for r in records} == {"ok"}
    assert max(r["queued_ms"] for r in records) > 900


def test_first_runs_of_slot_jobs_are_spread_over_what_their_slots_need(
    testplugins: Path,
) -> None:
    from runner_testplugins.plugins import OneAtATime, OneAtATimeOptions

    from runner.builtins.sleep import Sleep, SleepOptions
    from runner.resources import Resources
    from runner.results import ResultHub
    from runner.scheduler import SLOT_RUN_ESTIMATE, JobHandle, Scheduler

    def job(name: str, plugin: type, options: object) -> Job:
        return Job(name, "x", plugin, options, Interval(300.0), 10.0, 1)  # type: ignore[arg-type]

    scheduler = Scheduler(Resources(), ResultHub())
    pages = [job(f"page-{i}", OneAtATime, OneAtATimeOptions()) for i in range(100)]
    plain = [job(f"nap-{i}", Sleep, SleepOptions(seconds=0)) for i in range(100)]
    for j in [*pages, *plain]:
        scheduler.handles[j.name] = JobHandle(j)  # as start() leaves them, tasks aside

    # 100 jobs through one slot, about a second each: spread over 100 s.
    assert scheduler.first_run_window(pages[0]) == 100 * SLOT_RUN_ESTIMATE
    offsets = [first_run_offset(j, scheduler.first_run_window(j)) for j in pages]
    assert 50 < max(offsets) < 100
    assert max(first_run_offset(j, scheduler.first_run_window(j)) for j in plain) < 1.0
    # A lone page check still gets its first run within a second.
    alone = Scheduler(Resources(), ResultHub())
    alone.handles["page-0"] = JobHandle(pages[0])
    assert alone.first_run_window(pages[0]) == 1.0
