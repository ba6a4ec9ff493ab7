"""The result path: one record per finished run, one hub that owns per-job state.

Every finished run of a check becomes one immutable
:class:`~runner.model.RunRecord`. The scheduler hands it to the
:class:`ResultHub` (one call, :meth:`ResultHub.publish`, whether the run
ended or was abandoned), which

1. updates that job's :class:`JobState` (current state and since when,
   consecutive ok / not-ok counts, counts by status, the last result, the
   last durations, whether it is down: the job's
   :class:`~runner.model.Thresholds` decide), and
2. passes the record and the new state to each sink, one call each.

A run that started in a maintenance window (:attr:`ResultHub.maintenance`)
is named so on its record here, once, and its down/recovered transition is
held: every sink sees the same answer.

Everything that reports on jobs reads the hub's state or receives those
records: the log line, history, alerts, the offline hint, systemd's STATUS
line, ``runner run``'s summary, and through :mod:`runner.status` the CLI's
tables, ``/api/status``, the status page and ``/metrics``. Nobody else keeps
counters of their own.

A sink's :meth:`Sink.submit` is called on the event loop for every result and
must return at once: a sink that does slow work (a database) queues the record
and does the work in its own task, started through the daemon's lifetime
(:meth:`Sink.start`). See :class:`runner.history.HistorySink`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import fields, replace
from typing import Protocol

from runner.log import get_logger, log_result, secret_masker
from runner.model import STATUS_CODES, Health, JobState, Maintenance, Rule, RunRecord, Thresholds
from runner.plugin import Status

__all__ = ["LogSink", "ResultHub", "Sink"]

#: The fields of JobState in the order :meth:`ResultHub.publish` passes them.
_STATE_FIELDS = (
    "job",
    "plugin",
    "kind",
    "state",
    "since",
    "consecutive_ok",
    "consecutive_not_ok",
    "last",
    "counts",
    "skipped",
    "ready",
    "last_error",
    "down",
    "down_since",
    "transition",
    "failure_threshold",
    "success_threshold",
    "state_changes",
    "recent_codes",
    "thresholds",
)
if tuple(f.name for f in fields(JobState)) != _STATE_FIELDS:
    # Not an assert (gone under -O): a field added or moved would otherwise
    # shift every value after it into the wrong field, silently.
    raise ImportError(
        "runner.model.JobState's fields changed: update _STATE_FIELDS and "
        "ResultHub.publish's positional JobState(...) in runner/results.py to match"
    )

_LEVELS = {
    Status.OK: "info",
    Status.FAIL: "warning",
    Status.TIMEOUT: "warning",
    Status.ERROR: "error",
}


class Sink(Protocol):
    """Where finished runs go: the log, history, alerts, the offline hint."""

    async def start(self, exit_stack: AsyncExitStack) -> None:
        """Open what the sink needs and push its cleanup onto ``exit_stack``.

        The daemon closes sinks after every job has stopped, so a sink's
        cleanup sees every result (history flushes its queue there).
        """

    def submit(self, record: RunRecord, state: JobState) -> None:
        """Take one finished run and the job's state after it.

        Called on the event loop for every result: must not block and should
        not raise (an exception is logged and the other sinks still get the
        record). Queue anything slow.
        """


class ResultHub:
    """Owns the per-job state and fans every record out to the sinks.

    Only the scheduler (through :meth:`publish`, :meth:`skipped`,
    :meth:`service_ready` and :meth:`service_failed`) and the daemon (through
    :meth:`track`, :meth:`forget` and :meth:`seed`) change it; everybody else
    reads :attr:`states`.
    """

    def __init__(self, sinks: Iterable[Sink] = (), *, keep_recent: int = 100) -> None:
        self.sinks: list[Sink] = list(sinks)
        #: How many of each job's last statuses :attr:`JobState.recent_codes` keeps.
        self.keep_recent = keep_recent
        self._states: dict[str, JobState] = {}
        #: States read from history at start, applied when the job is tracked.
        self._seeded: dict[str, JobState] = {}
        #: The config's maintenance windows (the daemon sets them, again on reload).
        self.maintenance = Maintenance()
        #: In a cluster, this daemon's member name: each record carries it.
        self.member: str | None = None
        #: In a cluster, where this member is (``--location``): each record carries it.
        self.location: str | None = None
        self._log = get_logger()

    # ------------------------------------------------------------------ reading

    @property
    def states(self) -> Mapping[str, JobState]:
        """The state of every tracked job, by name (a copy)."""
        return dict(self._states)

    def state(self, job: str) -> JobState:
        return self._states[job]

    def totals(self) -> Counter[str]:
        """Results by status, plus ``skipped``, over every tracked job."""
        totals: Counter[str] = Counter()
        for state in self._states.values():
            totals.update(state.counts)
            if state.skipped:
                totals["skipped"] += state.skipped
        return totals

    # ------------------------------------------------------------------ jobs

    def seed(self, states: Iterable[JobState]) -> None:
        """Take states rebuilt from history: a job tracked later starts from its
        stored state (failing since 03:12 stays failing since 03:12)."""
        for state in states:
            self._seeded[state.job] = state

    def track(
        self,
        job: str,
        plugin: str,
        kind: str,
        *,
        failure_threshold: int = 3,
        success_threshold: int = 2,
        thresholds: Thresholds | None = None,
    ) -> JobState:
        """Start keeping state for a job (at start, or when a reload adds or changes it).

        ``thresholds`` decide when it is down and recovered (the job's
        :attr:`~runner.model.Job.thresholds`); without them,
        ``failure_threshold`` and ``success_threshold`` results in a row.
        """
        if thresholds is None:
            thresholds = Thresholds(
                Rule.in_a_row(failure_threshold), Rule.in_a_row(success_threshold)
            )
        if thresholds.window > self.keep_recent:
            raise ValueError(
                f"job {job!r}: its alerting rule counts in the last {thresholds.window} "
                f"results, but the hub keeps {self.keep_recent}"
            )
        failure_threshold, success_threshold = thresholds.down.count, thresholds.up.count
        seeded = self._seeded.pop(job, None)
        previous = self._states.get(job) or seeded
        if previous is not None and previous.kind == kind:
            # A reload that changed a job keeps its history and streak.
            state = replace(
                previous,
                plugin=plugin,
                ready=False,
                last_error=None,
                transition=None,
                failure_threshold=failure_threshold,
                success_threshold=success_threshold,
                thresholds=thresholds,
            )
        else:
            state = JobState(
                job=job,
                plugin=plugin,
                kind=kind,
                failure_threshold=failure_threshold,
                success_threshold=success_threshold,
                thresholds=thresholds,
            )
        self._states[job] = state
        return state

    def forget(self, job: str) -> None:
        """Stop keeping state for a job removed by a reload."""
        self._states.pop(job, None)

    # ------------------------------------------------------------------ updates

    def publish(self, record: RunRecord) -> JobState:
        """Update the job's state with ``record``, then hand both to every sink."""
        if secret_masker.active:
            # A ${SECRET} in a URL can come back in a message or a field: mask it
            # here, once, so no sink (history, alerts, the HTTP API) ever has it.
            record = replace(
                record,
                message=secret_masker.mask(record.message),
                fields=secret_masker.mask(dict(record.fields)),
                attempt_errors=tuple(secret_masker.mask(list(record.attempt_errors))),
            )
        # Maintenance: a run that started in a window carries the window's name,
        # and its down/recovered transition is held (below).
        window = self.maintenance.active(record.job, record.started_at)
        held = window is not None
        if window is not None:
            record = replace(record, maintenance=window.name)
        if self.member is not None and (record.member is None or record.location != self.location):
            record = record.by_member(record.member or self.member, self.location)
        state = self._states.get(record.job)
        if state is None:  # `runner run --job`, tests: a job nobody tracked
            state = self.track(record.job, record.plugin, "check")
        status = record.status
        ok = status is Status.OK
        counts = dict(state.counts)
        counts[status.value] = counts.get(status.value, 0) + 1
        if ok:
            streak_starts = state.state is not Health.OK
            consecutive_ok, consecutive_not_ok = state.consecutive_ok + 1, 0
            health = Health.OK
        else:
            streak_starts = state.state is not Health.FAILING
            consecutive_ok, consecutive_not_ok = 0, state.consecutive_not_ok + 1
            health = Health.FAILING
        since = record.finished_at if streak_starts else state.since
        # The first result counts too (out of unknown): a counter that is 0
        # until the state changes lets Prometheus see every change.
        changed = int(streak_starts)
        recent_codes = (state.recent_codes + STATUS_CODES[status])[-self.keep_recent :]
        # The job's rules decide (runner.model.alerting); down_since is the
        # first failure of the streak that made it down. Only an ok result can
        # end an incident and only one that is not ok can start one: the
        # usual case (ok while up) skips the call.
        #
        # In a maintenance window (held) there is no transition, so no alert;
        # the streaks and recent statuses keep counting, so the first result
        # after the window applies the rules at once: still failing then is
        # down then.
        down, down_since, transition = state.down, state.down_since, None
        if ok is down and not held:
            transition = state.thresholds.transition(
                down, ok, consecutive_ok or consecutive_not_ok, recent_codes
            )
        if transition is not None:
            down = not down
            down_since = since if down else None
        # Positional (in _STATE_FIELDS' order): this runs for every result,
        # and a frozen dataclass's keyword __init__ cost 6.9 us a state against
        # 4.4 (dataclasses.replace more still: it looks every field up by name).
        state = JobState(
            state.job,
            state.plugin,
            state.kind,
            health,
            since,
            consecutive_ok,
            consecutive_not_ok,
            record,
            counts,
            state.skipped,
            state.ready,
            state.last_error,
            down,
            down_since,
            transition,
            state.failure_threshold,
            state.success_threshold,
            state.state_changes + changed,
            recent_codes,
            state.thresholds,
        )
        self._states[record.job] = state
        for sink in self.sinks:
            try:
                sink.submit(record, state)
            except Exception as exc:  # one broken sink must not lose the result for others
                self._log.error("sink.failed", sink=type(sink).__name__, error=str(exc))
        return state

    def skipped(self, job: str) -> None:
        """A run was due while the previous one was still going."""
        state = self._states.get(job)
        if state is not None:
            self._states[job] = replace(state, skipped=state.skipped + 1)

    def service_ready(self, job: str) -> None:
        self._update_service(job, ready=True, last_error=None)

    def service_failed(self, job: str, error: str) -> None:
        self._update_service(job, ready=False, last_error=error)

    def _update_service(self, job: str, *, ready: bool, last_error: str | None) -> None:
        state = self._states.get(job)
        if state is None:
            return
        changed = state.ready != ready or state.since is None
        self._states[job] = replace(
            state,
            ready=ready,
            last_error=last_error,
            state=Health.OK if ready else Health.FAILING,
            since=time.time() if changed else state.since,
        )


class LogSink:
    """Logs each result as one ``job.finished`` event."""

    def __init__(self) -> None:
        self._log = get_logger()

    async def start(self, exit_stack: AsyncExitStack) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        level = _LEVELS[record.status]
        fields = record.as_logged()
        if not log_result(level, "job.finished", fields):
            getattr(self._log, level)("job.finished", **fields)
