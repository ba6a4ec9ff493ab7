"""bench/scheduler.py still runs: its smoke size (200 jobs, 3 s, every
variant side by side) as a subprocess, the JSON it writes checked.

APScheduler 3 is a peer the benchmark starts: without it the test is
skipped, except under CI ($CI set), where it fails (scripts/dev.sh setup
installs it with the test extra).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_bench

MEASURES = (
    "cpu_per_1000",
    "late_p50_ms",
    "late_p99_ms",
    "late_max_ms",
    "gap_p99_ms",
    "gap_max_ms",
    "rss_mib",
    "runs",
)


def runner_has_loop_flag() -> bool:
    help_text = subprocess.run(
        [str(Path(sys.executable).with_name("runner")), "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "--loop" in help_text


def test_smoke_run_reports_every_variant(tmp_path: Path) -> None:
    if importlib.util.find_spec("apscheduler") is None:
        if os.environ.get("CI"):
            pytest.fail("APScheduler is not installed: scripts/dev.sh setup installs it")
        pytest.skip("APScheduler is not installed (scripts/dev.sh setup)")
    report, _ = run_bench("scheduler", tmp_path)
    summary = report["sizes"]["200"]["summary"]
    expected = {
        "default",
        "default-history",
        "runner",
        "runner+sqlite",
        "runner+cron",
        "runner+cron+jitter",
        "bare",
        "apscheduler",
    }
    if runner_has_loop_flag():
        expected.add("runner+uvloop")
    assert set(summary) == expected
    for variant, measures in summary.items():
        for name in MEASURES:
            value = measures[name]["median"]
            assert math.isfinite(value) and value > 0, (variant, name, value)
        # 200 jobs x 3 s: 600 slots; a few may be missed on a busy machine, not most.
        assert measures["missing"]["median"] >= 0
        assert measures["runs"]["median"] + measures["missing"]["median"] == 600, variant
        assert measures["runs"]["median"] >= 500, (variant, measures["runs"])
    assert "| apscheduler |" in report["tables"]["200"]
