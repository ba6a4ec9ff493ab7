"""When a job is down and when it has recovered: one rule for both forms of the config.

``failure_threshold: 3`` is ``down_when: {failures: 3, of: 3}`` (three
failures in a row), and ``down_when: {failures: 3, of: 5}`` is three failures
among the last five results, whatever their order: a target that alternates
ok and fail is then one incident, not one per flip. The up side is the same
with successes (``success_threshold``, ``up_when``).

:class:`Thresholds` is the one place that decides; the hub
(:meth:`runner.results.ResultHub.publish`) asks it once per result, with the
job's streak counts and its last statuses (:attr:`JobState.recent_codes
<runner.model.JobState.recent_codes>`). A rule "in a row" reads the streak
count (an integer comparison, as cheap as it was before windows); a window
counts in the last ``of`` letters of the statuses.

The rules are applied as written, at every result: a job goes down only on a
result that is not ok and recovers only on one that is ok, so with
``up_when: {successes: 2, of: 2}`` and ``down_when: {failures: 3, of: 10}`` a
job recovered after two passes goes down again on the next failure while
three failures are still among its last ten (with one ``of`` for both,
``successes + failures > of + 1`` avoids that).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_THRESHOLDS", "MAX_WINDOW", "OK_CODE", "Rule", "Thresholds"]

#: The longest window a rule may count in: the hub keeps each job's last
#: hundred statuses (:attr:`JobState.recent_codes <runner.model.JobState.recent_codes>`).
MAX_WINDOW = 100

#: The letter of an ok result in :attr:`JobState.recent_codes
#: <runner.model.JobState.recent_codes>` (:data:`runner.model.STATUS_CODES`
#: is built from it); every other letter is a result that was not ok.
OK_CODE = "o"


@dataclass(frozen=True, slots=True)
class Rule:
    """At least ``count`` of the last ``of`` results: failures (the down rule)
    or successes (the up rule). ``count == of`` is ``count`` in a row.

    Raises:
        ValueError: unless ``1 <= count <= of <= MAX_WINDOW``.
    """

    count: int
    of: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= self.of <= MAX_WINDOW:
            raise ValueError(
                f"expected 1 <= count <= of <= {MAX_WINDOW}, got count {self.count}, of {self.of}"
            )

    @classmethod
    def in_a_row(cls, count: int) -> Rule:
        """``count`` results in a row (``failure_threshold``, ``success_threshold``)."""
        return cls(count, count)

    @property
    def is_streak(self) -> bool:
        """Whether this is a rule of results in a row, decided by the streak count alone."""
        return self.count == self.of

    def describe(self, results: str) -> str:
        """``3 failures in a row``, ``3 failures of the last 5`` (``results``: the plural noun)."""
        if self.is_streak:
            return f"{self.count} {results} in a row"
        return f"{self.count} {results} of the last {self.of}"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A job's down rule and up rule, and the decision between them.

    ``down`` is met by results that were not ok (fail, error, timeout), ``up``
    by ok ones. The defaults are ``failure_threshold: 3`` and
    ``success_threshold: 2``.
    """

    down: Rule = Rule(3, 3)
    up: Rule = Rule(2, 2)

    @property
    def window(self) -> int:
        """How many of the last statuses the rules count in; 0 when both are
        rules in a row, which the streak counts decide alone."""
        return max(
            0 if self.down.is_streak else self.down.of,
            0 if self.up.is_streak else self.up.of,
        )

    def is_down(self, consecutive_not_ok: int, recent_codes: str) -> bool:
        """Whether the down rule holds, after a result that was not ok.

        Args:
            consecutive_not_ok: results not ok in a row, this one included.
            recent_codes: the last statuses, oldest first, this one last.
        """
        rule = self.down
        if rule.count == rule.of:
            return consecutive_not_ok >= rule.count
        window = recent_codes[-rule.of :]
        return len(window) - window.count(OK_CODE) >= rule.count

    def has_recovered(self, consecutive_ok: int, recent_codes: str) -> bool:
        """Whether the up rule holds, after an ok result (arguments as :meth:`is_down`)."""
        rule = self.up
        if rule.count == rule.of:
            return consecutive_ok >= rule.count
        return recent_codes[-rule.of :].count(OK_CODE) >= rule.count

    def transition(self, down: bool, ok: bool, consecutive: int, recent_codes: str) -> str | None:
        """``"down"``, ``"recovered"`` or None: what one result changes.

        Args:
            down: whether the job was down before this result.
            ok: whether this result was ok.
            consecutive: the streak this result is in (ok results in a row
                when it was ok, else results not ok in a row), itself included.
            recent_codes: the last statuses, oldest first, this one last.
        """
        if ok:
            return "recovered" if down and self.has_recovered(consecutive, recent_codes) else None
        return "down" if not down and self.is_down(consecutive, recent_codes) else None


#: failure_threshold 3, success_threshold 2.
DEFAULT_THRESHOLDS = Thresholds()
