"""Loading a config file: every step from the YAML text to a :class:`Config`.

Read the file with the line of every value (:mod:`~runner.config.source`),
expand ``${VAR}`` (:mod:`~runner.config.env`), validate each section with its
spec (:mod:`~runner.config.specs`), resolve each job's plugin and each
notifier through the registry (:mod:`~runner.config.plugins`), and build the
ground floor's :class:`~runner.model.Job` and
:class:`~runner.model.NotifierConfig`. Every problem met on the way is
collected (:mod:`~runner.config.problems`) and raised at the end, together.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from runner import yaml_source
from runner.config.env import expand_env
from runner.config.plugins import Resolver
from runner.config.problems import ConfigError, Problem, Problems, close_matches
from runner.config.source import Document, PathTuple, read_document
from runner.config.specs import (
    ALERT_RULE_KEYS,
    CHECK_ONLY,
    TOP_LEVEL,
    ClusterSpec,
    Defaults,
    HistorySpec,
    HttpSpec,
    JobSpec,
    MaintenanceSpec,
    NotifierSpec,
)
from runner.model import (
    NO_RETRY,
    Job,
    Maintenance,
    NotifierConfig,
    Retry,
    Rule,
    Thresholds,
    Window,
    format_time,
)
from runner.pings import PingedCheck
from runner.plugin import Plugin
from runner.registry import Registry
from runner.schedules import (
    AlignedInterval,
    Cron,
    Interval,
    Jittered,
    Schedule,
    jitter_offset,
)

__all__ = ["Config", "load_config", "retry_of", "schedule_of", "thresholds_of"]

_Spec = TypeVar("_Spec", bound=BaseModel)


@dataclass(frozen=True)
class Config:
    """A loaded config: its jobs and notifiers resolved, ready to run."""

    path: Path
    jobs: tuple[Job, ...]
    #: Values substituted from the environment; logs mask them.
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    #: (job, reason) for jobs whose plugin is installed but cannot be loaded;
    #: only with ``keep_unloadable=True``, otherwise those are errors.
    unloadable: tuple[tuple[str, str], ...] = ()
    history: HistorySpec = field(default_factory=HistorySpec)
    notifiers: tuple[NotifierConfig, ...] = ()
    http: HttpSpec | None = None
    #: The maintenance windows (``maintenance:``), matched to the jobs.
    maintenance: Maintenance = field(default_factory=Maintenance)
    #: ``cluster:``: several daemons share this config's checks (runner.cluster).
    cluster: ClusterSpec | None = None

    @property
    def cluster_name(self) -> str | None:
        """The cluster's name (default: the config file's stem); None outside one."""
        if self.cluster is None:
            return None
        return self.cluster.name or self.path.stem

    @property
    def checks(self) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if not j.is_service)

    @property
    def services(self) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if j.is_service)


def load_config(
    path: str | os.PathLike[str],
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    keep_unloadable: bool = False,
) -> Config:
    """Read, validate and resolve a config file.

    Args:
        keep_unloadable: a job whose plugin is installed but fails to load
            (import error, missing module) is kept as a job whose every run
            is an ``error`` result, instead of being a config error. The
            daemon uses this so one broken plugin cannot stop the others;
            ``runner check`` does not. An unknown plugin name is always an error.

    Raises:
        ConfigError: listing every problem found, each with file, line, job and field.
    """
    registry = registry if registry is not None else Registry.discover()
    document = _read(Path(path))
    return _Loader(
        Path(path),
        document,
        registry,
        os.environ if environ is None else environ,
        keep_unloadable,
    ).load()


def schedule_of(
    spec: JobSpec,
    defaults: Defaults,
    plugin: type[Plugin[Any]] | None = None,
    options: BaseModel | None = None,
    *,
    clustered: bool = False,
) -> Schedule:
    """When a check runs: a pinged check's (heartbeat's) deadlines from its
    options; else its cron line (in its zone, else the default zone), else its
    own interval, else the default one; delayed by its jitter's stable offset
    when it (or ``defaults``) has one.

    In a cluster (``clustered``) an interval's slots are on the wall clock,
    the same on every member (:class:`~runner.schedules.AlignedInterval`), so
    a job that moves keeps its slots."""
    if plugin is not None and issubclass(plugin, PingedCheck):
        return plugin.schedule_for(options)
    schedule: Schedule
    if spec.cron is not None:
        schedule = Cron(spec.cron, spec.timezone or defaults.timezone)
    elif clustered:
        every = spec.interval or defaults.interval
        # Phases spread over at most a second, as first runs are outside a cluster.
        schedule = AlignedInterval(every, jitter_offset(spec.name, min(every, 1.0)))
    else:
        schedule = _interval(spec.interval or defaults.interval)
    jitter = spec.jitter or defaults.jitter
    if jitter:
        schedule = Jittered(schedule, jitter_offset(spec.name, jitter))
    return schedule


#: Job keys a pinged check (heartbeat) does not take: its options say when it
#: is due, and there is nothing to retry.
PINGED_REFUSES = (
    "interval",
    "cron",
    "timezone",
    "jitter",
    "retries",
    "retry_delay",
    "retry_delay_max",
)


def retry_of(spec: JobSpec, defaults: Defaults) -> Retry:
    """How a check's failed attempt is tried again: its own keys, else the defaults."""
    retries = spec.retries if spec.retries is not None else defaults.retries
    delay = spec.retry_delay if spec.retry_delay is not None else defaults.retry_delay
    cap = spec.retry_delay_max or defaults.retry_delay_max
    if delay == "exponential":
        return _retry(retries, 1.0, True, cap)
    assert isinstance(delay, float)
    return _retry(retries, delay, False, NO_RETRY.max_delay)


