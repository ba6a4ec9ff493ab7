"""bench/echo.py at smoke sizes, so that it cannot rot: every variant runs and
reports finite, positive numbers (the numbers themselves are bench/README.md's)."""

from __future__ import annotations

import math
from pathlib import Path

from helpers import need_programs, run_bench

VARIANTS = [
    "runner asyncio",
    "runner uvloop",
    "bare asyncio",
    "bare uvloop",
    "socat pipe",
    "socat cat",
]


def test_echo_benchmark_smoke(tmp_path: Path) -> None:
    need_programs({"socat": "socat"})
    data, _ = run_bench("echo", tmp_path)
    assert data["variants"] == VARIANTS
    assert set(data["summary"]) == set(VARIANTS)
    for variant, measures in data["summary"].items():
        for measure in ("mb_s", "cpu_s_per_gb", "round_trips_s", "cpu_ms_per_1k_rt", "rss_mib"):
            value = measures[measure]["median"]
            assert math.isfinite(value) and value > 0, (variant, measure, value)
        assert math.isfinite(measures["rss_growth_mib"]["median"])
    # runner holds memory flat under a client that does not read; the bare
    # server, without flow control, takes in what the client sends.
    assert data["summary"]["runner uvloop"]["rss_growth_mib"]["median"] < 16
    assert "| runner uvloop |" in data["table"]
