"""bench/idle.py at smoke sizes, so that it cannot rot: every variant runs side
by side and reports finite, non-negative CPU (an idle process may use none)."""

from __future__ import annotations

import math
from pathlib import Path

from helpers import run_bench


def test_idle_benchmark_smoke(tmp_path: Path) -> None:
    # HEAD, not the default earlier commit: a shallow clone may not have it.
    data, _ = run_bench("idle", tmp_path, "--before", "HEAD")
    variants = ["runner uvloop", "runner asyncio", "runner at HEAD", "bare asyncio"]
    assert data["variants"] == variants
    for variant in variants:
        for measure in ("cpu_ms", "loop_ms", "other_ms"):
            value = data["summary"][variant][measure]["median"]
            assert math.isfinite(value) and value >= 0, (variant, measure, value)
    assert "| runner uvloop |" in data["table"]