# Retries and intervals are frozen values: jobs that say the same share one
# object (as the thresholds do, model.job._thresholds) instead of holding a
# copy each, 0.2 KiB a job at 10,000 jobs (issue 23).
@functools.lru_cache(maxsize=256)
def _retry(retries: int, delay: float, exponential: bool, max_delay: float) -> Retry:
    retry = Retry(retries, delay, exponential=exponential, max_delay=max_delay)
    return NO_RETRY if retry == NO_RETRY else retry


@functools.lru_cache(maxsize=256)
def _interval(every: float) -> Interval:
    return Interval(every)


def thresholds_of(spec: JobSpec, defaults: Defaults) -> Thresholds:
    """When a check is down and when it has recovered.

    Each side on its own: the job's own key (``failure_threshold`` or
    ``down_when``; ``success_threshold`` or ``up_when``) replaces whatever
    ``defaults`` say for that side, in either form; without one, the side is
    the default's ``down_when`` (``up_when``) if it has one, else its
    ``failure_threshold`` (``success_threshold``). Giving both forms in one
    place is a config error (:meth:`_Loader.check_one_rule_form`).
    """
    if spec.failure_threshold is not None:
        down = Rule.in_a_row(spec.failure_threshold)
    elif spec.down_when is not None:
        down = Rule(spec.down_when.failures, spec.down_when.of)
    elif defaults.down_when is not None:
        down = Rule(defaults.down_when.failures, defaults.down_when.of)
    else:
        down = Rule.in_a_row(defaults.failure_threshold)
    if spec.success_threshold is not None:
        up = Rule.in_a_row(spec.success_threshold)
    elif spec.up_when is not None:
        up = Rule(spec.up_when.successes, spec.up_when.of)
    elif defaults.up_when is not None:
        up = Rule(defaults.up_when.successes, defaults.up_when.of)
    else:
        up = Rule.in_a_row(defaults.success_threshold)
    return Thresholds(down, up)


def _read(path: Path) -> Document:
    """The parsed file; a file that cannot be read or parsed is a ConfigError."""
    try:
        return read_document(path)
    except OSError as exc:
        raise ConfigError(path, [Problem(None, "", "", f"cannot read: {exc.strerror}")]) from exc
    except yaml_source.SourceError as exc:
        raise ConfigError(path, [Problem(exc.line, "", "", exc.message, exc.column)]) from None


def _validate(spec: type[_Spec], raw: Any) -> tuple[_Spec | None, ValidationError | None]:
    try:
        return spec.model_validate(raw), None
    except ValidationError as exc:
        return None, exc


