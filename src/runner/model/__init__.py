"""The shared nouns: what the config, the engine, storage, alerts and the read
side all speak of. The ground floor: these modules import nothing of the
engine (only the public plugin API, durations and schedules), so anything may
import them.

* :mod:`runner.model.job`: :class:`Job`, :class:`NotifierConfig`, :class:`Retry`
* :mod:`runner.model.record`: :class:`RunRecord` (one finished run), :func:`format_time`
* :mod:`runner.model.state`: :class:`JobState` (one job now), :class:`Health`
* :mod:`runner.model.alerts`: :class:`Sent` (the alert ledger's record)
* :mod:`runner.model.alerting`: :class:`Thresholds`, :class:`Rule` (when a job
  is down, when it has recovered)
* :mod:`runner.model.maintenance`: :class:`Maintenance` (the windows), :class:`Window`
"""

from runner.model.alerting import MAX_WINDOW, Rule, Thresholds
from runner.model.alerts import Sent
from runner.model.job import NO_RETRY, Job, NotifierConfig, Retry
from runner.model.maintenance import Maintenance, Occurrence, Window
from runner.model.record import RunRecord, format_time
from runner.model.state import STATUS_CODES, Health, JobState

__all__ = [
    "MAX_WINDOW",
    "NO_RETRY",
    "STATUS_CODES",
    "Health",
    "Job",
    "JobState",
    "Maintenance",
    "NotifierConfig",
    "Occurrence",
    "Retry",
    "Rule",
    "RunRecord",
    "Sent",
    "Thresholds",
    "Window",
    "format_time",
]
