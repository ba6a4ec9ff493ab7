"""bench/footprint.py still runs (at tiny sizes), and `runner serve` of a config
without HTTP, browser, history or notifiers imports none of what only those need."""

from __future__ import annotations

import math
import socket
from pathlib import Path

from helpers import RunnerProcess, closed_port, run_bench

SPAWN = ("ready_ms", "echo_ms", "echo_cpu_ms", "echo_wait_ms")


def test_footprint_smoke(tmp_path: Path) -> None:
    data, done = run_bench("footprint", tmp_path)
    assert "not finite" not in done.stderr

    spawn = data["spawn"]
    assert set(spawn) == {"bare asyncio", "runner", "runner (history on)"}
    for variant, measures in spawn.items():
        expected = {*SPAWN, "import_ms"} if variant != "runner (history on)" else set(SPAWN)
        assert set(measures) == expected, variant
        for name, stats in measures.items():
            assert all(math.isfinite(v) for v in stats.values()), (variant, name)
            # A quiet machine makes no process wait for a CPU.
            assert stats["median"] >= 0 if name == "echo_wait_ms" else stats["median"] > 0

    layers = data["layers"]
    assert len(layers) == 7 and "+ pydantic" in layers
    assert all(m["cpu_ms"]["median"] > 0 for m in layers.values())

    for what in ("import runner.cli", "runner serve"):
        profile = data["imports"][what]
        assert profile["modules"] > 100 and profile["total_self_ms"] > 0, what
        assert len(profile["top_cumulative"]) == 10, what
        assert all(r["cumulative_ms"] > 0 for r in profile["top_cumulative"]), what
        assert profile["heavy_imported"]["httpx"] is False, what

    idle = data["idle"]
    assert set(idle) == {"bare asyncio", "runner", "runner (history on)"}
    for variant, measures in idle.items():
        assert set(measures) == {"idle_cpu_s", "idle_cpu_s_per_60s", "idle_rss_mib"}, variant
        assert all(math.isfinite(s["median"]) and s["median"] >= 0 for s in measures.values())
        assert measures["idle_rss_mib"]["median"] > 5, variant

    assert any(t.startswith("### start-up") for t in data["tables"])


def imported_modules(importtime: str) -> set[str]:
    """Module names from ``-X importtime`` lines (attempts that failed included)."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_serve_of_an_echo_config_imports_no_http_browser_metrics_or_history(
    tmp_path: Path,
) -> None:
    port = closed_port()
    config = tmp_path / "echo.yaml"
    config.write_text(
        "history:\n  enabled: false\n"
        "jobs:\n"
        f"  - name: echo\n    plugin: echo-listener\n    options: {{port: {port}}}\n"
        "  - name: nap\n    plugin: sleep\n    interval: 1h\n"
    )
    # The daemon as people run it, with Python's import log on its stderr.
    runner = RunnerProcess("serve", str(config), env={"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        runner.wait_for(event="daemon.started")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"still echoing\n")
            assert conn.recv(64) == b"still echoing\n"
        assert runner.stop() == 0
    finally:
        runner.kill()

    modules = imported_modules(runner.stderr)
    # The registry loads plugin modules with importlib.import_module, which
    # -X importtime does not log; the import statements inside them it does.
    assert {"runner.cli", "runner.config", "runner.builtins.services._listen"} <= modules
    unused = {
        "httpx": "http-status",
        "httpcore": "http-status",
        "aiohttp": "the http: endpoint",
        "runner.web": "the http: endpoint",
        "prometheus_client": "the http: endpoint's /metrics",
        "playwright": "page-title and browser-steps",
        "dns": "the dns check (dnspython)",
        "jmespath": "http-status expect_json",
        "jsonschema": "nothing in the daemon",
        "apprise": "the apprise notifier",
        "runner.alerts": "notifiers",
        "asyncpg": "history in PostgreSQL",
        "sqlite3": "history (off in this config)",
        "runner.history": "history (off in this config)",
        "runner.schema": "runner schema",
        "runner.report": "the tables of status, history and run",
        # structlog tries `import rich` (hidden from it: runner._compat);
        # a real import of rich would bring these.
        "rich.console": "the tables of status, history and run",
        "rich.pretty": "the tables of status, history and run",
    }
    loaded = {name: why for name, why in unused.items() if name in modules}
    assert not loaded, f"runner serve of {config.name} imported modules only needed by: {loaded}"
