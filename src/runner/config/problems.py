"""What is wrong with a config, each problem placed at its file, line, job and field.

:class:`Problems` collects every problem of one file (a config is checked
whole, not up to its first mistake) and turns pydantic's validation errors
into sentences; :class:`ConfigError` carries them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runner.config.source import Document, PathTuple

__all__ = ["ConfigError", "Problem", "Problems", "close_matches", "dotted"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, and where it is."""

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
_LISTS = ("jobs", "notifiers", "maintenance")
_LIST_PREFIXES = tuple((section,) for section in _LISTS)
#: Top-level mappings problems name by their key (``defaults: retries: ...``).
_SECTIONS = ("defaults", "history", "http")

#: Pydantic's error types said in words; the others keep pydantic's message.
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


class Problems:
    """The problems of one document, found so far (``found``)."""

    def __init__(self, document: Document) -> None:
        self.found: list[Problem] = []
        self.document = document
        #: The document list items are named from (the expanded one, once it is).
        self.data: Any = document.data
        #: Places whose value came from the environment: never shown.
        self.secret_paths: frozenset[PathTuple] = frozenset()

    def expanded(self, data: Any, secret_paths: frozenset[PathTuple]) -> None:
        """From now on, name list items as ``data`` does, and show no value
        at ``secret_paths`` (they came from the environment)."""
        self.data = data
        self.secret_paths = secret_paths

    def add(self, path: PathTuple, message: str, *, field_from: int | None = None) -> None:
        """A problem at ``path``; its field is the path from ``field_from``
        (by default, from below the job, the notifier or the section)."""
        if field_from is None:
            field_from = 2 if path[:1] in _LIST_PREFIXES and len(path) >= 2 else 1 if path else 0
        self.found.append(
            Problem(
                line=self.document.line_of(path),
                where=where(path, self.data),
                field=dotted(path[field_from:]),
                message=message,
            )
        )

    def add_unplaced(self, line: int | None, message: str) -> None:
        """A problem of the whole file, at ``line`` if one can be named."""
        self.found.append(Problem(line, "", "", message))

    def add_duplicate_keys(self) -> None:
        """One problem per key a mapping of the document holds twice."""
        for parent, line, key in self.document.duplicates:
            self.found.append(
                Problem(
                    line,
                    where(parent, self.document.data),
                    dotted((*parent, key)[2 if parent[:1] == ("jobs",) else 0 :]),
                    "duplicate key; YAML would silently keep only the last one",
                )
            )

    def add_validation_error(
        self,
        exc: ValidationError,
        prefix: PathTuple,
        allowed: Iterable[str] = (),
        skip: Iterable[str] = (),
    ) -> None:
        """Add one problem per error, except those about a top-level field in ``skip``.

        ``allowed`` are the keys of the model, named when a key is unknown.
        """
        skipped = set(skip)
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if loc and loc[0] in skipped:
                continue
            path = (*prefix, *loc)
            self.add(path, self.explain(err, path, allowed))

    def explain(self, err: Any, path: PathTuple, allowed: Iterable[str]) -> str:
        """One pydantic error in words, with the value at fault unless it is a secret."""
        kind = err["type"]
        if kind == "extra_forbidden":
            return _unknown_key(path, allowed)
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
        shown = kind != "missing" and not secret and _short(inp)
        if shown and repr(inp) not in message:
            message += f" (got {inp!r})"
        return message


def where(path: PathTuple, data: Any) -> str:
    """Which job, notifier or section ``path`` is in: ``jobs[2] 'api'``, ``defaults``, or ""."""
    if len(path) >= 2 and path[0] in _LISTS and isinstance(path[1], int):
        section, index = path[0], path[1]
        items = data.get(section) if isinstance(data, dict) else None
        name = None
        if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
            name = items[index].get("name")
        return f"{section}[{index}] {name!r}" if isinstance(name, str) else f"{section}[{index}]"
    if path and path[0] in _SECTIONS:
        return str(path[0])
    return ""


def dotted(path: Iterable[str | int]) -> str:
    """``options.headers[0]``: a path as a field name."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def close_matches(word: str, possibilities: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """The closest of ``possibilities`` to a misspelt ``word``: a list of at most one."""
    # Imported here: only a config with a mistake needs difflib, and the
    # daemon keeps every module it imports for its whole life (issue 23).
    import difflib

    return difflib.get_close_matches(word, possibilities, n=1, cutoff=cutoff)


def _unknown_key(path: PathTuple, allowed: Iterable[str]) -> str:
    names = sorted(allowed)
    hint = close_matches(str(path[-1]), names, cutoff=0.5)
    message = "unknown key"
    if hint:
        message += f"; did you mean {hint[0]!r}?"
    if names:
        message += f" (allowed: {', '.join(names)})"
    return message


def _short(value: Any) -> bool:
    return (
        isinstance(value, str | int | float)
        and not isinstance(value, bool)
        and len(repr(value)) <= 60
    )
