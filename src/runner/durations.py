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


#: What a duration looks like in a config, for the JSON Schema (``runner schema``).
DURATION_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$|^\s*\d+(\.\d+)?\s*$"},
    ],
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
