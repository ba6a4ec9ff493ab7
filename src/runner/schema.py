"""A JSON Schema of the whole config, with each installed plugin's options.

Editors that speak yaml-language-server (VS Code's YAML extension, Neovim,
...) use it for completion and checking as you type: put
``# yaml-language-server: $schema=runner.schema.json`` at the top of a
config after ``runner schema > runner.schema.json``; ``check-jsonschema
--schemafile runner.schema.json CONFIG`` checks a file the same way.

A job is one object schema (every job key, ``plugin`` an ``enum`` of the
installed plugins) plus one ``if``/``then`` per plugin: *if* ``plugin`` is
``http-status``, *then* ``options`` must match http-status's own model (and a
service takes no check-only keys). Validators follow such a condition
straight to the field at fault, so a bad option is reported on its own line
with its own name, and a misspelt plugin with the list of installed ones. (A
``oneOf`` with one branch per plugin, the obvious alternative, makes every
validator guess which branch was meant, and they guess wrong: "plugin:
'dns-resolve' was expected" for a typo in an option.)

The schema is generated from the same pydantic models the loader validates
with; the loader stays the authority (``${ENV}`` values, for example, are
only expanded there, so a ``port: "${PORT}"`` is a string to the editor).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from runner.config.specs import (
    ALERT_RULE_KEYS,
    CHECK_ONLY,
    ClusterSpec,
    Defaults,
    HistorySpec,
    HttpSpec,
    JobSpec,
    MaintenanceSpec,
    NotifierSpec,
)
from runner.plugin import Plugin, Service
from runner.registry import NOTIFIERS, PLUGINS, Group, PluginError, Registry


def _inline(model: type[BaseModel], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema with its own $defs moved, prefixed, into ``defs``."""
    schema = model.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    for name, sub in schema.pop("$defs", {}).items():
        defs[f"{prefix}{name}"] = sub
    return schema


#: Keywords that constrain only values of their own type, so a ``null`` passes them.
_TYPED_ONLY = frozenset(
    {
        "type",
        "pattern",
        "patternErrorMessage",
        "minLength",
        "maxLength",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "title",
        "description",
        "default",
        "examples",
    }
)


def _flatten_nullable(node: Any) -> Any:
    """``anyOf: [X, {type: null}]`` (pydantic's ``T | None``) as X with ``null``
    added to its types, wherever X holds only keywords that a null passes.

    The same values are valid, but a validator no longer has two branches to
    choose between for its message: ``interval: 0s`` gets the duration's own
    message rather than "is not of type 'null'".
    """
    if isinstance(node, list):
        return [_flatten_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _flatten_nullable(value) for key, value in node.items()}
    branches = node.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        other = branches[0] if branches[1] == {"type": "null"} else branches[1]
        if isinstance(other, dict) and "type" in other and set(other) <= _TYPED_ONLY:
            types = other["type"] if isinstance(other["type"], list) else [other["type"]]
            rest = {key: value for key, value in node.items() if key != "anyOf"}
            return {**other, **rest, "type": [*types, "null"]}
    return node


def _entries(registry: Registry, problems: list[str]) -> list[tuple[str, type[Plugin[Any]]]]:
    """The loadable entries of ``registry``; the others are named in ``problems``."""
    loaded = []
    for name in registry.names():
        try:
            loaded.append((name, registry.load(name)))
        except PluginError as exc:
            problems.append(str(exc))
    return loaded


