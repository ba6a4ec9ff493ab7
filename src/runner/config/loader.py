"""Loading a config file: every step from the YAML text to a :class:`Config`."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from runner import yaml_source
from runner.config.specs import (
    CHECK_ONLY,
    TOP_LEVEL,
    Defaults,
    HistorySpec,
    HttpSpec,
    JobSpec,
    NotifierSpec,
)
from runner.model import NO_RETRY, Job, NotifierConfig, Retry
from runner.notifier import Alert, Notifier, NotifyContext
from runner.plugin import Check, Plugin, Result, RunContext
from runner.registry import NOTIFIERS, PluginError, PluginLoadError, Registry
from runner.schedules import Interval, Schedule

PathTuple = tuple[str | int, ...]

# --------------------------------------------------------------------------- file models


# --------------------------------------------------------------------------- loaded config


@dataclass(frozen=True)
class Config:
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

    @property
    def checks(self) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if not j.is_service)

    @property
    def services(self) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if j.is_service)


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    line: int | None
    where: str  # "jobs[2] 'api'", "defaults", or "" for the top level
    field: str  # "options.url"
    message: str
    column: int | None = None

    def format(self, filename: str) -> str:
        location = f"{filename}:{self.line}" if self.line else filename
        if self.line and self.column:
            location += f":{self.column}"
        parts = [p for p in (self.where, self.field) if p]
        return f"{location}: {': '.join([*parts, self.message])}"


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists every one found."""

    def __init__(self, path: Path | str, problems: list[Problem]) -> None:
        self.path = Path(path)
        self.problems = sorted(problems, key=lambda p: p.line or 0)
        lines = [p.format(str(path)) for p in self.problems]
        count = len(lines)
        super().__init__(f"{path}: {count} problem{'s' if count != 1 else ''}\n" + "\n".join(lines))


#: Top-level lists whose items are named (problems say ``jobs[2] 'api'``).
_LISTS = ("jobs", "notifiers")
_LIST_PREFIXES = tuple((section,) for section in _LISTS)

# --------------------------------------------------------------------------- YAML with lines


def _read_yaml(text: str) -> tuple[Any, dict[PathTuple, int], list[tuple[PathTuple, int, str]]]:
    """Parse safely, and map each path in the document to its 1-based line.

    Raises:
        SourceError: the YAML is invalid or crosses a bound of :mod:`runner.yaml_source`.
    """
    node = yaml_source.compose(text)
    data = yaml_source.load(node) if node is not None else None
    lines: dict[PathTuple, int] = {}
    duplicates: list[tuple[PathTuple, int, str]] = []

    def walk(n: yaml.Node, path: PathTuple) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in n.value:
                key = str(key_node.value)
                if key in seen:
                    duplicates.append((path, key_node.start_mark.line + 1, key))
                seen.add(key)
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return data, lines, duplicates


# --------------------------------------------------------------------------- ${ENV}

_ENV_REF = re.compile(r"\$(\$)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(
    data: Any,
    path: PathTuple,
    environ: Mapping[str, str],
    secret_paths: set[PathTuple],
    secrets: set[str],
    missing: list[tuple[PathTuple, str]],
) -> Any:
    if isinstance(data, str):
        if "$" not in data:
            return data
        used = False

        def replace(m: re.Match[str]) -> str:
            nonlocal used
            if m.group(1):
                return "$"
            used = True
            name, default = m.group(2), m.group(3)
            if name in environ:
                secrets.add(environ[name])
                return environ[name]
            if default is not None:
                return default
            missing.append((path, name))
            return ""

        result = _ENV_REF.sub(replace, data)
        if used:
            secret_paths.add(path)
        return result
    if isinstance(data, dict):
        return {
            k: _expand_env(v, (*path, str(k)), environ, secret_paths, secrets, missing)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            _expand_env(v, (*path, i), environ, secret_paths, secrets, missing)
            for i, v in enumerate(data)
        ]
    return data


