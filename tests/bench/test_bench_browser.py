"""bench/browser.py still runs: a smoke run of page checks four ways in real Chromium."""

from __future__ import annotations

import math
from pathlib import Path

from helpers import run_bench


def test_smoke_run_reports_every_way(tmp_path: Path) -> None:
    data, done = run_bench("browser", tmp_path, timeout=180)
    assert data["benchmark"] == "browser"
    assert set(data["results"]) == {"launch_c1", "context_c1", "page_c1", "run"}
    for way, measures in data["results"].items():
        assert measures["failed"] == 0, way
        for measure in ("cpu_ms_per_check", "checks_per_s"):
            (value,) = measures[measure]
            assert math.isfinite(value) and value > 0, (way, measure, value)
    assert "| context | 1 |" in done.stdout
    assert "| run | launch x1 |" in done.stdout
