"""Writes the hostile-config corpus next to this file, with expected.json.

Each case is a config that someone might write at 3 a.m. or an attacker
might plant: bad bytes, alias bombs, deep nesting, absurd numbers, broken
structure. expected.json says, for each file, what ``runner check`` must
answer: the exit code, the place (``LINE`` or ``LINE:COLUMN``, as printed
after the file name) and a piece of the message. tests/hostile/test_hostile_configs.py
runs every one as a subprocess with a deadline.

Run ``python tests/hostile/data/generate.py`` after changing a case; review
the diff of the files and of expected.json.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
JOB = "jobs:\n  - name: web\n    plugin: sleep\n"
CASES: list[tuple[str, bytes, int, str | None, str]] = []


def case(name: str, content: str | bytes, exit: int, place: str | None, says: str) -> None:
    data = content.encode() if isinstance(content, str) else content
    CASES.append((name, data, exit, place, says))


def job_with(line: str) -> str:
    """The JOB with one more line (line 4)."""
    return JOB + line + "\n"


# --------------------------------------------------------------------------- bytes and text

case("latin1-in-name", b"jobs:\n  - name: caf\xe9\n    plugin: sleep\n", 2, "2:14", "byte 0xe9")
case("latin1-in-comment", b"# r\xe9sum\xe9\n" + JOB.encode(), 2, "1:4", "not UTF-8")
case("cp1252-quotes", b"jobs:\n  - name: \x93web\x94\n    plugin: sleep\n", 2, "2:11", "0x93")
case("utf16-le-bom", "\ufeff".encode("utf-16-le") + JOB.encode("utf-16-le"), 2, "1:1", "UTF-16")
case("utf16-be-bom", b"\xfe\xff" + JOB.encode("utf-16-be"), 2, "1:1", "UTF-16")
case("truncated-utf8", JOB.encode() + b"# euro \xe2\x82", 2, "4:8", "not UTF-8")
case("overlong-utf8", b"jobs:\n  - name: a\xc0\xafb\n    plugin: sleep\n", 2, "2:12", "0xc0")
case("encoded-surrogate", b"jobs:\n  - name: a\xed\xa0\x80\n    plugin: sleep\n", 2, "2:12", "0xed")
case("nul-in-value", b"jobs:\n  - name: a\x00b\n    plugin: sleep\n", 2, "2:12", "NUL")
case("nul-first", b"\x00" + JOB.encode(), 2, "1:1", "NUL")
case("nul-in-comment", JOB.encode() + b"# \x00\n", 2, "4:3", "NUL")
case("escape-char", b"jobs:\n  - name: a\x1b[31mred\n    plugin: sleep\n", 2, "2:12", "U+001B")
case("bell-char", b"jobs:\n  - name: ding\x07\n    plugin: sleep\n", 2, "2:15", "U+0007")
case(
    "backspace-char",
    b"jobs:\n  - name: web\x08\x08\x08api\n    plugin: sleep\n",
    2,
    "2:14",
    "U+0008",
)
case("vertical-tab", b"jobs:\n  - name: web\n\x0b    plugin: sleep\n", 2, "3:1", "U+000B")
case("form-feed", b"jobs:\n\x0c  - name: web\n    plugin: sleep\n", 2, "2:1", "U+000C")
case("del-char", b"jobs:\n  - name: web\x7f\n    plugin: sleep\n", 2, "2:14", "U+007F")
case("c1-control", "jobs:\n  - name: web\x80\n    plugin: sleep\n".encode(), 2, "2:14", "U+0080")
case(
    "bidi-override-in-name",
    "jobs:\n  - name: \u202egnp.exe\n    plugin: sleep\n",
    2,
    "2:11",
    "bidirectional",
)
case(
    "bidi-isolate-in-comment",
    JOB + "    # \u2066 admin \u2069\n",
    2,
    "4:7",
    "bidirectional",
)
case("utf8-bom-is-fine", "\ufeff" + JOB, 0, None, "ok, 1 job ")
case("crlf-is-fine", JOB.replace("\n", "\r\n"), 0, None, "ok, 1 job ")
case("no-break-space-is-fine", JOB.replace("web", "web\u00a0page"), 0, None, "ok, 1 job ")

# --------------------------------------------------------------------------- aliases


def laughs(levels: int, width: int, mapping: bool = False) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for i in range(1, levels):
        name = f"l{i}"
        if mapping:
            items = ", ".join(f"k{j}: *{previous}" for j in range(width))
            lines.append(f"{name}: &{name} {{{items}}}")
        else:
            lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * width)}]")
        previous = name
    return "\n".join(lines) + "\n" + JOB


# 9 levels of 9: 9**9 lols. Refused at the alias that crosses 100,000 repeated values.
case("billion-laughs", laughs(9, 9), 2, "6:10", "billion laughs")
case("billion-laughs-mappings", laughs(9, 9, mapping=True), 2, "6:14", "billion laughs")
case("billion-laughs-in-options", laughs(9, 9).replace("l8: &l8", "x: &x"), 2, "6:10", "alias *l4")
case(
    "wide-alias",
    "big: &big ["
    + ", ".join(str(i) for i in range(1000))
    + "]\n"
    + "copies: ["
    + ", ".join(["*big"] * 200)
    + "]\n"
    + JOB,
    2,
    "2:604",
    "aliases may repeat at most 100,000",
)
case(
    "merge-key-bomb",
    "a: &a {x1: 1, x2: 2, x3: 3, x4: 4, x5: 5, x6: 6, x7: 7, x8: 8, x9: 9, x10: 10}\n"
    + "".join(
        f"b{i}: &b{i} {{"
        + ", ".join(f"k{j}: *{'a' if i == 0 else f'b{i - 1}'}" for j in range(10))
        + "}\n"
        for i in range(6)
    )
    + JOB,
    2,
    "5:41",
    "alias *b2 repeats 22,221 values",
)
case("alias-in-own-list", "a: &a [1, *a]\n" + JOB, 2, "1:11", "refers to the collection it is in")
case("alias-in-own-mapping", "a: &a {b: {c: *a}}\n" + JOB, 2, "1:15", "refers to the collection")
case("undefined-alias", JOB + "    options: *nothing\n", 2, "4:14", "not defined")
case("undefined-merge", JOB + "    <<: *nothing\n", 2, "4:9", "not defined")
case(
    "anchors-and-merges-are-fine",
    "defaults: &d {interval: 5s, timeout: 2s}\n"
    "common: &opts {seconds: 0}\n"
    "jobs:\n"
    "  - {name: a, plugin: sleep, options: *opts}\n"
    "  - {name: b, plugin: sleep, options: *opts}\n",
    2,
    "2",
    "common: unknown top-level key",
)
case(
    "redefined-anchor-is-fine",
    "jobs:\n"
    "  - &j {name: a, plugin: sleep}\n"
    "  - &j {name: b, plugin: sleep}\n"
    "  - {name: c, plugin: sleep, options: {seconds: 0}}\n",
    0,
    None,
    "ok, 3 jobs",
)

# --------------------------------------------------------------------------- nesting


def flow(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


case("nesting-65-lists", "deep: " + flow(64) + "\n" + JOB, 2, "1:70", "deeper than 64 levels")
case(
    "nesting-600-lists", JOB + "    options: {x: " + flow(600) + "}\n", 2, "4:78", "deeper than 64"
)
case(
    "nesting-600-mappings",
    "deep: " + "{a: " * 600 + "1" + "}" * 600 + "\n" + JOB,
    2,
    "1:259",
    "deeper than 64",
)
case(
    "nesting-2000-lists",
    "deep: " + flow(2000) + "\n" + JOB,
    2,
    "1:1006",  # libyaml's own limit (1,000 open brackets) is met while scanning ahead
    "deeper than 64",
)
case(
    "nesting-block-mappings",
    "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n",
    2,
    "65:129",
    "deeper than 64",
)
case(
    "nesting-block-lists",
    "".join("  " * i + "-\n" for i in range(200)) + "  " * 200 + "1\n",
    2,
    "65:129",
    "deeper than 64",
)
case(
    "nesting-64-is-allowed",
    "deep: " + flow(63) + "\n" + JOB,
    2,
    "1",
    "unknown top-level key",
)
case(
    "alias-nests-too-deep",
    "a: &a " + flow(40) + "\n" + "b: " + "[" * 30 + "*a" + "]" * 30 + "\n" + JOB,
    2,
    "2:34",
    "alias *a nests collections deeper than 64",
)

# --------------------------------------------------------------------------- numbers

case("interval-1e309", job_with("    interval: 1e309"), 2, "4", "interval: must be finite")
case("interval-inf", job_with("    interval: .inf"), 2, "4", "interval: must be finite")
case("interval-nan", job_with("    interval: .nan"), 2, "4", "interval: not a number")
case("timeout-minus-inf", job_with("    timeout: -.inf"), 2, "4", "must be longer than zero")
case(
    "timeout-1e30-seconds",
    job_with("    timeout: " + "1" + "0" * 30),
    2,
    "4",
    "maximum of 366 days",
)
case("interval-367d", job_with("    interval: 367d"), 2, "4", "maximum of 366 days")
case("interval-zero", job_with("    interval: 0"), 2, "4", "must be longer than zero")
case(
    "defaults-huge-days",
    "defaults: {timeout: 99999999999999999999d}\n" + JOB,
    2,
    "1",
    "defaults: timeout: longer than the maximum",
)
case("retry-delay-max-inf", job_with("    retry_delay_max: .inf"), 2, "4", "must be finite")
case("retry-delay-inf", job_with("    retry_delay: .inf"), 2, "4", "must be finite")
case("history-keep-inf", "history: {keep: .inf}\n" + JOB, 2, "1", "history: keep: must be finite")
case("history-flush-1e400", "history: {flush_every: 1e400}\n" + JOB, 2, "1", "must be finite")
case(
    "history-keep-runs-huge",
    "history: {keep_runs: " + "9" * 30 + "}\n" + JOB,
    2,
    "1",
    "keep_runs",
)
case(
    "notifier-repeat-inf",
    "notifiers:\n  - {name: ops, notifier: log, repeat_every: .inf}\n" + JOB,
    2,
    "2",
    "repeat_every: must be finite",
)
case(
    "webhook-timeout-inf",
    "notifiers:\n  - name: hook\n    notifier: webhook\n"
    "    options: {url: 'http://127.0.0.1:9/', timeout: .inf}\n" + JOB,
    2,
    "4",
    "options.timeout: must be finite",
)
case("sleep-seconds-inf", job_with("    options: {seconds: .inf}"), 2, "4", "options.seconds")
case("sleep-seconds-1e30", job_with("    options: {seconds: 1e+30}"), 2, "4", "options.seconds")
case(
    "echo-idle-timeout-1e30",
    "jobs:\n  - name: echo\n    plugin: echo-listener\n    options: {idle_timeout: 1.0e+30}\n",
    2,
    "4",
    "options.idle_timeout",
)
case("retries-inf", job_with("    retries: .inf"), 2, "4", "retries")
case("int-5000-digits", job_with("    retries: 1" + "0" * 5000), 2, "4:14", "invalid int")
case("month-13", job_with("    interval: 2001-13-45"), 2, "4:15", "invalid timestamp")

# --------------------------------------------------------------------------- structure

case("two-documents", JOB + "---\n" + JOB, 2, "4:1", "one YAML document")
case(
    "python-tag",
    job_with("    options: !!python/object/apply:os.system ['id']"),
    2,
    "4:14",
    "could not determine a constructor",
)
case(
    "unknown-tag", job_with("    options: !secret {seconds: 1}"), 2, "4:14", "for the tag '!secret'"
)
case(
    "binary-as-number",
    job_with("    options: {seconds: !!binary '@@@'}"),
    2,
    "4",
    "options.seconds",
)
case("empty-file", "", 2, None, "the file is empty")
case("only-comments", "# nothing here\n# at all\n", 2, None, "the file is empty")
case("top-level-list", "- name: web\n  plugin: sleep\n", 2, "1", "expected a mapping")
case("tab-indent", "jobs:\n\t- name: web\n", 2, "2:1", "invalid YAML")
case("unclosed-quote", "jobs:\n  - name: 'web\n    plugin: sleep\n", 2, "4:1", "invalid YAML")
case("unhashable-key", "jobs:\n  - ? [a, b]\n    : 1\n", 2, "2:7", "unhashable")
case("duplicate-keys", JOB + "    plugin: http-status\n", 2, "4", "duplicate key")
case("jobs-is-a-string", "jobs: everything\n", 2, "1", "expected a list")
case("scalar-document", "just a string\n", 2, "1", "expected a mapping")


def main() -> None:
    expected = {}
    for old in HERE.glob("*.yaml"):
        old.unlink()
    for name, data, exit, place, says in CASES:
        (HERE / f"{name}.yaml").write_bytes(data)
        expected[f"{name}.yaml"] = {"exit": exit, "place": place, "says": says}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
