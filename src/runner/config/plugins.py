"""The plugin (or notifier) a config entry names, found in the registry, with
its options validated by the class's own model.

A plugin that is installed but cannot be loaded (a bad upgrade, a missing
dependency) is a config error, unless the daemon asked to keep such entries:
then a stand-in takes its place, whose every run is an error result (or whose
every delivery fails), so one broken plugin cannot stop the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from runner.config.problems import Problems
from runner.config.source import PathTuple
from runner.config.specs import JobSpec, NotifierSpec
from runner.notifier import Alert, Notifier, NotifyContext
from runner.plugin import Check, Plugin, Result, RunContext
from runner.registry import NOTIFIERS, PluginError, PluginLoadError, Registry

__all__ = ["Resolved", "Resolver"]

#: The class an entry names, and its options (None when they are not valid).
Resolved = tuple[type[Plugin[Any]], BaseModel | None]
_StandIn = Callable[[PluginLoadError], type[Plugin[Any]]]


class Resolver:
    """Resolves the ``plugin:`` of jobs and the ``notifier:`` of notifiers,
    adding what is wrong to ``problems``."""

    def __init__(self, registry: Registry, problems: Problems, keep_unloadable: bool) -> None:
        self.registry = registry
        self.problems = problems
        self.keep_unloadable = keep_unloadable
        #: (job, reason) for each entry replaced by a stand-in.
        self.unloadable: list[tuple[str, str]] = []
        self._notifier_registry: Registry | None = None

    @property
    def notifier_registry(self) -> Registry:
        """The installed notifiers, discovered when a config first has one."""
        if self._notifier_registry is None:
            self._notifier_registry = Registry.discover(NOTIFIERS)
        return self._notifier_registry

    def plugin(self, raw: dict[str, Any], path: PathTuple, spec: JobSpec | None) -> Resolved | None:
        """The plugin of the job ``raw`` (at ``path``); see :meth:`entry`."""
        return self.entry(raw, path, "plugin", self.registry, spec, _unloadable_plugin)

    def notifier(
        self, raw: dict[str, Any], path: PathTuple, spec: NotifierSpec | None
    ) -> Resolved | None:
        """The notifier of the ``notifiers:`` entry ``raw``; see :meth:`entry`."""
        return self.entry(raw, path, "notifier", self.notifier_registry, spec, _unloadable_notifier)

    def entry(
        self,
        raw: dict[str, Any],
        path: PathTuple,
        key: str,
        registry: Registry,
        spec: JobSpec | NotifierSpec | None,
        stand_in: _StandIn,
    ) -> Resolved | None:
        """The class ``raw[key]`` names in ``registry``, and ``raw["options"]``
        validated by its model: None (with the problems added) if there is no
        such class, and the class with None if its options are invalid (so the
        caller can still check what depends on the class alone).

        A class that is installed but cannot be loaded is replaced by
        ``stand_in(error)`` when the daemon asked to keep such entries.
        """
        cls = self._load(raw, path, key, registry, spec, stand_in)
        if cls is None:
            return None
        # A notifier's options are where tokens live (Apprise URLs, webhook
        # headers): one whose model keeps its input out of errors has none
        # of its values shown in a problem either.
        hide = key == "notifier" and bool(cls.Options.model_config.get("hide_input_in_errors"))
        return cls, self._options(cls, raw, path, hide_input=hide)

    def _load(
        self,
        raw: dict[str, Any],
        path: PathTuple,
        key: str,
        registry: Registry,
        spec: JobSpec | NotifierSpec | None,
        stand_in: _StandIn,
    ) -> type[Plugin[Any]] | None:
        entry_name = raw.get(key)
        if not isinstance(entry_name, str) or not entry_name:
            return None  # the spec's validation already said so
        try:
            return registry.load(entry_name)
        except PluginLoadError as exc:
            if not (self.keep_unloadable and spec is not None):
                self.problems.add((*path, key), str(exc))
                return None
            # Installed but broken: this entry reports errors and the others run.
            label = spec.name if key == "plugin" else f"{key} {spec.name}"
            self.unloadable.append((label, str(exc)))
            return stand_in(exc)
        except PluginError as exc:
            self.problems.add((*path, key), str(exc))
            return None

    def _options(
        self,
        cls: type[Plugin[Any]],
        raw: dict[str, Any],
        path: PathTuple,
        *,
        hide_input: bool = False,
    ) -> BaseModel | None:
        options_raw = raw.get("options") or {}
        if not isinstance(options_raw, dict):
            return None  # the spec's validation already said so
        try:
            return cls.Options.model_validate(options_raw)
        except ValidationError as exc:
            shown = self.problems.secret_paths
            if hide_input:  # shown as values from the environment are: not at all
                self.problems.secret_paths = shown | {(*path, "options")}
            try:
                self.problems.add_validation_error(
                    exc, (*path, "options"), cls.Options.model_fields
                )
            finally:
                self.problems.secret_paths = shown
            return None


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
