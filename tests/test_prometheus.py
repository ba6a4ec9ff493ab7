"""/metrics as a real Prometheus server reads it: Debian's ``prometheus``,
started here on 127.0.0.1 with a config and storage of its own in a temp
dir, scrapes a real daemon every second; the test asserts on the series it
stored (through its HTTP API) and runs ``promtool check metrics`` on the
text format.

Without the binaries the tests are skipped, except under CI (``$CI`` set),
where they fail: ``scripts/dev.sh test`` installs them (as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import RunnerProcess, closed_port, wait_until

WriteConfig = Callable[..., Path]

INSTALL_HINT = (
    "Prometheus not found (prometheus and promtool); install it with "
    "`apt-get install prometheus` (scripts/dev.sh test does it as root)"
)
#: How long Prometheus may take to start, and to have scraped what a test wants.
START_TIMEOUT = 30.0
SCRAPE_TIMEOUT = 30.0


def binaries() -> tuple[str, str]:
    found = [shutil.which(name) for name in ("prometheus", "promtool")]
    if None in found:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT, pytrace=False)
        pytest.skip(INSTALL_HINT)
    prometheus, promtool = found
    assert prometheus is not None and promtool is not None
    return prometheus, promtool


def local_client() -> httpx.Client:
    # 127.0.0.1 only: no proxy from the environment.
    return httpx.Client(trust_env=False, timeout=10)


class Prometheus:
    """One ``prometheus`` process scraping ``target`` every second."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1m}\n"
            "scrape_configs:\n"
            "  - job_name: runner\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.client = local_client()
        self.logfile = workdir / "prometheus.log"

    def api(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"{self.url}/api/v1/{path}", params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.logfile.read_text()}")
        try:
            return self.client.get(f"{self.url}/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def target(self) -> dict[str, Any]:
        (target,) = self.api("targets")["activeTargets"]
        return dict(target)

    def query(self, expr: str) -> dict[str, float]:
        """An instant query: each series' value by its ``name`` label."""
        result = self.api("query", query=expr)["result"]
        return {r["metric"].get("name", ""): float(r["value"][1]) for r in result}

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_binaries() -> tuple[str, str]:
    return binaries()


@pytest.fixture
def daemon(write_config: WriteConfig) -> Iterator[RunnerProcess]:
    config = write_config(
        f"""
        http: {{listen: "127.0.0.1:0"}}
        history: {{flush_every: 100ms}}
        notifiers:
          - {{name: journal, notifier: log}}
        jobs:
          - {{name: nap, plugin: sleep, interval: 500ms, options: {{seconds: 0}}}}
          - name: closed
            plugin: tcp
            interval: 500ms
            failure_threshold: 1
            notify: [journal]
            options: {{host: 127.0.0.1, port: {closed_port()}}}
          - {{name: echo, plugin: echo-listener}}
        """
    )
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="daemon.started")
        yield runner


def test_prometheus_scrapes_openmetrics_and_stores_the_timestamps(
    prometheus_binaries: tuple[str, str], daemon: RunnerProcess, tmp_path: Path
) -> None:
    binary, promtool = prometheus_binaries
    (started,) = daemon.find(event="http.started")
    target = f"127.0.0.1:{started['port']}"
    began = time.time()
    prometheus = Prometheus(binary, tmp_path, target)
    try:
        wait_until(prometheus.ready, START_TIMEOUT, "Prometheus to be ready")

        def stored() -> bool:
            # Scraped twice, and since each check ran, the alert went, a result was stored.
            scrapes = prometheus.query('count_over_time(runner_up{job="runner"}[1m])')
            return (
                scrapes.get("", 0) >= 2
                and len(prometheus.query("runner_job_last_run_timestamp_seconds")) == 2
                and prometheus.query("runner_notifier_sent_total > 0") != {}
                and prometheus.query("runner_history_written_total > 0") != {}
            )

        wait_until(stored, SCRAPE_TIMEOUT, "Prometheus to store the series", interval=0.2)
        target_state = prometheus.target()
        assert target_state["health"] == "up", target_state
        assert target_state["lastError"] == ""
        now = time.time()

        # Every check's last run and state, as Unix seconds.
        last_run = prometheus.query("runner_job_last_run_timestamp_seconds")
        assert set(last_run) == {"nap", "closed"}
        assert all(began - 60 < value <= now for value in last_run.values()), last_run
        since = prometheus.query("runner_job_state_since_timestamp_seconds")
        assert set(since) == {"nap", "closed", "echo"}
        assert all(began - 60 < value <= now for value in since.values()), since
        # "Has not run for a while" is one expression.
        assert prometheus.query("time() - runner_job_last_run_timestamp_seconds > 300") == {}

        # The first change out of unknown is counted: a check that has run once
        # and never changed since has one change.
        assert prometheus.query("runner_job_state_changes_total") == {"nap": 1.0, "closed": 1.0}
        assert prometheus.query("runner_job_up") == {"nap": 1.0, "closed": 0.0, "echo": 1.0}
        assert prometheus.query("runner_job_down") == {"nap": 0.0, "closed": 1.0}
        sent = prometheus.api("query", query='runner_notifier_sent_total{notifier="journal"}')
        assert [float(r["value"][1]) for r in sent["result"]] == [1.0]
        assert prometheus.query("runner_history_written_total > 0") != {}

        # Prometheus asked for OpenMetrics and got it: its metadata has the
        # families as OpenMetrics names them (an info family, counters
        # without _total), which the text format cannot say.
        metadata = prometheus.api("targets/metadata", match_target='{job="runner"}')
        types = {m["metric"]: m["type"] for m in metadata}
        assert types["runner_build"] == "info", types
        assert types["runner_job_runs"] == "counter"
        assert types["runner_job_last_run_timestamp_seconds"] == "gauge"
    finally:
        prometheus.close()

    # The text format (what a scraper gets without asking) is promtool-clean:
    # every family the daemon has here (jobs, a notifier, the history).
    with local_client() as client:
        response = client.get(f"http://{target}/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        om = client.get(
            f"http://{target}/metrics",
            headers={"Accept": "application/openmetrics-text;version=1.0.0"},
        )
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.endswith("# EOF\n")
    for family in ("runner_job_state_since_timestamp_seconds", "runner_notifier_sent_total"):
        assert f"\n{family}{{" in response.text
    assert "\nrunner_history_written_total " in response.text
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=response.text, capture_output=True, text=True
    )
    assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint.stdout + lint.stderr
    assert daemon.stop() == 0
