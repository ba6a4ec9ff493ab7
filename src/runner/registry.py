"""Finding plugins: entry points in a group such as ``runner.plugins``.

Built-in plugins are registered in runner's own ``pyproject.toml`` exactly
like third-party ones, so this module is the only way a plugin is loaded.
A :class:`Group` names an entry point group and the base class its entries
must subclass; a second kind of extension is one more ``Group``, loaded by
the same code with the same rules.
Discovery reads entry point metadata only; a plugin's module is imported the
first time its class is needed, so one broken plugin never hides the others
and a daemon pays only for the plugins its config uses.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from pydantic import BaseModel

from runner.notifier import Notifier
from runner.plugin import Check, Plugin, Service


@dataclass(frozen=True)
class Group:
    """An entry point group and what its entries must be.

    Attributes:
        name: the entry point group, e.g. ``runner.plugins``.
        bases: an entry must be a subclass of one of these (and have a
            pydantic ``Options`` model, and a ``kind`` class attribute).
        noun: how messages call one entry ("plugin").
    """

    name: str
    bases: tuple[type[Any], ...]
    noun: str

    def describe_bases(self) -> str:
        return " or ".join(f"{b.__module__}.{b.__qualname__}" for b in self.bases)


#: Checks and services: ``[project.entry-points."runner.plugins"]``.
PLUGINS = Group("runner.plugins", (Check, Service), "plugin")
#: Alert notifiers: ``[project.entry-points."runner.notifiers"]``.
NOTIFIERS = Group("runner.notifiers", (Notifier,), "notifier")


class PluginError(Exception):
    """Base class for problems with a plugin, as opposed to with a config."""


class UnknownPluginError(PluginError, LookupError):
    def __init__(self, name: str, available: list[str], group: Group = PLUGINS) -> None:
        self.name = name
        self.available = available
        installed = ", ".join(sorted(available)) or "none"
        noun = group.noun
        #: The installed name closest to ``name`` (``http_status`` -> ``http-status``), if any.
        self.suggestion = suggest(name, available)
        hint = f"did you mean {self.suggestion!r}? " if self.suggestion else ""
        super().__init__(
            f"unknown {noun} {name!r}; {hint}installed {noun}s: {installed}. "
            f"A third-party {noun} must be installed in the same environment as runner."
        )


def suggest(name: str, names: Iterable[str]) -> str | None:
    """The one of ``names`` that ``name`` most likely misspells, or None.

    ``_`` and ``-`` and letter case count as the same (``http_status``,
    ``HTTP-Status``); beyond that difflib's similarity decides, as for the
    config's unknown keys.
    """
    by_key = {_normalized(n): n for n in names}
    key = _normalized(name)
    if key in by_key:
        return by_key[key]
    # Imported here: only a misspelt name needs it (config/problems.py, close_matches).
    import difflib

    close = difflib.get_close_matches(key, list(by_key), n=1, cutoff=0.6)
    return by_key[close[0]] if close else None


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-")


class PluginLoadError(PluginError, ImportError):
    """An entry point could not be turned into a usable plugin class."""

    def __init__(self, entry: PluginEntry, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(
            f"{entry.group.noun} {entry.name!r} (entry point {entry.value!r} "
            f"from {entry.distribution_label}) cannot be loaded: {reason}"
        )


class PluginConflictError(PluginError):
    def __init__(self, name: str, entries: list[PluginEntry]) -> None:
        self.name = name
        self.entries = entries
        where = " and ".join(f"{e.distribution_label} ({e.value})" for e in entries)
        noun = entries[0].group.noun if entries else "plugin"
        super().__init__(f"{noun} name {name!r} is registered by {where}; uninstall one of them")


@dataclass
class PluginEntry:
    """One entry point of a :class:`Group`, loaded on demand.

    The distribution's name and version are read when first asked for (a
    message, ``runner plugins``): each reads and parses the distribution's
    whole METADATA file, long description included, which for a daemon's
    start-up cost more than discovering every entry point.
    """

    name: str
    value: str
    entry_point: EntryPoint = field(repr=False)
    group: Group = field(default=PLUGINS, repr=False)
    _loaded: type[Plugin[Any]] | None = field(default=None, repr=False)
    _error: PluginLoadError | None = field(default=None, repr=False)

    @cached_property
    def distribution(self) -> str:
        """The name of the distribution that registers this entry point."""
        dist = self.entry_point.dist
        return dist.name if dist is not None else "unknown distribution"

    @cached_property
    def version(self) -> str:
        """That distribution's version ("" when unknown)."""
        dist = self.entry_point.dist
        return dist.version if dist is not None else ""

    @property
    def distribution_label(self) -> str:
        return f"{self.distribution} {self.version}".strip()

    def load(self) -> type[Plugin[Any]]:
        """Import the plugin's class and check that it fits the plugin API.

        Raises:
            PluginLoadError: the module is missing, raised while importing, or
                the object is not a subclass of the group's bases with a
                pydantic ``Options`` model.
        """
        if self._loaded is not None:
            return self._loaded
        if self._error is not None:
            raise self._error
        try:
            self._loaded = self._import_and_check()
        except PluginLoadError as exc:
            self._error = exc
            raise
        return self._loaded

    @property
    def kind(self) -> str:
        """``check`` or ``service`` for plugins; the ``kind`` of the loaded class."""
        kind: str = self.load().kind
        return kind

    def _import_and_check(self) -> type[Plugin[Any]]:
        module_name, _, attr = self.value.partition(":")
        module_name = module_name.strip()
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise PluginLoadError(self, f"module {exc.name!r} is not installed") from exc
            raise PluginLoadError(
                self, f"importing {module_name!r} failed: ModuleNotFoundError: {exc}"
            ) from exc
        except Exception as exc:
            raise PluginLoadError(
                self, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        obj: Any = module
        for part in filter(None, attr.strip().split(".")):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise PluginLoadError(
                    self, f"module {module_name!r} has no attribute {attr.strip()!r}"
                ) from None
        if not (inspect.isclass(obj) and issubclass(obj, self.group.bases)):
            raise PluginLoadError(
                self, f"{self.value} is {obj!r}, not a subclass of {self.group.describe_bases()}"
            )
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            raise PluginLoadError(self, f"{obj.__qualname__} does not implement {missing}")
        options = getattr(obj, "Options", None)
        if not (inspect.isclass(options) and issubclass(options, BaseModel)):
            raise PluginLoadError(
                self, f"{obj.__qualname__}.Options is {options!r}, not a pydantic model class"
            )
        return cast("type[Plugin[Any]]", obj)  # checked against group.bases above


class Registry:
    """The installed entries of one group (plugins by default), by entry point name."""

    def __init__(self, entries: list[PluginEntry], group: Group = PLUGINS) -> None:
        self.group = group
        self._by_name: dict[str, list[PluginEntry]] = {}
        for entry in entries:
            self._by_name.setdefault(entry.name, []).append(entry)

    @classmethod
    def discover(cls, group: Group = PLUGINS) -> Registry:
        """Read entry point metadata of every installed distribution (no imports)."""
        entries = []
        for ep in entry_points(group=group.name):
            entries.append(PluginEntry(name=ep.name, value=ep.value, entry_point=ep, group=group))
        return cls(entries, group)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[PluginEntry]:
        for name in self.names():
            yield from self._by_name[name]

    def conflicts(self) -> list[PluginConflictError]:
        return [
            PluginConflictError(name, entries)
            for name, entries in sorted(self._by_name.items())
            if len(entries) > 1
        ]

    def entry(self, name: str) -> PluginEntry:
        """Return the entry for ``name``.

        Raises:
            UnknownPluginError: no installed distribution registers ``name``.
            PluginConflictError: more than one does.
        """
        entries = self._by_name.get(name)
        if not entries:
            raise UnknownPluginError(name, self.names(), self.group)
        if len(entries) > 1:
            raise PluginConflictError(name, entries)
        return entries[0]

    def load(self, name: str) -> type[Plugin[Any]]:
        """Return the class registered as ``name``; see :meth:`entry` and
        :meth:`PluginEntry.load` for what it raises."""
        return self.entry(name).load()
