"""`runner schema`: a JSON Schema editors use to check configs as they are typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers import run_cli
from runner.schema import build_schema

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema, problems = build_schema()
    assert problems == []
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_is_valid_against_the_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
    assert errors == []


def job(**fields: Any) -> dict[str, Any]:
    return {"jobs": [{"name": "j", **fields}]}


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(
            job(plugin="http-status", options={"url": "http://x/", "expect_code": [200]}),
            id="unknown-option",
        ),
        pytest.param(job(plugin="sleep", options={"seconds": "lots"}), id="wrong-option-type"),
        pytest.param(job(plugin="http-status", options={}), id="missing-url"),
        pytest.param(job(plugin="echo-listener", interval="10s"), id="service-with-interval"),
        pytest.param(job(plugin="sleep", interval="5x"), id="bad-duration"),
        pytest.param(job(plugin="no-such-plugin"), id="unknown-plugin"),
        pytest.param({"jobs": [], "extra": 1}, id="unknown-top-level-key"),
    ],
)
def test_wrong_configs_are_rejected_by_the_schema(
    config: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    assert not validator.is_valid(config)


def test_valid_durations_and_options_pass(validator: jsonschema.Draft202012Validator) -> None:
    config = {
        "defaults": {"interval": "1m30s", "timeout": 5},
        "jobs": [
            {"name": "a", "plugin": "sleep", "interval": "500ms", "options": {"seconds": 0.1}},
            {"name": "b", "plugin": "echo-listener", "options": {"port": 8001}},
        ],
    }
    assert list(validator.iter_errors(config)) == []


def test_schema_command_prints_json_with_every_plugin() -> None:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    titles = {b["title"] for b in schema["properties"]["jobs"]["items"]["oneOf"]}
    assert {"http-status", "page-title", "sleep", "echo-listener", "file-server"} <= titles
