"""Durations as people write them: ``500ms``, ``10s``, ``5m``, ``1h``, ``1m30s``.

``Duration`` is a pydantic type for options models too: a plugin option
declared ``window: Duration = 300`` accepts ``5m`` in YAML and arrives as
seconds (a float).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

__all__ = [
    "DURATION_JSON_SCHEMA",
    "DURATION_PATTERN",
    "MAX_DURATION",
    "Duration",
    "format_duration",
    "parse_duration",
]

#: The longest duration anything accepts, plugins' own options included: 366 days.
#: Longer is a typo or an attack (``1e309`` is infinity; a timeout of 10**30 s
#: overflows the timers of the libraries a run hands it to).
MAX_DURATION = 366 * 86400.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Turn ``500ms``, ``10s``, ``5m``, ``1h``, ``1m30s`` or a number of seconds into seconds."""
    if isinstance(value, bool):  # YAML's yes/no are bools, and bool is an int
        raise ValueError("expected a duration such as 500ms, 10s, 5m or 1h")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int past float's range
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"{value!r} is not a duration; use a number with a unit "
                    f"(500ms, 10s, 5m, 1h, 1m30s) or a number of seconds"
                ) from None
    else:
        raise ValueError("expected a duration such as 500ms, 10s, 5m or 1h")
    if not seconds > 0:  # nan too
        raise ValueError("must be longer than zero" if seconds <= 0 else "not a number")
    if not seconds <= MAX_DURATION:  # inf too
        raise ValueError(
            f"longer than the maximum of {MAX_DURATION / 86400:g} days"
            if math.isfinite(seconds)
            else "must be finite"
        )
    return seconds


def _duration_pattern() -> str:
    """A regular expression (ECMA-262 and Python alike) for exactly the strings
    :func:`parse_duration` accepts: the same grammar, spaces allowed anywhere
    (it removes them), other whitespace at the ends and between a number and
    its unit, and above zero (a non-zero digit before any exponent). The one
    difference: a string past :data:`MAX_DURATION` (``400d``) matches, since a
    pattern cannot bound a sum; ``runner check`` refuses it with the limit."""
    sp = " *"  # parse_duration drops every space before parsing
    digits = rf"\d(?:{sp}_?{sp}\d)*"  # float() allows one _ between digits
    mantissa = rf"(?:{digits}(?:{sp}\.(?:{sp}{digits})?)?|\.{sp}{digits})"
    exponent = rf"(?:{sp}[eE]{sp}[+-]?{sp}{digits})?"
    number = rf"(?:\+{sp})?(?=[^eE1-9]*[1-9]){mantissa}{exponent}"
    amount = rf"\d(?:{sp}\d)*(?:{sp}\.{sp}\d(?:{sp}\d)*)?"
    part = rf"{amount}\s*(?:m{sp}s|s|m|h|d)"
    with_units = rf"(?=[^1-9]*[1-9]){part}(?:{sp}{part})*"
    return rf"^\s*(?:{number}|{with_units})\s*$"


#: :func:`parse_duration`'s grammar as a regular expression (ECMA-262 and Python).
DURATION_PATTERN = _duration_pattern()

#: What a duration looks like in a config, for the JSON Schema (``runner schema``):
#: what :func:`parse_duration` accepts, no more and no less, so an editor flags
#: exactly what ``runner check`` rejects (``0s``, ``30 seconds``). One schema
#: with both types rather than an ``anyOf`` of a number and a string: ``pattern``
#: applies to strings only and ``exclusiveMinimum`` to numbers only, and
#: validators report "does not match" for a bad string instead of guessing
#: that a number was meant.
DURATION_JSON_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "exclusiveMinimum": 0,
    "maximum": MAX_DURATION,
    "pattern": DURATION_PATTERN,
    # Shown by VS Code and yaml-language-server instead of the pattern itself.
    "patternErrorMessage": "Expected a duration above zero: 500ms, 10s, 5m, 1h, 1d, 1m30s, "
    "or a number of seconds.",
    "description": "A duration: 500ms, 10s, 5m, 1h, 1d, 1m30s, or a number of seconds "
    "(at most 366 days).",
}

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_JSON_SCHEMA)]


def format_duration(seconds: float) -> str:
    for unit in ("h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
