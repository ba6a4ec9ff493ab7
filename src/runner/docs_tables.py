"""Options tables for the documentation, built from a plugin's options model.

The documentation site (``docs/hooks.py``) replaces ``<!-- options: NAME -->``
with :func:`options_table` of that plugin's or notifier's ``Options``, so the
tables are never copied by hand. The rows come from the model's JSON Schema,
the same source ``runner schema`` gives editors: a type, a default and a
description per option, and one row per field of a nested options object
(``expect_body.contains``, ``expect_json[].path``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from runner.durations import DURATION_PATTERN, format_duration

__all__ = ["OptionRow", "option_rows", "options_table"]


@dataclass(frozen=True)
class OptionRow:
    """One option as the documentation shows it.

    Attributes:
        name: the key in a job's ``options``; a nested one is dotted
            (``expect_body.regex``), an item of a list ``expect_json[].path``.
        type: what the value is, in words (``integer (0 to 65535)``, ``duration``).
        default: the default as written in a config, or None when the option
            is required or unset by default (see ``required``).
        required: the option must be given.
        description: the model's description of the field.
    """

    name: str
    type: str
    default: str | None
    required: bool
    description: str


def option_rows(model: type[BaseModel]) -> list[OptionRow]:
    """The options of ``model`` (an options model), in declaration order."""
    schema = model.model_json_schema()
    return _rows(schema, schema.get("$defs", {}), prefix="")


def options_table(model: type[BaseModel]) -> str:
    """A Markdown table of the options of ``model`` (option, type, default, description)."""
    rows = option_rows(model)
    if not rows:
        return "It takes no options.\n"
    lines = ["| option | type | default | description |", "|---|---|---|---|"]
    for row in rows:
        default = "**required**" if row.required else row.default or "—"
        cells = (f"`{row.name}`", row.type, default, row.description)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _rows(schema: dict[str, Any], defs: dict[str, Any], prefix: str) -> list[OptionRow]:
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        default = _default(prop) if "default" in prop else None
        rows.append(
            OptionRow(
                name=prefix + name,
                type=_type(prop, defs),
                default=default,
                required=name in required,
                description=_escape_backslashes(" ".join(str(prop.get("description", "")).split())),
            )
        )
        nested, suffix = _nested(prop, defs)
        if nested is not None:
            rows.extend(_rows(nested, defs, prefix=f"{prefix}{name}{suffix}."))
    return rows


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = defs[ref.rsplit("/", 1)[-1]]
        return resolved
    return node


def _nested(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The object schema whose fields get rows of their own, and ``""`` or ``"[]"``."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    if len(branches) != 1:
        return None, ""
    node, suffix = branches[0], ""
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        node, suffix = node["items"], "[]"
    if "$ref" not in node:
        return None, ""
    target = _resolve(node, defs)
    return (target, suffix) if target.get("properties") else (None, "")


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON Schema node in a few words."""
    if node.get("pattern") == DURATION_PATTERN:
        return "duration"
    if "$ref" in node:
        return "object"
    if "enum" in node:
        return "one of " + ", ".join(f"`{_yaml(v)}`" for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            branches = [b for b in node[key] if b.get("type") != "null"]
            if all("$ref" in b for b in branches) and len(branches) > 2:
                return f"object (one of {len(branches)} kinds)"
            return " or ".join(_type(b, defs) for b in branches)
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(k for k in kind if k != "null")
    if kind == "array":
        return "list of " + _type(node.get("items", {}), defs)
    if kind == "object":
        values = node.get("additionalProperties")
        return f"mapping of string to {_type(values, defs)}" if values else "object"
    if kind == "string" and node.get("format") == "uri":
        return "URL"
    return str(kind or "any") + _bounds(node)


def _bounds(node: dict[str, Any]) -> str:
    """The numeric bounds of ``node`` in words: `` (0 to 65,535)``, `` (above 0)``."""
    words = []
    if "minimum" in node:
        words.append(f"at least {_number(node['minimum'])}")
    elif "exclusiveMinimum" in node:
        words.append(f"above {_number(node['exclusiveMinimum'])}")
    if "maximum" in node:
        words.append(f"at most {_number(node['maximum'])}")
    if len(words) == 2 and "minimum" in node:
        return f" ({_number(node['minimum'])} to {_number(node['maximum'])})"
    return f" ({', '.join(words)})" if words else ""


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _default(prop: dict[str, Any]) -> str | None:
    value = prop["default"]
    if value is None:
        return None
    if prop.get("pattern") == DURATION_PATTERN and isinstance(value, int | float):
        return f"`{format_duration(value)}`"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    """``value`` as a config writes it: a string bare unless YAML would read
    it as something else (``off`` is false to YAML 1.1), anything else as JSON."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def _escape_backslashes(text: str) -> str:
    """Backslashes doubled outside code spans, so Markdown shows each one."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("\\", "\\\\") for i, p in enumerate(parts))


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell: no line break, no bare ``|``."""
    return " ".join(text.split()).replace("|", "\\|")
