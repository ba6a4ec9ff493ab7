"""The result hub: per-job state as a user reads it (ok or failing, since when)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import fields, replace

from structlog.testing import capture_logs

from runner.model import Health, JobState, RunRecord
from runner.plugin import Result, Status
from runner.results import ResultHub


def record(job: str, result: Result, at: float, duration_ms: float = 10.0) -> RunRecord:
    return RunRecord.of(job, "sleep", result, started_at=at, duration_ms=duration_ms)


class Keep:
    def __init__(self) -> None:
        self.got: list[tuple[RunRecord, JobState]] = []

    async def start(self, exit_stack: AsyncExitStack) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        self.got.append((record, state))


def test_state_follows_streaks_and_since_is_the_first_result_of_the_streak() -> None:
    hub = ResultHub()
    hub.track("api", "http-status", "check")
    assert hub.state("api").state is Health.UNKNOWN and hub.state("api").since is None

    first_ok = hub.publish(record("api", Result.ok(), 100.0))
    assert first_ok.state is Health.OK and first_ok.since == 100.01
    second_ok = hub.publish(record("api", Result.ok(), 130.0))
    assert second_ok.since == 100.01 and second_ok.consecutive_ok == 2

    down = hub.publish(record("api", Result.fail("status 500"), 160.0))
    hub.publish(record("api", Result.error("connection refused"), 190.0))
    timeout = hub.publish(record("api", Result(Status.TIMEOUT, "no answer"), 220.0))
    assert down.since == 160.01
    assert timeout.state is Health.FAILING and timeout.since == 160.01
    assert (timeout.consecutive_ok, timeout.consecutive_not_ok) == (0, 3)
    assert dict(timeout.counts) == {"ok": 2, "fail": 1, "error": 1, "timeout": 1}
    assert (timeout.runs, timeout.failures) == (5, 3)
    assert timeout.last is not None and timeout.last.status == "timeout"

    back = hub.publish(record("api", Result.ok(), 250.0))
    assert back.state is Health.OK and back.since == 250.01 and back.consecutive_ok == 1


def test_every_sink_gets_the_record_with_the_state_after_it_even_if_one_raises() -> None:
    class Broken(Keep):
        def submit(self, record: RunRecord, state: JobState) -> None:
            raise RuntimeError("disk on fire")

    keep = Keep()
    hub = ResultHub([Broken(), keep])
    with capture_logs() as logs:
        hub.publish(record("a", Result.fail("bad"), 1.0))
    assert [(r.job, s.state) for r, s in keep.got] == [("a", Health.FAILING)]
    assert [e["event"] for e in logs] == ["sink.failed"]
    assert logs[0]["error"] == "disk on fire"


def test_seeded_state_survives_into_a_tracked_job_and_a_reload_keeps_the_streak() -> None:
    hub = ResultHub()
    stored = JobState(
        job="api",
        plugin="http-status",
        kind="check",
        state=Health.FAILING,
        since=1000.0,
        consecutive_not_ok=7,
        counts={"ok": 3, "fail": 7},
    )
    hub.seed([stored])
    tracked = hub.track("api", "http-status", "check")
    assert tracked.state is Health.FAILING and tracked.since == 1000.0
    still = hub.publish(record("api", Result.fail("status 500"), 2000.0))
    assert still.since == 1000.0 and still.consecutive_not_ok == 8
    assert still.counts["fail"] == 8
    # A reload that changes the job tracks it again: the streak goes on.
    again = hub.track("api", "http-status", "check")
    assert again.since == 1000.0 and again.consecutive_not_ok == 8
    hub.forget("api")
    assert "api" not in hub.states


def test_services_and_skips_are_state_too() -> None:
    hub = ResultHub()
    hub.track("echo", "echo-listener", "service")
    hub.track("nap", "sleep", "check")
    hub.service_failed("echo", "port 7 is in use")
    assert hub.state("echo").is_failing and hub.state("echo").last_error == "port 7 is in use"
    hub.service_ready("echo")
    assert not hub.state("echo").is_failing and hub.state("echo").state is Health.OK
    hub.skipped("nap")
    hub.publish(record("nap", Result.ok(), 5.0))
    assert hub.totals() == {"ok": 1, "skipped": 1}


def test_a_result_changes_only_what_a_result_changes() -> None:
    # publish() builds the new state field by field (for speed): a field added
    # to JobState and forgotten there would silently reset on every result.
    hub = ResultHub(keep_recent=3)
    tracked = hub.track("api", "http-status", "check", failure_threshold=5, success_threshold=4)
    hub._states["api"] = replace(
        tracked,
        state=Health.OK,
        consecutive_ok=1,
        skipped=7,
        ready=True,
        last_error="was down",
        state_changes=2,
        recent_codes="ffo",
    )
    before = hub.state("api")
    after = hub.publish(record("api", Result(Status.TIMEOUT, "slow"), 50.0))
    changed = {
        f.name for f in fields(JobState) if getattr(before, f.name) != getattr(after, f.name)
    }
    assert changed == {
        "state",
        "since",
        "consecutive_ok",
        "consecutive_not_ok",
        "last",
        "counts",
        "state_changes",
        "recent_codes",
    }
    assert after.recent == ("fail", "ok", "timeout")  # the last keep_recent, oldest first
    assert (after.skipped, after.failure_threshold, after.success_threshold) == (7, 5, 4)
