"""Hostile configs: `runner check` answers each with exit 2 and a place, never a
traceback (issue 12, section 1).

The corpus is tests/hostile/data/ (written by its generate.py); expected.json
gives each file's exit code, place (LINE or LINE:COLUMN after the file name)
and a piece of the message. Each file is checked by a real `runner check`
subprocess with a deadline, several at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "data"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())
#: A hang guard, not a benchmark: answers take well under 2 s on an idle machine
#: (bench/README.md); this one is shared.
DEADLINE = 20.0


def check(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "runner", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def answers() -> dict[str, tuple[subprocess.CompletedProcess[str], float]]:
    names = sorted(EXPECTED)
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(names, pool.map(lambda n: check(CORPUS / n), names), strict=True))


def test_the_corpus_is_large_and_complete() -> None:
    assert len(EXPECTED) >= 60
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_config(
    name: str, answers: dict[str, tuple[subprocess.CompletedProcess[str], float]]
) -> None:
    expected = EXPECTED[name]
    result, _ = answers[name]
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.returncode == expected["exit"], output
    assert expected["says"] in output, output
    if expected["exit"] == 2:
        first = result.stderr.splitlines()[0]
        assert first.startswith(f"error: {CORPUS / name}: "), first
        if expected["place"] is not None:
            assert f"{CORPUS / name}:{expected['place']}: " in result.stderr, result.stderr


def test_a_file_past_8_mib_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as f:
        f.write("jobs:\n  - name: web\n    plugin: sleep\n# ")
        f.write("x" * (8 * 1024 * 1024))
    result, _ = check(path)
    assert result.returncode == 2
    assert "larger than 8 MiB" in result.stderr


def test_a_dense_file_is_refused_at_500000_values(tmp_path: Path) -> None:
    path = tmp_path / "dense.yaml"
    path.write_text("x: [" + "1," * 600_000 + "1]\n")
    result, _ = check(path)
    assert result.returncode == 2
    assert f"{path}:1:" in result.stderr
    assert "more than 500,000 values" in result.stderr


def test_a_long_value_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(f"jobs:\n  - name: {'w' * 1_000_000}\n    plugin: sleep\n")
    result, _ = check(path)
    assert result.returncode == 0, result.stderr
