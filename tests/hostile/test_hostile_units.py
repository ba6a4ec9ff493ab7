"""The small pieces behind issue 12, each on its own: durations, YAML bounds, JSON-safe
fields, the encodings of a secret, and whole log lines."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest

from runner import yaml_source
from runner.durations import MAX_DURATION, parse_duration
from runner.log import _LineWriter
from runner.safe_json import json_safe
from runner.secret_forms import forms
from runner.secrets import SecretMasker


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (float("inf"), "must be finite"),
        ("1e309", "must be finite"),
        (10**400, "must be finite"),  # past float's range
        (float("nan"), "not a number"),
        ("367d", "maximum of 366 days"),
        (10**30, "maximum of 366 days"),
        ("9" * 400 + "s", "must be finite"),
        (0, "longer than zero"),
    ],
)
def test_absurd_durations_are_refused(value: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_duration(value)


def test_366_days_is_the_longest_duration() -> None:
    assert parse_duration("366d") == MAX_DURATION
    assert parse_duration(MAX_DURATION) == MAX_DURATION


def test_anchors_stay_shared_and_merges_work() -> None:
    node = yaml_source.compose("a: &a {x: 1}\nb: *a\nc: {<<: *a, y: 2}\n")
    assert node is not None
    data = yaml_source.load(node)
    assert data == {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1, "y": 2}}
    assert data["a"] is data["b"]


def test_a_bomb_is_refused_before_it_is_expanded() -> None:
    lines = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    previous = "a"
    for i in range(1, 12):
        lines.append(f"b{i}: &b{i} [{', '.join([f'*{previous}'] * 10)}]")
        previous = f"b{i}"
    with pytest.raises(yaml_source.SourceError) as caught:
        yaml_source.compose("\n".join(lines))
    # b4 (line 5): its eighth *b3 brings the repeated values past 100,000.
    assert (caught.value.line, caught.value.column) == (5, 45)
    assert "aliases may repeat at most 100,000" in caught.value.message


def test_text_errors_have_line_and_column() -> None:
    with pytest.raises(yaml_source.SourceError) as caught:
        yaml_source.decode("a: 1\nb: x\u202ey\n".encode())
    assert (caught.value.line, caught.value.column) == (2, 5)
    with pytest.raises(yaml_source.SourceError) as caught:
        yaml_source.decode(b"a: 1\n\nb: caf\xc3")
    assert (caught.value.line, caught.value.column) == (3, 7)


def test_plain_fields_are_kept_as_they_are_and_odd_ones_are_converted() -> None:
    plain = {"status_code": 200, "url": "http://x/", "ok": True, "ms": 1.5, "none": None}
    assert json_safe(plain) is plain

    class Weird:
        def __str__(self) -> str:
            raise RuntimeError

        def __repr__(self) -> str:
            raise RuntimeError

    safe = json_safe({(1, 2): {3}, "inf": float("inf"), "w": Weird(), "deep": [[[]]]})
    text = json.dumps(safe, allow_nan=False)
    assert json.loads(text)["(1, 2)"] == [3]
    assert safe["inf"] == "inf"
    assert safe["w"].startswith("<") and "Weird" in safe["w"]
    assert json_safe(["not", "a", "mapping"]) == {"fields": "['not', 'a', 'mapping']"}


def test_the_masker_masks_each_encoding() -> None:
    secret = "a'b\"c\\d e%f<g>"
    masker = SecretMasker()
    masker.set([secret])
    for form in forms(secret):
        assert masker.mask(f"x{form}y") == "x***y", form
    assert masker.mask({"k": [repr(secret), json.dumps(secret)]}) == {"k": ["'***'", '"***"']}


def test_log_lines_are_written_whole_from_many_threads() -> None:
    read, write = os.pipe()
    writer = _LineWriter(write)
    lines = [f"{i:04d}" + "x" * 200_000 + "\n" for i in range(8)]
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read, 65536), b"")))
    reader.start()
    threads = [threading.Thread(target=writer.write, args=(line,)) for line in lines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.close(write)
    reader.join()
    os.close(read)
    got: list[Any] = b"".join(chunks).decode().splitlines(keepends=True)
    assert sorted(got) == sorted(lines)
