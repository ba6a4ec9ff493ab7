"""A validated job and notifier, ready to run, and how a failed attempt is retried."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from runner.model.alerting import Rule, Thresholds
from runner.plugin import Plugin, Result, Status
from runner.schedules import Schedule

__all__ = ["LOCATION_PATTERN", "NO_RETRY", "Job", "NotifierConfig", "Retry", "check_location"]

#: A location's name (``--location``, ``locations:``): letters, digits, ``.``, ``_``, ``-``.
LOCATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_LOCATION = re.compile(LOCATION_PATTERN)


def check_location(name: str) -> str:
    """``name`` if it is a valid location name, else ValueError saying what one is."""
    if name == "all" or not _LOCATION.match(name):
        raise ValueError(
            f"{name!r} is not a location name: use letters, digits, '.', '_' and '-' "
            "(at most 63, starting with a letter or digit; 'all' is reserved), such as eu-west"
        )
    return name


@dataclass(frozen=True, slots=True)
class Retry:
    """How a failed attempt is tried again within the same run (``retries:``).

    ``delay`` is the pause before each retry; ``exponential`` doubles it each
    time, up to ``max_delay``. Every attempt and pause fits in the job's
    timeout: a retry that could not start before it is not made.
    """

    retries: int = 0
    delay: float = 1.0
    exponential: bool = False
    max_delay: float = 30.0

    def pause_after(self, result: Result, attempt: int, time_left: float) -> float | None:
        """The pause before another attempt after attempt number ``attempt`` got
        ``result``; None when there is none: it passed, the retries are used
        up, or the pause would not end before the deadline (``time_left``)."""
        if result.status is Status.OK or attempt > self.retries:
            return None
        pause = self.pause_before(attempt + 1)
        return None if pause >= time_left else pause

    def pause_before(self, attempt: int) -> float:
        """The pause before attempt number ``attempt`` (2 for the first retry)."""
        if not self.exponential:
            return self.delay
        return min(self.delay * 2.0 ** (attempt - 2), self.max_delay)


NO_RETRY = Retry()


# Slots: a daemon holds one Job per check for its whole life (10,000 of them
# at the scale bench/README.md measures); without slots each carried a
# values array and a dict of its own, 0.3 KiB a job more (issue 23).
@dataclass(frozen=True, slots=True)
class Job:
    """A validated job, ready to schedule."""

    name: str
    plugin_name: str
    plugin: type[Plugin[Any]]
    options: BaseModel
    #: When the check runs; None for services (they run continuously).
    schedule: Schedule | None
    timeout: float | None  # None for services
    line: int
    #: Names of the config's notifiers told when this job goes down or recovers.
    notify: tuple[str, ...] = ()
    #: How many results not ok make the job down: in a row, or among the last
    #: ``failure_window`` (``down_when``).
    failure_threshold: int = 3
    #: How many ok results make a down job recovered: in a row, or among the
    #: last ``success_window`` (``up_when``).
    success_threshold: int = 2
    retry: Retry = NO_RETRY
    #: ``down_when``'s ``of``; None: ``failure_threshold`` in a row.
    failure_window: int | None = None
    #: ``up_when``'s ``of``; None: ``success_threshold`` in a row.
    success_window: int | None = None
    #: In a cluster: a digest of the job as written (before ``${ENV}`` values
    #: are put in) and of the config's ``defaults:``. Members run a job only
    #: where this is the same; "" outside a cluster.
    definition: str = ""
    #: In a cluster: the locations the check runs from, once per slot each
    #: (``locations:``); ``("all",)`` for every location a member has; None:
    #: once anywhere.
    locations: tuple[str, ...] | None = None
    #: With ``locations``: how many failing make the check down; None: more than half.
    quorum: int | None = None

    @property
    def runs_everywhere(self) -> bool:
        """``locations: all``: from every location a member of the cluster has."""
        return self.locations == ("all",)

    def quorum_of(self, locations: int) -> int:
        """How many of ``locations`` failing make the check down."""
        return self.quorum if self.quorum is not None else locations // 2 + 1

    @property
    def kind(self) -> str:
        """``check`` or ``service``."""
        kind: str = self.plugin.kind
        return kind

    @property
    def thresholds(self) -> Thresholds:
        """The down and up rules, in the form the hub decides with (one object
        for every job with the same rules)."""
        return _thresholds(
            self.failure_threshold,
            self.failure_window or self.failure_threshold,
            self.success_threshold,
            self.success_window or self.success_threshold,
        )

    @property
    def is_service(self) -> bool:
        """Whether the job is a service: from its plugin's kind, nothing else."""
        return self.kind == "service"

    def fingerprint(self) -> tuple[Any, ...]:
        """What must be equal for a reload to leave the job untouched."""
        return (
            self.plugin_name,
            self.plugin,
            self.schedule,
            self.timeout,
            self.options.model_dump_json(),
            self.notify,
            self.failure_threshold,
            self.success_threshold,
            self.retry,
            self.failure_window,
            self.success_window,
            self.locations,
            self.quorum,
        )


@functools.lru_cache(maxsize=256)
def _thresholds(failures: int, failures_of: int, successes: int, successes_of: int) -> Thresholds:
    return Thresholds(Rule(failures, failures_of), Rule(successes, successes_of))


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    """A validated ``notifiers:`` entry."""

    name: str
    notifier_name: str
    notifier: type[Plugin[Any]]
    options: BaseModel
    send_on_resolved: bool
    repeat_every: float | None
    line: int