def _selected_by(
    key: str,
    group: Group,
    fields: dict[str, Any],
    entries: list[tuple[str, type[Plugin[Any]]]],
    defs: dict[str, Any],
    prefix: str,
) -> dict[str, Any]:
    """The schema of one list item (a job, a notifier) whose ``options`` are
    chosen by the value of ``key`` (``plugin``, ``notifier``)."""
    names = [name for name, _ in entries]
    properties = dict(fields)
    properties[key] = {
        "type": "string",
        "enum": names,
        # Completion lists show each one's summary (VS Code, yaml-language-server).
        "enumDescriptions": [cls.summary() for _, cls in entries],
        "description": f"Entry point name in group {group.name}: one of the installed "
        f"{group.noun}s (`runner plugins` lists them).",
    }
    conditions = []
    for name, cls in entries:
        options = _inline(cls.Options, f"{prefix}{name}.", defs)
        defs[f"{prefix}{name}"] = options
        then: dict[str, Any] = {
            "properties": {"options": {"$ref": f"#/$defs/{prefix}{name}"}},
        }
        if issubclass(cls, Service):
            # A service runs continuously: the keys that schedule or judge a
            # check's results mean nothing for it ("Property interval is not
            # allowed.", on that key's line).
            then["properties"].update({k: True for k in fields if k not in CHECK_ONLY})
            then["properties"][key] = True
            then["additionalProperties"] = False
        conditions.append(
            {
                "if": {"properties": {key: {"const": name}}, "required": [key]},
                "then": {"title": name, "description": cls.summary(), **then},
            }
        )
    return {
        "type": "object",
        "properties": properties,
        "required": ["name", key],
        "additionalProperties": False,
        "allOf": conditions,
    }


#: failure_threshold or down_when, success_threshold or up_when: one form each.
ONE_RULE_FORM = {streak: {"properties": {window: False}} for streak, window in ALERT_RULE_KEYS}


def build_schema(registry: Registry | None = None) -> tuple[dict[str, Any], list[str]]:
    """Return the schema and the problems met (plugins that cannot be loaded)."""
    registry = registry if registry is not None else Registry.discover(PLUGINS)
    defs: dict[str, Any] = {}
    problems: list[str] = []
    # Sub-models the jobs and defaults share (down_when, up_when) land in $defs once.
    job_fields = dict(_inline(JobSpec, "", defs)["properties"])
    job_fields["options"] = {
        "type": "object",
        "description": "The plugin's options; `runner plugins NAME` lists them.",
    }
    job = _selected_by("plugin", PLUGINS, job_fields, _entries(registry, problems), defs, "plugin.")
    # A check runs every interval or at a cron line's times, not both (flagged
    # on the interval's line), and only a cron line has a time zone.
    # Each alerting rule is said once: failure_threshold or down_when,
    # success_threshold or up_when (flagged on the window form's line).
    job["dependentSchemas"] = {"cron": {"properties": {"interval": False}}, **ONE_RULE_FORM}
    job["dependentRequired"] = {"timezone": ["cron"]}
    notifier_fields = dict(NotifierSpec.model_json_schema()["properties"])
    notifier_fields["options"] = {
        "type": "object",
        "description": "The notifier's options; `runner plugins NAME` lists them.",
    }
    notifier = _selected_by(
        "notifier",
        NOTIFIERS,
        notifier_fields,
        _entries(Registry.discover(NOTIFIERS), problems),
        defs,
        "notifier.",
    )
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "runner config",
        "type": "object",
        "properties": {
            "cluster": ClusterSpec.model_json_schema(),
            "defaults": {**_inline(Defaults, "", defs), "dependentSchemas": ONE_RULE_FORM},
            "history": HistorySpec.model_json_schema(),
            "http": _inline(HttpSpec, "http.", defs),
            "notifiers": {"type": "array", "items": notifier},
            "jobs": {"type": "array", "minItems": 1, "items": job},
            "maintenance": {"type": "array", "items": MaintenanceSpec.model_json_schema()},
        },
        "required": ["jobs"],
        "additionalProperties": False,
        "$defs": defs,
    }
    return _flatten_nullable(schema), problems


def schema_json(registry: Registry | None = None) -> tuple[str, list[str]]:
    schema, problems = build_schema(registry)
    return json.dumps(schema, indent=2, sort_keys=False), problems
