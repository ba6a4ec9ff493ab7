"""bench/growth.py still runs: its smoke sizes (200 and 400 jobs, 3 s
each) as a subprocess, the JSON it writes checked."""

from __future__ import annotations

import math
from pathlib import Path

from helpers import run_bench


def test_smoke_run_reports_each_doubling(tmp_path: Path) -> None:
    report, _ = run_bench("growth", tmp_path)
    assert report["sizes"] == [200, 400]
    for size in ("200", "400"):
        measures = report["summary"][size]
        for name in ("cpu_per_1000", "cores", "rss_mib", "late_p99_ms", "gap_p99_ms", "runs"):
            value = measures[name]["median"]
            assert math.isfinite(value) and value > 0, (size, name, value)
        assert measures["missing"]["median"] >= 0
        assert measures["runs"]["median"] + measures["missing"]["median"] == int(size) * 3
    assert report["verdict"].startswith("start lateness p99")
