"""The config contract: valid files load, broken ones name file, line, job and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import run_cli
from runner.cli import main
from runner.config import ConfigError, load_config
from runner.durations import parse_duration
from runner.schedules import Interval

WriteConfig = Callable[..., Path]

# Each case: the YAML, then fragments the error must contain. "{file}" is replaced
# by the config's path, so every case also checks that the file is named.
BROKEN = [
    pytest.param(
        "jobs: [\n  {name: a, plugin: sleep\n", ["{file}:", "invalid YAML"], id="bad-yaml"
    ),
    pytest.param("", ["{file}", "empty"], id="empty-file"),
    pytest.param(
        "- name: a\n  plugin: sleep\n", ["{file}:1:", "expected a mapping"], id="top-level-list"
    ),
    pytest.param("defaults: {interval: 1s}\n", ["{file}:1:", "no 'jobs:' list"], id="no-jobs"),
    pytest.param("jobs: []\n", ["{file}:1:", "jobs", "at least one job"], id="empty-jobs"),
    pytest.param(
        "job:\n  - {name: a, plugin: sleep}\n",
        ["{file}:1:", "job: unknown top-level key", "did you mean 'jobs'"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
          - name: web
            plugin: htp-status
        """,
        [
            "{file}:5:",
            "jobs[1] 'web'",
            "plugin",
            "unknown plugin 'htp-status'",
            "http-status",
            "sleep",
        ],
        id="unknown-plugin",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
            intervall: 5s
        """,
        ["{file}:4:", "jobs[0] 'a'", "intervall", "unknown key", "did you mean 'interval'"],
        id="unknown-job-key",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
            interval: 5x
        """,
        ["{file}:4:", "jobs[0] 'a'", "interval", "'5x' is not a duration"],
        id="bad-duration",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
            timeout: 0s
        """,
        ["{file}:4:", "jobs[0] 'a'", "timeout", "longer than zero"],
        id="zero-duration",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
            interval: yes
        """,
        ["{file}:4:", "jobs[0] 'a'", "interval", "duration"],
        id="bool-duration",
    ),
    pytest.param(
        """
        defaults:
          interval: soon
        jobs:
          - {name: a, plugin: sleep}
        """,
        ["{file}:2:", "defaults", "interval", "not a duration"],
        id="bad-default-duration",
    ),
    pytest.param(
        """
        defaults:
          intervall: 3s
        jobs:
          - {name: a, plugin: sleep}
        """,
        [
            "{file}:2:",
            "defaults",
            "intervall",
            "did you mean 'interval'",
            "allowed: down_when, failure_threshold, interval, jitter, retries, retry_delay, "
            "retry_delay_max, success_threshold, timeout, timezone, up_when",
        ],
        id="unknown-default-key",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
          - name: a
            plugin: sleep
        """,
        ["{file}:4:", "jobs[1] 'a'", "name", "duplicate job name 'a'", "line 2"],
        id="duplicate-name",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
            options:
              seconds: lots
        """,
        ["{file}:5:", "jobs[0] 'a'", "options.seconds", "number"],
        id="wrong-option-type",
    ),
    pytest.param(
        """
        jobs:
          - name: api
            plugin: http-status
            options:
              method: GET
        """,
        ["{file}:4:", "jobs[0] 'api'", "options.url", "required"],
        id="missing-url",
    ),
    pytest.param(
        """
        jobs:
          - name: api
            plugin: http-status
            options:
              url: not a url
        """,
        ["{file}:5:", "jobs[0] 'api'", "options.url", "not a valid URL"],
        id="bad-url",
    ),
    pytest.param(
        """
        jobs:
          - name: api
            plugin: http-status
            options:
              url: http://127.0.0.1/
              expected_status: [200]
        """,
        ["{file}:6:", "jobs[0] 'api'", "options.expected_status", "did you mean 'expect_status'"],
        id="unknown-option",
    ),
    pytest.param(
        """
        jobs:
          - name: api
            plugin: http-status
            options:
              url: http://127.0.0.1/
              method: FETCH
        """,
        ["{file}:6:", "jobs[0] 'api'", "options.method"],
        id="bad-method",
    ),
    pytest.param(
        """
        jobs:
          - plugin: sleep
        """,
        ["{file}:2:", "jobs[0]", "name", "required"],
        id="missing-name",
    ),
    pytest.param(
        """
        jobs:
          - name: a
        """,
        ["{file}:2:", "jobs[0] 'a'", "plugin", "required"],
        id="missing-plugin",
    ),
    pytest.param(
        """
        jobs:
          - just a string
        """,
        ["{file}:2:", "jobs[0]", "expected a mapping"],
        id="job-not-a-mapping",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
            options: [1, 2]
        """,
        ["{file}:4:", "jobs[0] 'a'", "options", "mapping"],
        id="options-not-a-mapping",
    ),
    pytest.param(
        """
        jobs:
          - name: api
            plugin: http-status
            options:
              url: http://127.0.0.1/
              headers: {Authorization: "Bearer ${RUNNER_TEST_UNSET_TOKEN}"}
        """,
        [
            "{file}:6:",
            "jobs[0] 'api'",
            "options.headers.Authorization",
            "RUNNER_TEST_UNSET_TOKEN is not set",
        ],
        id="unset-env-var",
    ),
    pytest.param(
        """
        jobs:
          - name: a
            plugin: sleep
            interval: 1s
            interval: 2s
        """,
        ["{file}:5:", "jobs[0] 'a'", "interval", "duplicate key"],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        """
        jobs:
          - name: echo
            plugin: echo-listener
            interval: 10s
        """,
        ["{file}:4:", "jobs[0] 'echo'", "interval", "is a service"],
        id="service-with-interval",
    ),
    pytest.param(
        """
        jobs:
          - name: echo
            plugin: echo-listener
            options: {port: 70000}
        """,
        ["{file}:4:", "jobs[0] 'echo'", "options.port", "65535"],
        id="port-out-of-range",
    ),
    pytest.param(
        """
        jobs:
          - name: title
            plugin: page-title
            options:
              url: http://127.0.0.1/
              expect_title: a
              expect_title_regex: b
        """,
        ["{file}:", "jobs[0] 'title'", "options", "expect_title"],
        id="title-and-regex",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), BROKEN)
def test_broken_config_exits_2_and_names_the_problem(
    text: str, fragments: list[str], write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment.replace("{file}", str(path)) in err, err


def test_the_table_has_at_least_20_cases() -> None:
    assert len(BROKEN) >= 20


def test_every_problem_is_listed(write_config: WriteConfig) -> None:
    path = write_config(
        """
        defaults:
          interval: 0
        jobs:
          - name: a
            plugin: nope
          - name: b
            plugin: sleep
            options: {seconds: -1}
          - name: b
            plugin: sleep
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = [p.format(str(path)) for p in info.value.problems]
    assert len(lines) == 4, lines
    assert [p.line for p in info.value.problems] == [2, 5, 8, 9]
    assert "4 problems" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: cannot read: No such file or directory" in capsys.readouterr().err


def test_broken_plugin_in_config_names_distribution_and_reason(
    testplugins: Path, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        """
        jobs:
          - {name: ok, plugin: sleep}
          - {name: bad, plugin: broken-import}
          - {name: gone, plugin: missing-module}
        """
    )
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: jobs[1] 'bad': plugin:" in err
    assert "runner-testplugins 0.0.1" in err
    assert "RuntimeError: this module is broken on purpose" in err
    assert f"{path}:4: jobs[2] 'gone': plugin:" in err
    assert "module 'runner_testplugins_not_installed' is not installed" in err


def test_valid_config_resolves_defaults_and_plugins(write_config: WriteConfig) -> None:
    path = write_config(
        """
        defaults:
          interval: 2m
          timeout: 3s
        jobs:
          - name: web
            plugin: http-status
            interval: 1m30s
            options: {url: "http://127.0.0.1:8080/health"}
          - name: nap
            plugin: sleep
            options: {seconds: 0.5}
          - name: echo
            plugin: echo-listener
        """
    )
    config = load_config(path)
    web, nap, echo = config.jobs
    assert (web.schedule, web.timeout, web.line) == (Interval(90.0), 3.0, 5)
    assert (nap.schedule, nap.timeout) == (Interval(120.0), 3.0)
    assert echo.is_service and echo.schedule is None
    assert [j.name for j in config.checks] == ["web", "nap"]
    assert web.plugin.__name__ == "HttpStatus"


def test_env_vars_are_expanded_and_never_echoed(write_config: WriteConfig) -> None:
    path = write_config(
        """
        jobs:
          - name: api
            plugin: http-status
            options:
              url: "http://127.0.0.1:${RUNNER_TEST_PORT:-8080}/"
              headers: {Authorization: "Bearer ${RUNNER_TEST_TOKEN}", X-Literal: "$${NOT_EXPANDED}"}
        """
    )
    config = load_config(path, environ={"RUNNER_TEST_TOKEN": "s3cret-value"})
    options = config.jobs[0].options
    assert str(options.url) == "http://127.0.0.1:8080/"  # type: ignore[attr-defined]
    assert options.headers == {  # type: ignore[attr-defined]
        "Authorization": "Bearer s3cret-value",
        "X-Literal": "${NOT_EXPANDED}",
    }
    assert "s3cret-value" in config.secrets


def test_a_secret_in_a_bad_value_is_not_echoed(write_config: WriteConfig) -> None:
    path = write_config(
        """
        jobs:
          - name: echo
            plugin: echo-listener
            options: {port: "${RUNNER_TEST_PORT}"}
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"RUNNER_TEST_PORT": "hunter2-not-a-port"})
    assert "options.port" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("5m", 300), ("1h", 3600), ("1m30s", 90), (7, 7), ("2.5", 2.5)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_check_command_as_a_subprocess(write_config: WriteConfig) -> None:
    good = write_config("jobs:\n  - {name: a, plugin: sleep}\n")
    bad = write_config("jobs:\n  - {name: a, plugin: sleep, interval: never}\n")
    ok = run_cli("check", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "ok, 1 job (1 check, 0 services)" in ok.stdout
    failed = run_cli("check", str(bad))
    assert failed.returncode == 2
    assert f"{bad}:2: jobs[0] 'a': interval: 'never' is not a duration" in failed.stderr


def test_shipped_configs_are_valid() -> None:
    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs, "configs/ has no YAML files"
    for path in configs:
        assert main(["check", str(path)]) == 0, path
