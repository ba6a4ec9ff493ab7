"""bench/echo.py at smoke sizes, so that it cannot rot: every variant runs and
reports finite, positive numbers (the numbers themselves are bench/README.md's)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = [
    "runner asyncio",
    "runner uvloop",
    "bare asyncio",
    "bare uvloop",
    "socat pipe",
    "socat cat",
]


def test_echo_benchmark_smoke(tmp_path: Path) -> None:
    if shutil.which("socat") is None:
        message = "socat not found: run bench/setup (Debian package socat)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "echo.json"
    script = str(ROOT / "bench" / "echo.py")
    result = subprocess.run(
        [sys.executable, script, "--smoke", "--trials", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
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
