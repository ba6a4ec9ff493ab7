"""A finished run of a check, as logged, stored and reported (:class:`RunRecord`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner.plugin import Result, Status
from runner.safe_json import json_safe, text

__all__ = ["RunRecord", "format_time"]


def format_time(epoch: float) -> str:
    """UTC wall-clock time as ISO 8601 with a ``Z``, the form every log line uses."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One finished run of a check, as logged, stored and reported.

    Times are UTC wall-clock seconds since the epoch (``time.time()``);
    ``duration_ms`` is measured on the monotonic clock, so it is exact even
    when the wall clock jumps. ``attempts`` counts the tries of a run with
    ``retries``; ``attempt_errors`` says what each try before the last got.
    ``maintenance`` names the maintenance window the run started in, if any;
    ``member`` the cluster member that made it, and ``location`` where that
    member is (``--location``).
    """

    job: str
    plugin: str
    status: Status
    message: str | None
    fields: Mapping[str, Any]
    started_at: float
    finished_at: float
    duration_ms: float
    attempts: int = 1
    attempt_errors: tuple[str, ...] = ()
    #: The name of the maintenance window the run started in (the hub sets it);
    #: None outside any window.
    maintenance: str | None = None
    #: In a cluster, the member that made the run (the hub sets it); else None.
    member: str | None = None
    #: In a cluster, the location of the member that made the run; else None.
    location: str | None = None

    @classmethod
    def of(
        cls,
        job: str,
        plugin: str,
        result: Result,
        *,
        started_at: float,
        duration_ms: float,
        attempts: int = 1,
        member: str | None = None,
        location: str | None = None,
    ) -> RunRecord:
        """The record of ``result``, a run that began at ``started_at`` (wall clock)."""
        return cls(
            job=job,
            plugin=plugin,
            status=result.status,
            # Whatever a plugin put in them, a record serialises (runner.safe_json).
            message=None if result.message is None else text(result.message),
            fields=json_safe(result.fields),
            started_at=started_at,
            finished_at=started_at + duration_ms / 1000,
            duration_ms=duration_ms,
            attempts=attempts,
            member=member,
            location=location,
        )

    def by_member(self, member: str, location: str | None = None) -> RunRecord:
        """This record, made by the cluster member ``member``. Field by field
        rather than dataclasses.replace, which looks every field up by name
        (2.3 us against 4.5). A scheduled run's record is made with its member
        already (:func:`runner.execution.run_attempts`); this is for the others."""
        return RunRecord(
            self.job,
            self.plugin,
            self.status,
            self.message,
            self.fields,
            self.started_at,
            self.finished_at,
            self.duration_ms,
            self.attempts,
            self.attempt_errors,
            self.maintenance,
            member,
            location,
        )

    @property
    def result(self) -> Result:
        """The plugin's result, without the daemon's timing."""
        return Result(self.status, self.message, self.fields)

    def as_logged(self) -> dict[str, Any]:
        """The fields of the ``job.finished`` log event (without timestamp and level)."""
        out: dict[str, Any] = {
            "job": self.job,
            "plugin": self.plugin,
            "status": self.status.value,
            "duration_ms": self.duration_ms,
        }
        if self.message is not None:
            out["message"] = self.message
        if self.attempts != 1:
            out["attempts"] = self.attempts
        if self.attempt_errors:
            out["attempt_errors"] = list(self.attempt_errors)
        if self.maintenance is not None:
            out["maintenance"] = self.maintenance
        if self.member is not None:
            out["member"] = self.member
        if self.location is not None:
            out["location"] = self.location
        out.update(self.fields)
        return out

    def to_json(self) -> dict[str, Any]:
        """As logged, plus ``started_at``/``finished_at`` (ISO 8601 UTC) and ``attempts``:
        the result object of ``runner status --json`` and ``runner history --json``."""
        out = self.as_logged()
        out["started_at"] = format_time(self.started_at)
        out["finished_at"] = format_time(self.finished_at)
        out["attempts"] = self.attempts
        return out
