"""``${VAR}`` in a config's string values, replaced by the environment's value.

``${VAR:-default}`` gives a default when ``VAR`` is not set, and ``$${`` is a
literal ``${``. Substituted values are secrets: errors never echo a value
whose text came from the environment, and logs mask them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.config.source import PathTuple

__all__ = ["Expansion", "expand_env"]

_ENV_REF = re.compile(r"\$(\$)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Expansion:
    """A document with its ``${VAR}`` references replaced."""

    data: Any
    #: The (non-empty) values taken from the environment.
    secrets: frozenset[str]
    #: Where a value was built from a ``${VAR}`` reference.
    secret_paths: frozenset[PathTuple]
    #: ``(path, name)`` of each variable that is not set and has no default.
    missing: list[tuple[PathTuple, str]]


def expand_env(data: Any, environ: Mapping[str, str]) -> Expansion:
    """Replace ``${VAR}`` in every string of ``data`` (a YAML document)."""
    expander = _Expander(environ)
    expanded = expander.value(data, ())
    return Expansion(
        expanded,
        frozenset(s for s in expander.secrets if s),
        frozenset(expander.secret_paths),
        expander.missing,
    )


class _Expander:
    """Walks a document once, noting what it took from the environment."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.secrets: set[str] = set()
        self.secret_paths: set[PathTuple] = set()
        self.missing: list[tuple[PathTuple, str]] = []

    def value(self, data: Any, path: PathTuple) -> Any:
        if isinstance(data, str):
            return self.string(data, path) if "$" in data else data
        if isinstance(data, dict):
            return {k: self.value(v, (*path, str(k))) for k, v in data.items()}
        if isinstance(data, list):
            return [self.value(v, (*path, i)) for i, v in enumerate(data)]
        return data

    def string(self, text: str, path: PathTuple) -> str:
        used = False

        def replace(m: re.Match[str]) -> str:
            nonlocal used
            if m.group(1):
                return "$"
            used = True
            name, default = m.group(2), m.group(3)
            if name in self.environ:
                self.secrets.add(self.environ[name])
                return self.environ[name]
            if default is not None:
                return default
            self.missing.append((path, name))
            return ""

        result = _ENV_REF.sub(replace, text)
        if used:
            self.secret_paths.add(path)
        return result