# --------------------------------------------------------------------------- loading


_MESSAGES = {
    "missing": "required field is missing",
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "url_parsing": "not a valid URL",
    "url_scheme": "not a valid URL",
    "url_type": "not a valid URL: expected a string such as https://example.com/",
}


class _Loader:
    def __init__(
        self,
        path: Path,
        registry: Registry,
        environ: Mapping[str, str],
        keep_unloadable: bool = False,
    ) -> None:
        self.path = path
        self.keep_unloadable = keep_unloadable
        self.unloadable: list[tuple[str, str]] = []
        self.registry = registry
        self.environ = environ
        self.problems: list[Problem] = []
        self.lines: dict[PathTuple, int] = {}
        self.secret_paths: set[PathTuple] = set()
        self.secrets: set[str] = set()
        self.notifier_names: list[Any] = []
        self._notifier_registry: Registry | None = None

    @property
    def notifier_registry(self) -> Registry:
        if self._notifier_registry is None:
            self._notifier_registry = Registry.discover(NOTIFIERS)
        return self._notifier_registry

    # -- helpers

    def line_of(self, path: PathTuple) -> int | None:
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def where(self, path: PathTuple, data: Any) -> str:
        if len(path) >= 2 and path[0] in _LISTS and isinstance(path[1], int):
            section, index = path[0], path[1]
            items = data.get(section) if isinstance(data, dict) else None
            name = None
            if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
                name = items[index].get("name")
            return (
                f"{section}[{index}] {name!r}" if isinstance(name, str) else f"{section}[{index}]"
            )
        if path and path[0] in ("defaults", "history", "http"):
            return str(path[0])
        return ""

    def add(
        self, path: PathTuple, message: str, *, data: Any, field_from: int | None = None
    ) -> None:
        if field_from is None:
            field_from = 2 if path[:1] in _LIST_PREFIXES and len(path) >= 2 else 1 if path else 0
        self.problems.append(
            Problem(
                line=self.line_of(path),
                where=self.where(path, data),
                field=_dotted(path[field_from:]),
                message=message,
            )
        )

    def add_validation_error(
        self,
        exc: ValidationError,
        prefix: PathTuple,
        data: Any,
        allowed: Iterable[str] = (),
        skip: Iterable[str] = (),
    ) -> None:
        """Add one problem per error, except those about a top-level field in ``skip``."""
        skipped = set(skip)
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if loc and loc[0] in skipped:
                continue
            path = (*prefix, *loc)
            message = self.explain(err, path, allowed)
            self.add(path, message, data=data)

    def explain(self, err: Any, path: PathTuple, allowed: Iterable[str]) -> str:
        kind = err["type"]
        if kind == "extra_forbidden":
            names = sorted(allowed)
            hint = difflib.get_close_matches(str(path[-1]), names, n=1, cutoff=0.5)
            message = "unknown key"
            if hint:
                message += f"; did you mean {hint[0]!r}?"
            if names:
                message += f" (allowed: {', '.join(names)})"
            return message
        known = _MESSAGES.get(kind)
        if known is not None:
            message = known
        else:
            message = str(err["msg"])
            message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if message[1:2].islower():  # "Input should..." -> "input should...", not "uRL"
                message = message[:1].lower() + message[1:]
        inp = err.get("input")
        secret = any(path[: len(p)] == p for p in self.secret_paths)
        shown = kind not in ("missing", "extra_forbidden") and not secret and _short(inp)
        if shown and repr(inp) not in message:
            message += f" (got {inp!r})"
        return message

    # -- the steps

    def load(self) -> Config:
        try:
            text = yaml_source.read_source(self.path)
            data, self.lines, duplicates = _read_yaml(text)
        except OSError as exc:
            raise ConfigError(
                self.path, [Problem(None, "", "", f"cannot read: {exc.strerror}")]
            ) from exc
        except yaml_source.SourceError as exc:
            raise ConfigError(
                self.path, [Problem(exc.line, "", "", exc.message, exc.column)]
            ) from None

        for parent, line, key in duplicates:
            self.problems.append(
                Problem(
                    line,
                    self.where(parent, data),
                    _dotted((*parent, key)[2 if parent[:1] == ("jobs",) else 0 :]),
                    "duplicate key; YAML would silently keep only the last one",
                )
            )

        if data is None:
            self.problems.append(
                Problem(None, "", "", "the file is empty; it needs a 'jobs:' list")
            )
            raise ConfigError(self.path, self.problems)
        if not isinstance(data, dict):
            self.problems.append(
                Problem(
                    1,
                    "",
                    "",
                    f"expected a mapping with a 'jobs:' list, got a {type(data).__name__}",
                )
            )
            raise ConfigError(self.path, self.problems)

        missing: list[tuple[PathTuple, str]] = []
        data = _expand_env(data, (), self.environ, self.secret_paths, self.secrets, missing)
        for path, name in missing:
            self.add(
                path,
                f"environment variable {name} is not set (use ${{{name}:-default}} for a default)",
                data=data,
            )

        top_level = TOP_LEVEL
        for key in data:
            if key not in top_level:
                hint = difflib.get_close_matches(str(key), top_level, n=1)
                self.add(
                    (str(key),),
                    "unknown top-level key"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" (allowed: {', '.join(top_level)})",
                    data=data,
                    field_from=0,
                )

        defaults = Defaults()
        if data.get("defaults") is not None:
            try:
                defaults = Defaults.model_validate(data["defaults"])
            except ValidationError as exc:
                self.add_validation_error(exc, ("defaults",), data, Defaults.model_fields)

        history = HistorySpec()
        if data.get("history") is not None:
            try:
                history = HistorySpec.model_validate(data["history"])
            except ValidationError as exc:
                self.add_validation_error(exc, ("history",), data, HistorySpec.model_fields)

        http = None
        if data.get("http") is not None:
            try:
                http = HttpSpec.model_validate(data["http"])
            except ValidationError as exc:
                self.add_validation_error(exc, ("http",), data, HttpSpec.model_fields)

        notifiers: list[NotifierConfig] = []
        notifiers_data = data.get("notifiers")
        if notifiers_data is not None:
            if not isinstance(notifiers_data, list):
                self.add(("notifiers",), "expected a list", data=data, field_from=0)
            else:
                notifiers = self.load_notifiers(notifiers_data, data)
        self.notifier_names = [n.get("name") for n in notifiers_data or [] if isinstance(n, dict)]

        jobs_data = data.get("jobs")
        jobs: list[Job] = []
        if "jobs" not in data:
            self.add((), "no 'jobs:' list; add at least one job", data=data)
        elif not isinstance(jobs_data, list):
            self.add(("jobs",), "expected a list with at least one job", data=data, field_from=0)
        elif not jobs_data:
            self.add(("jobs",), "the list is empty; add at least one job", data=data, field_from=0)
        else:
            jobs = self.load_jobs(jobs_data, defaults, data)

        if self.problems:
            raise ConfigError(self.path, self.problems)
        return Config(
            self.path,
            tuple(jobs),
            frozenset(s for s in self.secrets if s),
            tuple(self.unloadable),
            history,
            tuple(notifiers),
            http,
        )

    def load_notifiers(self, items: list[Any], data: Any) -> list[NotifierConfig]:
        notifiers: list[NotifierConfig] = []
        first_line: dict[str, int | None] = {}
        for i, raw in enumerate(items):
            path: PathTuple = ("notifiers", i)
            if not isinstance(raw, dict):
                self.add(path, "expected a mapping with name, notifier and options", data=data)
                continue
            try:
                spec: NotifierSpec | None = NotifierSpec.model_validate(raw)
            except ValidationError as exc:
                self.add_validation_error(exc, path, data, NotifierSpec.model_fields)
                spec = None
            self.check_unique_name(raw, path, first_line, "notifier", data)
            # A broken notifier: its deliveries fail with the reason, checks go on.
            loaded = self.load_entry(
                raw, path, data, "notifier", self.notifier_registry, spec, _unloadable_notifier
            )
            if loaded is None or spec is None:
                continue
            notifier, options = loaded
            if options is None:
                continue
            notifiers.append(
                NotifierConfig(
                    name=spec.name,
                    notifier_name=raw["notifier"],
                    notifier=notifier,
                    options=options,
                    send_on_resolved=spec.send_on_resolved,
                    repeat_every=spec.repeat_every,
                    line=self.line_of(path) or 0,
                )
            )
        return notifiers

    def check_unique_name(
        self,
        raw: dict[str, Any],
        path: PathTuple,
        first_line: dict[str, int | None],
        noun: str,
        data: Any,
    ) -> None:
        name = raw.get("name")
        if not isinstance(name, str):
            return
        if name in first_line:
            self.add(
                (*path, "name"),
                f"duplicate {noun} name {name!r} (first used on line {first_line[name]})",
                data=data,
            )
        else:
            first_line[name] = self.line_of((*path, "name"))

    def load_entry(
        self,
        raw: dict[str, Any],
        path: PathTuple,
        data: Any,
        key: str,
        registry: Registry,
        spec: JobSpec | NotifierSpec | None,
        stand_in: Callable[[PluginLoadError], type[Plugin[Any]]],
    ) -> tuple[type[Plugin[Any]], BaseModel | None] | None:
        """The class ``raw[key]`` names in ``registry``, and ``raw["options"]``
        validated by its model: None (with the problems added) if there is no
        such class, and the class with None if its options are invalid (so the
        caller can still check what depends on the class alone).

        A class that is installed but cannot be loaded is replaced by
        ``stand_in(error)`` when the daemon asked to keep such entries.
        """
        entry_name = raw.get(key)
        if not isinstance(entry_name, str) or not entry_name:
            return None  # the spec's validation already said so
        try:
            cls = registry.load(entry_name)
        except PluginLoadError as exc:
            if not (self.keep_unloadable and spec is not None):
                self.add((*path, key), str(exc), data=data)
                return None
            # Installed but broken (a bad upgrade, a missing dependency): this
            # entry reports errors and the others run.
            label = spec.name if key == "plugin" else f"{key} {spec.name}"
            self.unloadable.append((label, str(exc)))
            cls = stand_in(exc)
        except PluginError as exc:
            self.add((*path, key), str(exc), data=data)
            return None
        options_raw = raw.get("options") or {}
        if not isinstance(options_raw, dict):
            return cls, None  # the spec's validation already said so
        try:
            options = cls.Options.model_validate(options_raw)
        except ValidationError as exc:
            self.add_validation_error(exc, (*path, "options"), data, cls.Options.model_fields)
            return cls, None
        return cls, options

    def load_jobs(self, jobs_data: list[Any], defaults: Defaults, data: Any) -> list[Job]:
        jobs: list[Job] = []
        first_line: dict[str, int | None] = {}
        for i, raw in enumerate(jobs_data):
            path: PathTuple = ("jobs", i)
            if not isinstance(raw, dict):
                self.add(path, "expected a mapping with name, plugin and options", data=data)
                continue
            # Every problem of a job is reported in one run: the spec's, the
            # plugin's options', and what depends on the plugin's kind.
            spec_error: ValidationError | None = None
            try:
                spec: JobSpec | None = JobSpec.model_validate(raw)
            except ValidationError as exc:
                spec_error, spec = exc, None
            self.check_unique_name(raw, path, first_line, "job", data)
            loaded = self.load_entry(
                raw, path, data, "plugin", self.registry, spec, _unloadable_plugin
            )
            plugin_name = raw.get("plugin")
            is_service = loaded is not None and loaded[0].kind == "service"
            if is_service:
                for key in CHECK_ONLY:
                    if key in raw:
                        self.add(
                            (*path, key),
                            f"{plugin_name} is a service: it runs continuously, "
                            f"so it takes no {key}",
                            data=data,
                        )
            if spec_error is not None:
                # A service's check-only keys were reported above, once.
                skip = CHECK_ONLY if is_service else ()
                self.add_validation_error(spec_error, path, data, JobSpec.model_fields, skip)
            if not is_service:
                self.check_notify(raw, path, data)
            if loaded is None or spec is None:
                continue
            plugin, options = loaded
            if options is None:
                continue
            schedule: Schedule | None
            if is_service:
                schedule, timeout = None, None
            else:
                schedule = Interval(spec.interval or defaults.interval)
                timeout = spec.timeout or defaults.timeout
            jobs.append(
                Job(
                    name=spec.name,
                    plugin_name=str(plugin_name),
                    plugin=plugin,
                    options=options,
                    schedule=schedule,
                    timeout=timeout,
                    line=self.line_of(path) or 0,
                    notify=tuple(spec.notify),
                    failure_threshold=spec.failure_threshold or defaults.failure_threshold,
                    success_threshold=spec.success_threshold or defaults.success_threshold,
                    retry=_retry(spec, defaults) if plugin.kind == "check" else NO_RETRY,
                )
            )
        return jobs

    def check_notify(self, raw: dict[str, Any], path: PathTuple, data: Any) -> None:
        """Each name in the job's ``notify:`` names a notifier of the config
        (read from the raw job, so this is checked even when other fields are not valid)."""
        known = [n for n in self.notifier_names if isinstance(n, str)]
        notify = raw.get("notify")
        for i, name in enumerate(notify if isinstance(notify, list) else []):
            if not isinstance(name, str) or name in known:
                continue  # not a string: the spec's validation says so
            hint = difflib.get_close_matches(name, known, n=1)
            message = f"unknown notifier {name!r}"
            if hint:
                message += f"; did you mean {hint[0]!r}?"
            message += (
                f" (notifiers in this config: {', '.join(known)})"
                if known
                else "; add it under notifiers: at the top level"
            )
            self.add((*path, "notify", i), message, data=data)


