"""`runner schema`: a JSON Schema editors use to check configs as they are typed.

What a person sees is tested with the two validators people use:
check-jsonschema (a CLI and pre-commit hook) and yaml-language-server (the
engine of VS Code's YAML extension, driven over stdio as an editor does).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers import run_cli
from runner.config import ConfigError, load_config
from runner.durations import DURATION_JSON_SCHEMA, DURATION_PATTERN, parse_duration
from runner.schema import build_schema
from yaml_language_server import YamlLanguageServer, require_server

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
BUILT_IN = [
    "browser-steps",
    "dns",
    "echo-listener",
    "file-server",
    "heartbeat",
    "http-status",
    "page-title",
    "sleep",
    "tcp",
]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    schema, problems = build_schema()
    assert problems == []
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def schema_file(schema: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "runner.schema.json"
    path.write_text(json.dumps(schema))
    return path


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
        pytest.param(job(plugin="sleep", interval="0s"), id="zero-duration"),
        pytest.param(job(plugin="sleep", interval=0), id="zero-seconds"),
        pytest.param(job(plugin="no-such-plugin"), id="unknown-plugin"),
        pytest.param(
            job(plugin="sleep", failure_threshold=3, down_when={"failures": 3, "of": 5}),
            id="both-down-rules",
        ),
        pytest.param(
            {
                "defaults": {"success_threshold": 2, "up_when": {"successes": 4, "of": 5}},
                **job(plugin="sleep"),
            },
            id="both-up-rules-in-defaults",
        ),
        pytest.param({"jobs": [], "extra": 1}, id="unknown-top-level-key"),
        pytest.param(
            {
                "notifiers": [
                    {"name": "n", "notifier": "webhook", "options": {"url": "http://x/"}}
                ],
                **job(plugin="sleep", notify=["n"], retry_delay="sometimes"),
            },
            id="bad-retry-delay",
        ),
        pytest.param(
            {
                "notifiers": [
                    {
                        "name": "n",
                        "notifier": "webhook",
                        "options": {"url": "http://x/", "timeout": "0s"},
                    }
                ],
                **job(plugin="sleep"),
            },
            id="plugin-own-duration-zero",
        ),
    ],
)
def test_wrong_configs_are_rejected_by_the_schema(
    config: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    assert not validator.is_valid(config)


def test_valid_durations_and_options_pass(validator: jsonschema.Draft202012Validator) -> None:
    config = {
        "defaults": {"interval": "1m30s", "timeout": 5, "retry_delay": "exponential"},
        "jobs": [
            {"name": "a", "plugin": "sleep", "interval": "500ms", "options": {"seconds": 0.1}},
            {"name": "b", "plugin": "echo-listener", "options": {"port": 8001}},
            {"name": "c", "plugin": "sleep", "interval": None, "retry_delay": "2s"},
        ],
    }
    assert list(validator.iter_errors(config)) == []


def test_schema_command_prints_json_with_every_plugin() -> None:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    job = schema["properties"]["jobs"]["items"]
    # The plugin list is exactly what is installed (the dev environment ships
    # no plugin besides runner's own).
    assert job["properties"]["plugin"]["enum"] == BUILT_IN
    selected = {c["if"]["properties"]["plugin"]["const"] for c in job["allOf"]}
    assert selected == set(BUILT_IN)


# --------------------------------------------------------------------------- durations


def _duration_corpus() -> Iterator[str]:
    """Every string of up to three of these pieces, and some longer ones."""
    pieces = ["0", "1", "5", ".", "_", "e", "-", "+", " ", "\t", "s", "m", "h", "d", "ms"]
    pieces += ["inf", "infinity", "nan", "E", "x", "seconds"]
    for length in range(1, 4):
        for combo in itertools.product(pieces, repeat=length):
            yield "".join(combo)
    yield from ["1m30s", "1h 30m", " 2d ", "1.5h", "0.001s", "0m0s", "0m1s", "30 seconds", "1e3"]


def test_the_duration_pattern_accepts_exactly_what_runner_accepts() -> None:
    """The editor and `runner check` agree on every string (tens of thousands tried)."""
    pattern = re.compile(DURATION_PATTERN)
    disagree = []
    for text in _duration_corpus():
        try:
            parse_duration(text)
            runner_accepts = True
        except ValueError:
            runner_accepts = False
        if runner_accepts != bool(pattern.search(text)):
            disagree.append((text, runner_accepts))
    assert disagree == []


def test_duration_pattern_is_the_same_regular_expression_in_javascript() -> None:
    """Editors run the pattern as an ECMAScript regular expression (with the u
    flag); it must give the same answers there."""
    node = require_server()[0]
    samples = ["30s", "1m30s", "1 m 30 s", "0s", "30 seconds", "0e5", "1_000", "+5", "-5"]
    script = (
        "const [p, ...xs] = JSON.parse(process.argv[1]);"
        "const r = new RegExp(p, 'u');"
        "console.log(JSON.stringify(xs.map((x) => r.test(x))));"
    )
    out = subprocess.run(
        [node, "-e", script, json.dumps([DURATION_PATTERN, *samples])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == [bool(re.search(DURATION_PATTERN, s)) for s in samples]
    assert json.loads(out) == [True, True, True, False, False, False, True, True, False]


@pytest.mark.parametrize(
    "value", ["30s", "1h30m", "0s", "30 seconds", "-5", "0", 0, 2.5, "exponential"]
)
def test_schema_and_runner_check_agree_on_a_job_interval(
    value: object, validator: jsonschema.Draft202012Validator, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    config = job(plugin="sleep", interval=value)
    path.write_text(yaml.safe_dump(config))
    try:
        load_config(path)
        runner_accepts = True
    except ConfigError:
        runner_accepts = False
    assert validator.is_valid(config) == runner_accepts


def test_nullable_durations_have_one_schema_not_a_choice(schema: dict[str, Any]) -> None:
    """`interval: 0s` gets the duration's own message, not "is not of type 'null'"."""
    interval = schema["properties"]["jobs"]["items"]["properties"]["interval"]
    assert interval["type"] == ["number", "string", "null"]
    assert interval["pattern"] == DURATION_JSON_SCHEMA["pattern"]
    assert "anyOf" not in interval


