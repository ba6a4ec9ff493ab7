"""Where finished runs go.

Every finished run is handed to each sink. The default sink logs one
``job.finished`` event; metrics or history can be added as further sinks
without touching the scheduler.
"""

from __future__ import annotations

from typing import Any, Protocol

from runner.config import Job
from runner.execution import Outcome
from runner.log import get_logger
from runner.plugin import Status

_LEVELS = {
    Status.OK: "info",
    Status.FAIL: "warning",
    Status.TIMEOUT: "warning",
    Status.ERROR: "error",
}


class ResultSink(Protocol):
    def record(self, job: Job, outcome: Outcome) -> None:
        """Take one finished run. Must not block the event loop."""


def result_fields(job: Job, outcome: Outcome) -> dict[str, Any]:
    """The public fields of a result event, as logged (without timestamp and level)."""
    result = outcome.result
    fields: dict[str, Any] = {
        "job": job.name,
        "plugin": job.plugin_name,
        "status": result.status.value,
        "duration_ms": outcome.duration_ms,
    }
    if result.message is not None:
        fields["message"] = result.message
    fields.update(result.fields)
    return fields


class LogSink:
    """Logs each result as one ``job.finished`` event."""

    def __init__(self) -> None:
        self._log = get_logger()

    def record(self, job: Job, outcome: Outcome) -> None:
        level = _LEVELS[outcome.result.status]
        getattr(self._log, level)("job.finished", **result_fields(job, outcome))
