"""Every regular expression a built-in takes as an option is checked when the
config is loaded, by one helper (builtins/_regex.py): a bad pattern is a
config error naming file, line, job and field, in the same words everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helpers import run_cli

WriteConfig = Callable[[str], Path]

#: (job, the option's path in the error, the job's line in YAML flow style).
BAD_PATTERNS = [
    ("tcp", "options.expect", '{plugin: tcp, options: {host: localhost, port: 1, expect: "("}}'),
    ("dns", "options.expect_regex", '{plugin: dns, options: {name: a.example, expect_regex: "("}}'),
    (
        "body",
        "options.expect_body.regex",
        '{plugin: http-status, options: {url: "http://a.example/", expect_body: {regex: "("}}}',
    ),
    (
        "json",
        "options.expect_json[0].regex",
        '{plugin: http-status, options: {url: "http://a.example/", '
        'expect_json: [{path: a, regex: "("}]}}',
    ),
    (
        "headers",
        "options.expect_headers",
        '{plugin: http-status, options: {url: "http://a.example/", expect_headers: {server: "("}}}',
    ),
    (
        "title",
        "options.expect_title_regex",
        '{plugin: page-title, options: {url: "http://a.example/", expect_title_regex: "("}}',
    ),
    (
        "text",
        "options.steps[1].expect_text.regex",
        '{plugin: browser-steps, options: {steps: [{goto: "http://a.example/"}, '
        '{expect_text: {selector: h1, regex: "("}}]}}',
    ),
    (
        "address",
        "options.steps[1].expect_url.regex",
        '{plugin: browser-steps, options: {steps: [{goto: "http://a.example/"}, '
        '{expect_url: {regex: "("}}]}}',
    ),
]


def test_each_regex_option_is_checked_when_the_config_loads(write_config: WriteConfig) -> None:
    jobs = "".join(
        f"  - {{name: {name}, interval: 1m, {job[1:]}\n" for name, _, job in BAD_PATTERNS
    )
    config = write_config("jobs:\n" + jobs)
    result = run_cli("check", str(config))
    assert result.returncode == 2
    said = result.stdout + result.stderr
    assert f"{len(BAD_PATTERNS)} problems" in said
    lines = said.splitlines()
    for number, (name, field, _) in enumerate(BAD_PATTERNS, start=2):
        where = f"{config}:{number}: jobs[{number - 2}] {name!r}: {field}"
        (line,) = [line for line in lines if line.startswith(where)]
        assert line.endswith(
            "'(' is not a valid regular expression: missing ), unterminated subpattern "
            "at position 0"
        ), line
