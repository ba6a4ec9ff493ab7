"""What is known about one job now (:class:`JobState`) and its :class:`Health`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from runner.model.alerting import DEFAULT_THRESHOLDS, OK_CODE, Thresholds
from runner.model.record import RunRecord
from runner.plugin import Status

__all__ = ["STATUS_CODES", "Health", "JobState"]

#: One letter per status, for :attr:`JobState.recent_codes`.
STATUS_CODES = {Status.OK: OK_CODE, Status.FAIL: "f", Status.TIMEOUT: "t", Status.ERROR: "e"}
_STATUS_OF_CODE = {code: status.value for status, code in STATUS_CODES.items()}


class Health(StrEnum):
    """A job's current state: ``ok`` when its last result was ok, ``failing``
    when it was not (fail, error or timeout), ``unknown`` before the first."""

    OK = "ok"
    FAILING = "failing"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class JobState:
    """What is known about one job now. Immutable: the hub replaces it on every
    change, so a consumer may keep the one it was given.

    For a check, ``since`` is the ``finished_at`` of the first result of the
    current streak (ok, or not ok); ``counts`` counts results by status since
    the history began (or since start, without history). For a service,
    ``ready`` tells whether it is up and ``last_error`` why it is not.

    ``down`` is the alerting state, decided by ``thresholds``
    (:mod:`runner.model.alerting`): set when the down rule holds
    (``failure_threshold`` non-ok results in a row, or ``down_when``: so many
    of the last so many), cleared when the up rule holds. ``down_since`` is
    the ``since`` of the result that made the job down: the first failure of
    its streak, so with a rule in a row the first of the failures counted,
    and with a window the first of the failures in a row that completed it
    (the result itself when the one before was ok). ``transition`` is
    ``down`` or ``recovered`` on the one state where that happened, else
    None. ``failure_threshold`` and ``success_threshold`` are the counts of
    the two rules (for display); ``thresholds`` is what decides.
    """

    job: str
    plugin: str
    kind: str
    state: Health = Health.UNKNOWN
    since: float | None = None
    consecutive_ok: int = 0
    consecutive_not_ok: int = 0
    last: RunRecord | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0
    ready: bool = False
    last_error: str | None = None
    down: bool = False
    down_since: float | None = None
    transition: str | None = None
    failure_threshold: int = 3
    success_threshold: int = 2
    #: Times the state changed (since start): out of unknown (the first
    #: result), from ok to failing, or back.
    state_changes: int = 0
    #: The statuses of the last results, oldest first (rebuilt from history
    #: at start), one letter each (:data:`STATUS_CODES`): a hundred results
    #: of ten thousand jobs in one short string each, not a tuple of names each.
    recent_codes: str = ""
    #: The down and up rules (the hub sets them from the job's config).
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    @property
    def recent(self) -> tuple[str, ...]:
        """The statuses of the last results, oldest first (``"ok"``, ``"fail"``, ...)."""
        return tuple(_STATUS_OF_CODE[code] for code in self.recent_codes)

    @property
    def runs(self) -> int:
        return sum(self.counts.values())

    @property
    def failures(self) -> int:
        """Results that were not ok."""
        return self.runs - self.counts.get(Status.OK.value, 0)

    @property
    def is_failing(self) -> bool:
        """A check whose last result was not ok, or a service that is not up."""
        if self.kind == "service":
            return not self.ready
        return self.state is Health.FAILING
