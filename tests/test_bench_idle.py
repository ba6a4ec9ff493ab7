"""bench/idle.py at smoke sizes, so that it cannot rot: every variant runs side
by side and reports finite, non-negative CPU (an idle process may use none)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_idle_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "idle.json"
    script = str(ROOT / "bench" / "idle.py")
    result = subprocess.run(
        # HEAD, not the default earlier commit: a shallow clone may not have it.
        [
            sys.executable,
            script,
            "--smoke",
            "--trials",
            "1",
            "--before",
            "HEAD",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    variants = ["runner uvloop", "runner asyncio", "runner at HEAD", "bare asyncio"]
    assert data["variants"] == variants
    for variant in variants:
        for measure in ("cpu_ms", "loop_ms", "other_ms"):
            value = data["summary"][variant][measure]["median"]
            assert math.isfinite(value) and value >= 0, (variant, measure, value)
    assert "| runner uvloop |" in data["table"]