def _retry(spec: JobSpec, defaults: Defaults) -> Retry:
    retries = spec.retries if spec.retries is not None else defaults.retries
    delay = spec.retry_delay if spec.retry_delay is not None else defaults.retry_delay
    cap = spec.retry_delay_max or defaults.retry_delay_max
    if delay == "exponential":
        return Retry(retries, 1.0, exponential=True, max_delay=cap)
    assert isinstance(delay, float)
    return Retry(retries, delay)


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any) -> bool:
    return (
        isinstance(value, str | int | float)
        and not isinstance(value, bool)
        and len(repr(value)) <= 60
    )


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
    return _Loader(
        Path(path),
        registry if registry is not None else Registry.discover(),
        os.environ if environ is None else environ,
        keep_unloadable,
    ).load()


class _RawOptions(BaseModel):
    """The options of a job whose plugin cannot be loaded, kept as written."""

    model_config = ConfigDict(extra="allow")


def _unloadable_plugin(error: PluginLoadError) -> type[Check[Any]]:
    """A check standing in for a plugin that cannot be loaded."""
    message = str(error)

    class Unloadable(Check[Any]):
        """Stands in for a plugin that cannot be loaded: every run is an error."""

        Options = _RawOptions

        async def run(self, ctx: RunContext) -> Result:
            return Result.error(message, error_type="PluginLoadError")

    return Unloadable


def _unloadable_notifier(error: PluginLoadError) -> type[Plugin[Any]]:
    """A notifier standing in for one that cannot be loaded: every delivery fails."""
    message = str(error)

    class UnloadableNotifier(Notifier[Any]):
        """Stands in for a notifier that cannot be loaded."""

        Options = _RawOptions

        async def send(self, alert: Alert, ctx: NotifyContext) -> None:
            raise RuntimeError(message)

    return UnloadableNotifier
