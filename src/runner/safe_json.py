"""A plugin's result fields, made into plain JSON data so that no result is lost.

``Result.ok(peer=("10.0.0.1", 443), headers={("a", 1): obj})`` is easy to
write and impossible to log as JSON: the line, the history row and the
alert would each fail on it. :func:`json_safe` turns the fields into what
JSON holds (strings as keys; lists for tuples and sets; ``str()`` and, as
a last resort, ``repr()`` for anything else), once, when the record is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["json_safe", "text"]

_PLAIN = (str, int, bool, type(None))
#: Deeper structures are cut here (a plugin's self-referencing object graph).
_MAX_DEPTH = 32


def json_safe(fields: Any) -> dict[str, Any]:
    """``fields`` as a JSON-serialisable dict; the same object when it already is one."""
    if not isinstance(fields, Mapping):
        return {"fields": text(fields)}
    if type(fields) is dict and all(
        type(k) is str and (isinstance(v, _PLAIN) or (type(v) is float and math.isfinite(v)))
        for k, v in fields.items()
    ):
        return fields  # the common case: flat and plain, nothing to copy
    return {_key(k): _value(v, 1) for k, v in fields.items()}


def text(value: Any) -> str:
    """``str(value)``; its ``repr`` when that raises, and ``object.__repr__`` as a last resort."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        pass
    try:
        return repr(value)
    except Exception:
        return object.__repr__(value)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else text(key)


def _value(value: Any, depth: int) -> Any:
    if isinstance(value, _PLAIN):
        return value  # str and int subclasses (enums) encode as their base
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else text(value)
    if depth >= _MAX_DEPTH:
        return text(value)
    if isinstance(value, Mapping):
        return {_key(k): _value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(v, depth + 1) for v in value]
    return text(value)
