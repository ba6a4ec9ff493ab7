"""Assertions of ``http-status`` on what the answer says: body, JSON, headers.

Each check returns the failures it found as messages that say what was
expected and what came, with what came cut short and control characters
escaped, so a 1 MiB body or a binary answer never floods a log line.

JSON paths are JMESPath (the ``jmespath`` library): one specification with
a compliance suite, one mature pure-Python implementation without
dependencies (it is what the AWS CLI and Ansible's ``json_query`` run), and
a query yields one value, so ``equals`` and ``less_than`` compare a value
rather than a list of matches as JSONPath's do. A path that matches nothing
gives null, so ``exists: true`` fails for a missing key and for a null alike.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx
import jmespath
import jmespath.exceptions
from pydantic import Field, PrivateAttr, field_validator, model_validator

from runner.builtins._regex import Regex, compile_regex
from runner.plugin import Options

__all__ = [
    "ExpectBody",
    "ExpectJson",
    "body_failures",
    "clip",
    "header_failures",
    "json_failures",
]

#: Characters of a body or value shown in a message.
SHOWN = 80

#: Response headers whose values a message never shows (they carry sessions).
_HIDDEN_HEADERS = frozenset({"set-cookie"})

_JSON_TESTS = ("equals", "contains", "exists", "regex", "less_than", "greater_than")


def clip(text: str, limit: int = SHOWN) -> str:
    """``text`` quoted for a message: control characters escaped, cut at ``limit`` characters."""
    return repr(text[:limit] + "…" if len(text) > limit else text)


def _strings(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


class ExpectBody(Options):
    """``expect_body``: what the body's text must (not) contain or match."""

    contains: str | list[str] | None = Field(
        None, description="Text the body must contain (one string or a list, all required)."
    )
    not_contains: str | list[str] | None = Field(
        None, description="Text the body must not contain (one string or a list)."
    )
    regex: Regex | None = Field(
        None, description="A regular expression (Python syntax) the body must match somewhere."
    )

    _regex: re.Pattern[str] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _compile(self) -> ExpectBody:
        if self.contains is None and self.not_contains is None and self.regex is None:
            raise ValueError("give at least one of contains, not_contains, regex")
        self._regex = compile_regex(self.regex) if self.regex is not None else None
        return self


