"""bench/browser.py still runs: a smoke run of page checks three ways in real Chromium."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "browser.py"


def test_smoke_run_reports_every_way(tmp_path: Path) -> None:
    out = tmp_path / "browser.json"

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--trials", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )

    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "browser"
    assert set(data["results"]) == {"launch_c1", "context_c1", "page_c1"}
    for way, measures in data["results"].items():
        assert measures["failed"] == 0, way
        for measure in ("cpu_ms_per_check", "checks_per_s"):
            (value,) = measures[measure]
            assert math.isfinite(value) and value > 0, (way, measure, value)
    assert "| context | 1 |" in done.stdout
