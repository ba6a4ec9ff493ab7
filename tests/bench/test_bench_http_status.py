"""bench/http_status.py still runs: a smoke run against real nginx and blackbox_exporter.

Without the peers (Debian's nginx-light, prometheus-blackbox-exporter, openssl) the
test is skipped, except under CI (``$CI`` set), where it fails:
``scripts/dev.sh test`` and ``bench/setup`` install them.
"""

from __future__ import annotations

import math
from pathlib import Path

from helpers import need_programs, run_bench

PEERS = {
    "nginx": "nginx-light",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "openssl": "openssl",  # the https set's certificates
}


def test_smoke_run_reports_every_variant(tmp_path: Path) -> None:
    need_programs(PEERS)
    data, _ = run_bench("http_status", tmp_path)
    assert data["benchmark"] == "http_status"
    results = dict(data["results"])
    run = results.pop("runner_run")
    assert set(run["variants"]) == {
        "runner run",
        "runner run, asyncio loop",
        "runner run, history off",
        "runner check",
        "blackbox",
    }
    for variant, measures in run["net"].items():
        value = measures["cpu_ms_per_check"]["median"]
        assert math.isfinite(value), (variant, value)
    assert set(results) == {"c16", "c1", "https_c16"}
    for size in results.values():
        assert set(size["variants"]) == {"runner", "httpx", "blackbox"}
        for variant, measures in size["variants"].items():
            for measure in ("cpu_ms_per_check", "checks_per_s"):
                value = measures[measure]["median"]
                assert math.isfinite(value) and value > 0, (variant, measure, value)
    assert any("runner run less runner check" in table for table in data["tables"])
    assert any("CPU ms / check vs blackbox" in table for table in data["tables"])