class ExpectJson(Options):
    """One ``expect_json`` entry: a JMESPath and one test of its value."""

    path: str = Field(
        min_length=1, description="A JMESPath expression, such as status or data.items[0].id."
    )
    equals: Any = Field(None, description="The value must equal this (any JSON value).")
    contains: Any = Field(
        None, description="A string value must contain this text; an array, this element."
    )
    exists: bool | None = Field(
        None, description="true: the path must give a non-null value; false: null or nothing."
    )
    regex: Regex | None = Field(
        None, description="The value (a string, or other values as JSON text) must match."
    )
    less_than: float | None = Field(
        None, allow_inf_nan=False, description="The value must be a number below this."
    )
    greater_than: float | None = Field(
        None, allow_inf_nan=False, description="The value must be a number above this."
    )

    _path: Any = PrivateAttr(None)
    _regex: re.Pattern[str] | None = PrivateAttr(None)

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        try:
            jmespath.compile(value)
        except jmespath.exceptions.JMESPathError as exc:
            reason = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression: ")
            raise ValueError(f"{value!r} is not a valid JMESPath expression: {reason}") from None
        return value

    @model_validator(mode="after")
    def _one_test(self) -> ExpectJson:
        given = [name for name in _JSON_TESTS if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(_JSON_TESTS)} for path {self.path!r}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        self._path = jmespath.compile(self.path)
        self._regex = compile_regex(self.regex) if self.regex is not None else None
        return self

    def test(self) -> str:
        """The name of this entry's test (``equals``, ``exists``, ...)."""
        return next(name for name in _JSON_TESTS if name in self.model_fields_set)

    def failure(self, document: Any) -> str | None:
        """Why ``document`` fails this entry, or None when it passes."""
        value = self._path.search(document)
        what = f"JSON {self.path}"
        got = _show(value)
        match self.test():
            case "equals":
                if not _json_equal(value, self.equals):
                    return f"{what}: expected {_show(self.equals)}, got {got}"
            case "exists":
                if self.exists and value is None:
                    return f"{what}: expected a value, got nothing"
                if not self.exists and value is not None:
                    return f"{what}: expected nothing, got {got}"
            case "contains":
                if isinstance(value, str) and isinstance(self.contains, str):
                    if self.contains not in value:
                        return f"{what}: expected to contain {clip(self.contains)}, got {got}"
                elif isinstance(value, list):
                    if not any(_json_equal(item, self.contains) for item in value):
                        return (
                            f"{what}: expected an array containing {_show(self.contains)}, "
                            f"got {got}"
                        )
                else:
                    expected = f"a string or array containing {_show(self.contains)}"
                    return f"{what}: expected {expected}, got {got}"
            case "regex":
                assert self._regex is not None and self.regex is not None
                text = value if isinstance(value, str) else json.dumps(value)
                if value is None or not self._regex.search(text):
                    return f"{what}: expected to match /{self.regex}/, got {got}"
            case "less_than":
                assert self.less_than is not None
                if not _is_number(value):
                    return f"{what}: expected a number less than {self.less_than:g}, got {got}"
                if not value < self.less_than:
                    return f"{what}: expected less than {self.less_than:g}, got {got}"
            case "greater_than":
                assert self.greater_than is not None
                if not _is_number(value):
                    expected = f"a number greater than {self.greater_than:g}"
                    return f"{what}: expected {expected}, got {got}"
                if not value > self.greater_than:
                    return f"{what}: expected greater than {self.greater_than:g}, got {got}"
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0``, but ``true`` is not ``1`` as it is in Python."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _show(value: Any) -> str:
    """A JSON value for a message: strings quoted, the rest as JSON, cut short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def _body_text(content: bytes, charset: str | None) -> str:
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset in Content-Type
        return content.decode("utf-8", errors="replace")


def body_failures(
    spec: ExpectBody, content: bytes, *, complete: bool, charset: str | None
) -> list[str]:
    """Why the body fails ``expect_body``. Only the bytes read (``content``) are searched."""
    text = _body_text(content, charset)
    shown = f"got {clip(text)}" + ("" if complete else " (only the first bytes were read)")
    failures = [
        f"body: expected to contain {clip(needle)}, {shown}"
        for needle in _strings(spec.contains)
        if needle not in text
    ]
    for needle in _strings(spec.not_contains):
        at = text.find(needle)
        if at >= 0:
            context = text[max(0, at - 20) : at + len(needle) + 20]
            failures.append(
                f"body: expected not to contain {clip(needle)}, found at character {at}: "
                f"{clip(context)}"
            )
    if spec._regex is not None and not spec._regex.search(text):
        failures.append(f"body: expected to match /{spec.regex}/, {shown}")
    return failures


def json_failures(
    specs: list[ExpectJson], content: bytes, *, complete: bool, limit: int
) -> list[str]:
    """Why the body fails ``expect_json``: not JSON, or each entry that fails."""
    if not complete:
        return [
            f"body: expected JSON within max_body_bytes ({limit} bytes), but the body is "
            "longer; raise max_body_bytes"
        ]
    try:
        document = json.loads(content)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        text = _body_text(content, None)
        return [f"body: expected JSON, got {clip(text)} ({reason})"]
    return [message for spec in specs if (message := spec.failure(document)) is not None]


def header_failures(expected: dict[str, re.Pattern[str]], headers: httpx.Headers) -> list[str]:
    """Why the answer's headers fail ``expect_headers`` (name: regex)."""
    failures = []
    for name, pattern in expected.items():
        values = headers.get_list(name)
        if not values:
            failures.append(f"header {name}: expected to match /{pattern.pattern}/, got none")
            continue
        value = ", ".join(values)
        if not pattern.search(value):
            got = "a value not shown" if name.lower() in _HIDDEN_HEADERS else clip(value)
            failures.append(f"header {name}: expected to match /{pattern.pattern}/, got {got}")
    return failures
