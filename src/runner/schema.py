"""A JSON Schema of the whole config, with each installed plugin's options.

Editors that speak yaml-language-server (VS Code's YAML extension, Neovim,
...) use it for completion and checking as you type: put
``# yaml-language-server: $schema=runner.schema.json`` at the top of a
config after ``runner schema > runner.schema.json``.

Each job is one branch of a ``oneOf`` selected by its ``plugin`` value, so
``options`` are checked against that plugin's own model. The schema is
generated from the same pydantic models the loader validates with; the
loader stays the authority (``${ENV}`` values, for example, are only
expanded there, so a ``port: "${PORT}"`` is a string to the editor).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from runner.config import Defaults, HistorySpec, HttpSpec, JobSpec, NotifierSpec
from runner.durations import DURATION_JSON_SCHEMA
from runner.plugin import Service
from runner.registry import NOTIFIERS, PluginError, Registry


def _inline(model: type[BaseModel], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema with its own $defs moved, prefixed, into ``defs``."""
    schema = model.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    for name, sub in schema.pop("$defs", {}).items():
        defs[f"{prefix}{name}"] = sub
    return schema


def build_schema(registry: Registry | None = None) -> tuple[dict[str, Any], list[str]]:
    """Return the schema and the problems met (plugins that cannot be loaded)."""
    registry = registry if registry is not None else Registry.discover()
    defs: dict[str, Any] = {}
    problems: list[str] = []
    job_fields = JobSpec.model_json_schema()["properties"]
    branches = []
    for name in registry.names():
        try:
            plugin = registry.load(name)
        except PluginError as exc:
            problems.append(str(exc))
            continue
        options = _inline(plugin.Options, f"{name}.", defs)
        properties: dict[str, Any] = {
            "name": job_fields["name"],
            "plugin": {"const": name, "description": plugin.summary()},
            "options": options,
        }
        if not issubclass(plugin, Service):
            properties["interval"] = {"$ref": "#/$defs/duration"}
            properties["timeout"] = {"$ref": "#/$defs/duration"}
            for key in (
                "notify",
                "failure_threshold",
                "success_threshold",
                "retries",
                "retry_delay",
                "retry_delay_max",
            ):
                properties[key] = job_fields[key]
        branches.append(
            {
                "title": name,
                "type": "object",
                "properties": properties,
                "required": ["name", "plugin"],
                "additionalProperties": False,
            }
        )
    notifier_fields = NotifierSpec.model_json_schema()["properties"]
    notifier_branches = []
    for name in Registry.discover(NOTIFIERS).names():
        try:
            notifier = Registry.discover(NOTIFIERS).load(name)
        except PluginError as exc:
            problems.append(str(exc))
            continue
        notifier_branches.append(
            {
                "title": name,
                "type": "object",
                "properties": {
                    "name": notifier_fields["name"],
                    "notifier": {"const": name, "description": notifier.summary()},
                    "send_on_resolved": notifier_fields["send_on_resolved"],
                    "repeat_every": {"$ref": "#/$defs/duration"},
                    "options": _inline(notifier.Options, f"notifier.{name}.", defs),
                },
                "required": ["name", "notifier"],
                "additionalProperties": False,
            }
        )
    history = HistorySpec.model_json_schema()
    for key in ("keep", "flush_every"):
        history["properties"][key] = {
            "$ref": "#/$defs/duration",
            "description": history["properties"][key].get("description", ""),
        }
    defaults = Defaults.model_json_schema()
    for key in ("interval", "timeout"):
        defaults["properties"][key] = {
            "$ref": "#/$defs/duration",
            "description": defaults["properties"][key].get("description", ""),
        }
    defs["duration"] = DURATION_JSON_SCHEMA
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "runner config",
        "type": "object",
        "properties": {
            "defaults": defaults,
            "history": history,
            "http": _inline(HttpSpec, "http.", defs),
            "notifiers": {"type": "array", "items": {"oneOf": notifier_branches}},
            "jobs": {"type": "array", "minItems": 1, "items": {"oneOf": branches}},
        },
        "required": ["jobs"],
        "additionalProperties": False,
        "$defs": defs,
    }
    return schema, problems


def schema_json(registry: Registry | None = None) -> tuple[str, list[str]]:
    schema, problems = build_schema(registry)
    return json.dumps(schema, indent=2, sort_keys=False), problems
