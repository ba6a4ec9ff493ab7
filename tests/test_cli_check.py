"""`runner check` and `runner plugins` as a new user meets them: every problem
of a job at once, "did you mean" for plugin names, counts, help texts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import run_cli

WriteConfig = Callable[[str], Path]
INSTALLED = (
    "installed plugins: browser-steps, dns, echo-listener, file-server, heartbeat, http-status,"
    " page-title, sleep, tcp."
)


def problems(result_stderr: str) -> list[str]:
    """The problem lines of a config error, without the file name."""
    return [line.split(": ", 1)[1] for line in result_stderr.splitlines()[1:]]


def test_every_problem_of_a_service_job_is_reported_in_one_run(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - name: echo
            plugin: echo-listener
            interval: 10s
            timeout: 0s
            options:
              port: 99999
        """
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"error: {config}: 3 problems"
    # A service's check-only key is reported once, as such, even when its
    # value is not valid either (timeout: 0s).
    assert problems(result.stderr) == [
        "jobs[0] 'echo': interval: echo-listener is a service: it runs continuously, "
        "so it takes no interval",
        "jobs[0] 'echo': timeout: echo-listener is a service: it runs continuously, "
        "so it takes no timeout",
        "jobs[0] 'echo': options.port: input should be less than or equal to 65535 (got 99999)",
    ]


def test_every_problem_of_a_check_job_is_reported_in_one_run(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - name: web
            plugin: http-status
            interval: 5x
            notify: [nobody]
            options: {url: 3}
        """
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    lines = problems(result.stderr)
    assert [line.split(": ")[1] for line in lines] == ["interval", "notify[0]", "options.url"]
    assert "unknown notifier 'nobody'" in lines[1]


def test_a_misspelt_plugin_gets_a_suggestion(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - {name: a, plugin: http_status, options: {url: "http://127.0.0.1:9/"}}
          - {name: b, plugin: Sleep}
          - {name: c, plugin: dns-reslove}
        notifiers:
          - {name: n, notifier: webhok, options: {url: "http://127.0.0.1:9/"}}
        """
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    lines = problems(result.stderr)
    assert lines[0] == (
        "jobs[0] 'a': plugin: unknown plugin 'http_status'; did you mean 'http-status'? "
        f"{INSTALLED} A third-party plugin must be installed in the same environment as runner."
    )
    assert "unknown plugin 'Sleep'; did you mean 'sleep'?" in lines[1]
    # Nothing close: no guess, the installed list.
    assert f"unknown plugin 'dns-reslove'; {INSTALLED}" in lines[2]
    assert "unknown notifier 'webhok'; did you mean 'webhook'?" in lines[3]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("http-stauts", "unknown plugin 'http-stauts'; did you mean 'http-status'? "),
        ("webhok", "unknown plugin 'webhok'; did you mean 'webhook'? "),
        ("dns-reslove", "unknown plugin 'dns-reslove'; installed plugins: apprise, "),
    ],
)
def test_plugins_name_suggests_the_closest_installed_one(name: str, expected: str) -> None:
    result = run_cli("plugins", name)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {expected}")


def test_an_empty_jobs_list_says_it_is_empty(write_config: WriteConfig) -> None:
    config = write_config("jobs: []\n")
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert problems(result.stderr) == ["jobs: the list is empty; add at least one job"]


def test_check_counts_in_singular_and_plural(write_config: WriteConfig) -> None:
    one = write_config("jobs:\n  - {name: nap, plugin: sleep}\n")
    result = run_cli("check", str(one))
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"{one}: ok, 1 job (1 check, 0 services)"


@pytest.mark.parametrize("command", ["serve", "check", "run", "status"])
def test_help_explains_the_config_argument_and_log_level(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps at the terminal's width
    assert "config path to the YAML config file" in text
    if command in ("serve", "run"):
        assert "--log-level {debug,info,warning,error} the lowest level logged" in text


def test_a_config_error_reaches_the_journal_at_error_priority(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    """Under systemd stderr is a journal stream ($JOURNAL_STREAM is its
    device:inode); each line of the error then starts with <3>, which the
    journal reads as priority "err". A file stands in for the stream."""
    config = write_config("jobs: []\n")
    stream = tmp_path / "journal-stream"
    with stream.open("w") as stderr:
        st = os.fstat(stderr.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        code = subprocess.run(
            [sys.executable, "-m", "runner", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            timeout=30,
        ).returncode
    assert code == 2
    lines = stream.read_text().splitlines()
    assert lines[0].startswith(f"<3>error: {config}")
    assert all(line.startswith("<3>") for line in lines)
    # On a terminal or a pipe (not the journal's stream) the text stays plain.
    plain = run_cli("serve", str(config))
    assert plain.returncode == 2
    assert plain.stderr.startswith(f"error: {config}")
