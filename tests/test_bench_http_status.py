"""bench/http_status.py still runs: a smoke run against real nginx and blackbox_exporter.

Without the peers (Debian's nginx-light, prometheus-blackbox-exporter, openssl) the
test is skipped, except under CI (``$CI`` set), where it fails:
``scripts/dev.sh test`` and ``bench/setup`` install them.
"""

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
SCRIPT = ROOT / "bench" / "http_status.py"
PEERS = {
    "nginx": "nginx-light",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "openssl": "openssl",  # the https set's certificates
}


def _need_peers() -> None:
    missing = [
        package
        for program, package in PEERS.items()
        if shutil.which(program) is None
        and shutil.which(program, path="/usr/sbin:/usr/bin") is None
    ]
    if missing:
        hint = f"benchmark peers not installed: {', '.join(missing)} (run bench/setup)"
        if os.environ.get("CI"):
            pytest.fail(hint, pytrace=False)
        pytest.skip(hint)


def test_smoke_run_reports_every_variant(tmp_path: Path) -> None:
    _need_peers()
    out = tmp_path / "http_status.json"

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--trials", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )

    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "http_status"
    assert set(data["results"]) == {"c16", "c1", "https_c16"}
    for size in data["results"].values():
        assert set(size["variants"]) == {"runner", "httpx", "blackbox"}
        for variant, measures in size["variants"].items():
            for measure in ("cpu_ms_per_check", "checks_per_s"):
                value = measures[measure]["median"]
                assert math.isfinite(value) and value > 0, (variant, measure, value)
    assert "CPU ms / check vs blackbox" in data["tables"][0]