class _Loader:
    """Turns one parsed document into a :class:`Config`, collecting every problem."""

    def __init__(
        self,
        path: Path,
        document: Document,
        registry: Registry,
        environ: Mapping[str, str],
        keep_unloadable: bool,
    ) -> None:
        self.path = path
        self.document = document
        self.environ = environ
        self.problems = Problems(document)
        self.resolver = Resolver(registry, self.problems, keep_unloadable)
        #: What ``notifiers:`` names, for the jobs' ``notify:``.
        self.notifier_names: list[Any] = []

    def load(self) -> Config:
        self.problems.add_duplicate_keys()
        data = self.top_mapping()
        #: The document as written, before ${VAR} values are put in (a cluster's
        #: job definitions are compared in this form).
        self.written = data
        self.clustered = data.get("cluster") is not None
        expansion = expand_env(data, self.environ)
        data = expansion.data
        self.problems.expanded(data, expansion.secret_paths)
        for path, name in expansion.missing:
            self.problems.add(
                path,
                f"environment variable {name} is not set (use ${{{name}:-default}} for a default)",
            )
        self.check_top_level_keys(data)
        defaults = self.section(data, "defaults", Defaults)
        self.check_one_rule_form(data.get("defaults"), ("defaults",))
        history = self.section(data, "history", HistorySpec)
        cluster = self.section(data, "cluster", ClusterSpec)
        if self.clustered:
            self.check_cluster_history(history)
        http = self.section(data, "http", HttpSpec)
        notifiers = self.notifiers(data)
        jobs = self.jobs(data, defaults if defaults is not None else Defaults())
        raw_jobs = data.get("jobs")
        names = [
            item["name"]
            for item in (raw_jobs if isinstance(raw_jobs, list) else [])
            if isinstance(item, dict) and isinstance(item.get("name"), str)
        ]
        windows = self.maintenance(data, names, defaults or Defaults())
        self.raise_problems()
        return Config(
            self.path,
            tuple(jobs),
            expansion.secrets,
            tuple(self.resolver.unloadable),
            history if history is not None else HistorySpec(),
            tuple(notifiers),
            http,
            Maintenance(windows, [job.name for job in jobs]),
            cluster,
        )

    def raise_problems(self) -> None:
        if self.problems.found:
            raise ConfigError(self.path, self.problems.found)

    def check_cluster_history(self, history: HistorySpec | None) -> None:
        """A cluster's members coordinate through the PostgreSQL history they share."""
        if history is not None and history.url is not None and history.enabled:
            return
        if history is not None and not history.enabled:
            reason = "history is off (history.enabled: false)"
        else:
            reason = "history is in SQLite, a file one daemon owns"
        self.problems.add(
            ("cluster",),
            f"cluster: needs history in PostgreSQL, which the members share, but {reason}; "
            "set history.url: postgresql://USER@HOST/DB (or remove cluster:)",
            field_from=0,
        )

    def top_mapping(self) -> dict[Any, Any]:
        """The document, which must be a mapping: anything else ends the loading."""
        data = self.document.data
        if isinstance(data, dict):
            return data
        if data is None:
            self.problems.add_unplaced(None, "the file is empty; it needs a 'jobs:' list")
        else:
            self.problems.add_unplaced(
                1, f"expected a mapping with a 'jobs:' list, got a {type(data).__name__}"
            )
        raise ConfigError(self.path, self.problems.found)

    def check_top_level_keys(self, data: dict[Any, Any]) -> None:
        for key in data:
            if key not in TOP_LEVEL:
                hint = close_matches(str(key), TOP_LEVEL)
                self.problems.add(
                    (str(key),),
                    "unknown top-level key"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" (allowed: {', '.join(TOP_LEVEL)})",
                    field_from=0,
                )

    def section(self, data: dict[Any, Any], key: str, spec: type[_Spec]) -> _Spec | None:
        """The top-level section ``key`` validated by ``spec``; None when absent or invalid."""
        if data.get(key) is None:
            return None
        model, error = _validate(spec, data[key])
        if error is not None:
            self.problems.add_validation_error(error, (key,), spec.model_fields)
        return model

    # -- notifiers:

    def notifiers(self, data: dict[Any, Any]) -> list[NotifierConfig]:
        items = data.get("notifiers")
        if items is None:
            return []
        if not isinstance(items, list):
            self.problems.add(("notifiers",), "expected a list", field_from=0)
            return []
        self.notifier_names = [n.get("name") for n in items if isinstance(n, dict)]
        first_line: dict[str, int | None] = {}
        loaded = (self.notifier(("notifiers", i), raw, first_line) for i, raw in enumerate(items))
        return [n for n in loaded if n is not None]

    def notifier(
        self, path: PathTuple, raw: Any, first_line: dict[str, int | None]
    ) -> NotifierConfig | None:
        if not isinstance(raw, dict):
            self.problems.add(path, "expected a mapping with name, notifier and options")
            return None
        spec, error = _validate(NotifierSpec, raw)
        if error is not None:
            self.problems.add_validation_error(error, path, NotifierSpec.model_fields)
        self.check_unique_name(raw, path, first_line, "notifier")
        # A broken notifier: its deliveries fail with the reason, checks go on.
        loaded = self.resolver.notifier(raw, path, spec)
        if loaded is None or spec is None:
            return None
        notifier, options = loaded
        if options is None:
            return None
        return NotifierConfig(
            name=spec.name,
            notifier_name=raw["notifier"],
            notifier=notifier,
            options=options,
            send_on_resolved=spec.send_on_resolved,
            repeat_every=spec.repeat_every,
            line=self.document.line_of(path) or 0,
        )

    # -- maintenance:

    def maintenance(
        self, data: dict[Any, Any], job_names: list[str], defaults: Defaults
    ) -> list[Window]:
        items = data.get("maintenance")
        if items is None:
            return []
        if not isinstance(items, list):
            self.problems.add(("maintenance",), "expected a list of windows", field_from=0)
            return []
        first_line: dict[str, int | None] = {}
        loaded = (
            self.window(("maintenance", i), raw, job_names, first_line, defaults.timezone)
            for i, raw in enumerate(items)
        )
        return [w for w in loaded if w is not None]

    def window(
        self,
        path: PathTuple,
        raw: Any,
        job_names: list[str],
        first_line: dict[str, int | None],
        default_zone: str,
    ) -> Window | None:
        """One maintenance window, or None with its problems added."""
        if not isinstance(raw, dict):
            self.problems.add(path, "expected a mapping with name, and cron or start")
            return None
        spec, error = _validate(MaintenanceSpec, raw)
        self.check_unique_name(raw, path, first_line, "window")
        if error is not None:
            self.problems.add_validation_error(error, path, MaintenanceSpec.model_fields)
            return None
        assert spec is not None
        found = len(self.problems.found)
        if spec.cron is not None and spec.start is not None:
            self.problems.add(
                (*path, "start"),
                "give cron and duration (recurring) or start and end (once), not both",
            )
        elif spec.cron is None and spec.start is None:
            self.problems.add(path, "give cron and duration (recurring) or start and end (once)")
        for key, needs in (("cron", "duration"), ("duration", "cron"), ("start", "end")):
            if getattr(spec, key) is not None and getattr(spec, needs) is None:
                self.problems.add((*path, key), f"{key} needs {needs} too")
        if spec.end is not None and spec.start is None:
            self.problems.add((*path, "end"), "end needs start too")
        span = spec.span(default_zone)
        if span is not None and span[1] <= span[0]:
            start, end = (format_time(t) for t in span)
            self.problems.add((*path, "end"), f"end {end} is not after start {start}")
        if not spec.jobs:
            self.problems.add(
                (*path, "jobs"), "the list is empty; leave jobs: out to cover every job"
            )
        for i, pattern in enumerate(spec.jobs):
            if not any(fnmatchcase(name, pattern) for name in job_names):
                hint = close_matches(pattern, job_names)
                self.problems.add(
                    (*path, "jobs", i),
                    f"{pattern!r} names no job of this config"
                    + (f"; did you mean {hint[0]!r}?" if hint else ""),
                )
        if len(self.problems.found) > found:
            return None
        return Window(
            name=spec.name,
            jobs=tuple(spec.jobs),
            cron=spec.cron,
            duration=spec.duration or 0.0,
            timezone=spec.timezone or default_zone,
            start=span[0] if span is not None else None,
            end=span[1] if span is not None else None,
            line=self.document.line_of(path) or 0,
        )

    # -- jobs:

    def jobs(self, data: dict[Any, Any], defaults: Defaults) -> list[Job]:
        items = data.get("jobs")
        if "jobs" not in data:
            self.problems.add((), "no 'jobs:' list; add at least one job")
        elif not isinstance(items, list):
            self.problems.add(("jobs",), "expected a list with at least one job", field_from=0)
        elif not items:
            self.problems.add(("jobs",), "the list is empty; add at least one job", field_from=0)
        else:
            first_line: dict[str, int | None] = {}
            loaded = (
                self.job(("jobs", i), raw, defaults, first_line) for i, raw in enumerate(items)
            )
            jobs = [job for job in loaded if job is not None]
            self.check_ping_keys(items, jobs)
            return jobs
        return []

    def job(
        self, path: PathTuple, raw: Any, defaults: Defaults, first_line: dict[str, int | None]
    ) -> Job | None:
        """The job ``raw``, or None with its problems added. Every problem of a
        job is reported in one run: the spec's, the plugin's options', and what
        depends on the plugin's kind."""
        if not isinstance(raw, dict):
            self.problems.add(path, "expected a mapping with name, plugin and options")
            return None
        spec, error = _validate(JobSpec, raw)
        self.check_unique_name(raw, path, first_line, "job")
        loaded = self.resolver.plugin(raw, path, spec)
        is_service = loaded is not None and loaded[0].kind == "service"
        if is_service:
            self.check_no_check_keys(raw, path)
        if error is not None:
            # A service's check-only keys were reported above, once.
            skip = CHECK_ONLY if is_service else ()
            self.problems.add_validation_error(error, path, JobSpec.model_fields, skip)
        if not is_service:
            self.check_notify(raw, path)
            self.check_one_rule_form(raw, path)
            self.check_locations(raw, path, spec)
        if loaded is not None and issubclass(loaded[0], PingedCheck):
            self.check_pinged_keys(raw, path)
        elif not is_service:
            self.check_one_schedule(raw, path)
        if loaded is None or spec is None:
            return None
        plugin, options = loaded
        if options is None:
            return None
        return self.build_job(path, spec, plugin, options, defaults)

    def build_job(
        self,
        path: PathTuple,
        spec: JobSpec,
        plugin: type[Plugin[Any]],
        options: BaseModel,
        defaults: Defaults,
    ) -> Job:
        is_service = plugin.kind == "service"
        pinged = issubclass(plugin, PingedCheck)
        # A pinged check (heartbeat) brings its own threshold defaults
        # (PingedCheck); the defaults: section's rules are not for it.
        rule_defaults = defaults
        if issubclass(plugin, PingedCheck):
            rule_defaults = Defaults(
                failure_threshold=plugin.failure_threshold,
                success_threshold=plugin.success_threshold,
            )
        thresholds = thresholds_of(spec, rule_defaults)
        return Job(
            name=spec.name,
            # One string for every job of a plugin, not one per job from the YAML.
            plugin_name=sys.intern(spec.plugin),
            plugin=plugin,
            options=options,
            schedule=None
            if is_service
            else schedule_of(spec, defaults, plugin, options, clustered=self.clustered),
            timeout=None if is_service else spec.timeout or defaults.timeout,
            line=self.document.line_of(path) or 0,
            notify=tuple(spec.notify),
            failure_threshold=thresholds.down.count,
            success_threshold=thresholds.up.count,
            retry=retry_of(spec, defaults) if plugin.kind == "check" and not pinged else NO_RETRY,
            # None: in a row (so that both forms of one rule reload as equal).
            failure_window=None if thresholds.down.is_streak else thresholds.down.of,
            success_window=None if thresholds.up.is_streak else thresholds.up.of,
            definition=self.definition(path) if self.clustered else "",
            locations=None
            if spec.locations is None
            else tuple(spec.locations)
            if isinstance(spec.locations, list)
            else ("all",),
            quorum=spec.quorum,
        )

    def definition(self, path: PathTuple) -> str:
        """A digest of the job at ``path`` as written and of ``defaults:`` (Job.definition)."""
        jobs = self.written.get("jobs")
        index = path[-1]
        written = jobs[index] if isinstance(jobs, list) and isinstance(index, int) else None
        text = json.dumps(
            [written, self.written.get("defaults")], sort_keys=True, default=str
        ).encode()
        return hashlib.blake2b(text, digest_size=12).hexdigest()

    def check_unique_name(
        self, raw: dict[str, Any], path: PathTuple, first_line: dict[str, int | None], noun: str
    ) -> None:
        name = raw.get("name")
        if not isinstance(name, str):
            return
        if name in first_line:
            self.problems.add(
                (*path, "name"),
                f"duplicate {noun} name {name!r} (first used on line {first_line[name]})",
            )
        else:
            first_line[name] = self.document.line_of((*path, "name"))

    def check_no_check_keys(self, raw: dict[str, Any], path: PathTuple) -> None:
        """A service runs continuously: the keys of a check's runs mean nothing for it."""
        for key in CHECK_ONLY:
            if key in raw:
                self.problems.add(
                    (*path, key),
                    f"{raw['plugin']} is a service: it runs continuously, so it takes no {key}",
                )

    def check_pinged_keys(self, raw: dict[str, Any], path: PathTuple) -> None:
        """A pinged check (heartbeat) is due by its options and has nothing to retry."""
        for key in PINGED_REFUSES:
            if key in raw:
                self.problems.add(
                    (*path, key),
                    f"{raw['plugin']} is told by pings: it takes no {key} "
                    "(its options say when a ping is due: period or cron, and grace)",
                )

    def check_ping_keys(self, items: list[Any], jobs: list[Job]) -> None:
        """No two pinged jobs share a ping_key: a ping would not know its job."""
        index = {raw.get("name"): i for i, raw in enumerate(items) if isinstance(raw, dict)}
        first: dict[str, str] = {}
        for job in jobs:
            if not issubclass(job.plugin, PingedCheck):
                continue
            key = job.plugin.ping_key(job.options)
            if key is None:
                continue
            if key in first:
                self.problems.add(
                    ("jobs", index[job.name], "options", "ping_key"),
                    f"the same ping_key as job {first[key]!r}; each job needs its own",
                )
            else:
                first[key] = job.name

    def check_one_schedule(self, raw: dict[str, Any], path: PathTuple) -> None:
        """A check runs every ``interval`` or at the times of ``cron``, not both;
        ``timezone`` is the zone of a cron line only."""
        if "cron" in raw and "interval" in raw:
            self.problems.add(
                (*path, "cron"),
                "give interval or cron, not both (interval: every so long; cron: at the "
                "times of a cron line)",
            )
        elif "timezone" in raw and "cron" not in raw:
            self.problems.add(
                (*path, "timezone"),
                "only a cron line has a time zone, and this job has no cron: (an "
                "interval is the same in every zone)",
            )

    def check_locations(self, raw: dict[str, Any], path: PathTuple, spec: JobSpec | None) -> None:
        """``locations:`` needs a cluster (members say where they are), and
        ``quorum:`` needs ``locations:`` and no more than it lists."""
        if "locations" in raw and not self.clustered:
            self.problems.add(
                (*path, "locations"),
                "locations need a cluster: add cluster: and history.url, and start each "
                "member with --location NAME (docs/cluster.md)",
            )
        if "quorum" not in raw or spec is None:
            return
        if spec.locations is None:
            self.problems.add(
                (*path, "quorum"), "quorum counts locations: give locations: too, or remove it"
            )
        elif (
            isinstance(spec.locations, list)
            and spec.quorum is not None
            and spec.quorum > len(spec.locations)
        ):
            self.problems.add(
                (*path, "quorum"),
                f"quorum {spec.quorum} is more than the {len(spec.locations)} "
                f"location{'s' if len(spec.locations) > 1 else ''} listed: the check "
                "could never be down",
            )

    def check_one_rule_form(self, raw: Any, path: PathTuple) -> None:
        """A job or ``defaults`` says each alerting rule once: ``failure_threshold``
        or ``down_when``, ``success_threshold`` or ``up_when``."""
        if not isinstance(raw, dict):
            return
        for streak, window in ALERT_RULE_KEYS:
            if streak in raw and window in raw:
                self.problems.add(
                    (*path, window),
                    f"give {streak} or {window}, not both ({streak}: n is "
                    f"{window}: {{{'failures' if window == 'down_when' else 'successes'}: n, "
                    "of: n})",
                )

    def check_notify(self, raw: dict[str, Any], path: PathTuple) -> None:
        """Each name in the job's ``notify:`` names a notifier of the config
        (read from the raw job, so this is checked even when other fields are not valid)."""
        known = [n for n in self.notifier_names if isinstance(n, str)]
        notify = raw.get("notify")
        for i, name in enumerate(notify if isinstance(notify, list) else []):
            if not isinstance(name, str) or name in known:
                continue  # not a string: the spec's validation says so
            hint = close_matches(name, known)
            message = f"unknown notifier {name!r}"
            if hint:
                message += f"; did you mean {hint[0]!r}?"
            message += (
                f" (notifiers in this config: {', '.join(known)})"
                if known
                else "; add it under notifiers: at the top level"
            )
            self.problems.add((*path, "notify", i), message)
