"""Regular expressions in plugin options: checked when the config is loaded."""

from __future__ import annotations

import re

__all__ = ["check_regex", "compile_regex"]


def compile_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled, or a ValueError that says why it is not a regular expression."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def check_regex(value: str | None) -> str | None:
    """A field validator: ``value`` unchanged if it compiles (or is None)."""
    if value is not None:
        compile_regex(value)
    return value