# --------------------------------------------------------------------------- what people see

BROKEN = textwrap.dedent(
    """\
    jobs:
      - name: typo-in-option
        plugin: http-status
        options:
          url: http://127.0.0.1:8002/
          expect_code: [200]
      - name: typo-in-plugin
        plugin: http_status
      - name: words
        plugin: sleep
        interval: 30 seconds
      - name: zero
        plugin: sleep
        interval: 0s
      - name: no-url
        plugin: http-status
        options: {}
      - name: listener
        plugin: echo-listener
        interval: 10s
    notifiers:
      - name: hook
        notifier: webhook
        options: {url: "http://127.0.0.1:9/", timeout: 0s}
    """
)


def test_check_jsonschema_names_the_field_at_fault(schema_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(BROKEN)
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema_file), str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    errors = sorted(
        line.strip().split("::", 1)[1]
        for line in result.stdout.splitlines()
        if line.strip().startswith(str(config))
    )
    installed = ", ".join(repr(name) for name in BUILT_IN)
    assert errors[0] == (
        "$.jobs[0].options: Additional properties are not allowed ('expect_code' was unexpected)"
    )
    assert errors[1] == f"$.jobs[1].plugin: 'http_status' is not one of [{installed}]"
    assert errors[2].startswith("$.jobs[2].interval: '30 seconds' does not match ")
    assert errors[3].startswith("$.jobs[3].interval: '0s' does not match ")
    assert errors[4] == "$.jobs[4].options: 'url' is a required property"
    assert (
        errors[5] == "$.jobs[5]: Additional properties are not allowed ('interval' was unexpected)"
    )
    assert errors[6].startswith("$.notifiers[0].options.timeout: '0s' does not match ")
    assert len(errors) == 7, result.stdout
    # Every problem is reported on its own, not as "not valid under any of the given schemas".
    assert "any of the given schemas" not in result.stdout


def test_yaml_language_server_underlines_each_problem_on_its_line(
    schema_file: Path, tmp_path: Path
) -> None:
    command = require_server()
    modeline = f"# yaml-language-server: $schema={schema_file}\n"
    broken = tmp_path / "broken.yaml"
    broken.write_text(modeline + BROKEN)
    good = tmp_path / "good.yaml"
    good.write_text(modeline + CONFIGS[0].read_text())
    duration = (
        "Expected a duration above zero: 500ms, 10s, 5m, 1h, 1d, 1m30s, or a number of seconds."
    )
    installed = ", ".join(f'"{name}"' for name in BUILT_IN)
    with YamlLanguageServer(command) as server:
        # Lines count from 1 and include the modeline.
        assert server.diagnostics(broken) == [
            (7, "Property expect_code is not allowed."),
            (9, f"Value is not accepted. Valid values: {installed}."),
            (12, duration),
            (15, duration),
            (18, 'Missing property "url".'),
            (21, "Property interval is not allowed."),
            (25, duration),
        ]
        assert server.diagnostics(good) == []
