"""/metrics keeps each job's formatted samples while its state is unchanged;
what it serves must be exactly what prometheus_client writes for all jobs at
once, whatever changed in between."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from runner.config import Config
from runner.daemon import Daemon
from runner.metrics import DaemonCollector, Exposition, JobCollector
from runner.model import RunRecord
from runner.plugin import Result, ResultMetric

# Names that need escaping in label values, and one that does not.
NAMES = ["plain", 'quote"d', "back\\slash", "new\nline", "ünïcode ✓", "<script>x</script>"]


def record(job: str, result: Result, attempts: int = 1) -> RunRecord:
    return RunRecord.of(
        job, "http-status", result, started_at=1.7e9, duration_ms=12.5, attempts=attempts
    )


def whole(daemon: Daemon) -> bytes:
    """prometheus_client's text for every family at once, no cache."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(daemon.view))
    registry.register(DaemonCollector(daemon.view))
    return generate_latest(registry)


def test_cached_exposition_is_byte_for_byte_prometheus_clients(tmp_path: Path) -> None:
    daemon = Daemon(Config(path=tmp_path / "c.yaml", jobs=()), sinks=[], history=False)
    hub = daemon.hub
    for name in NAMES:
        hub.track(name, "http-status", "check")
    hub.track("never-ran", "sleep", "check")
    hub.track("listener", "echo-listener", "service")
    hub.service_ready("listener")
    hub.publish(record("plain", Result.ok(status_code=200)))
    hub.publish(record('quote"d', Result.fail("status 503", status_code=503), attempts=3))
    hub.publish(record("back\\slash", Result.error("refused")))
    hub.publish(record("new\nline", Result.ok(status_code=204)))
    hub.publish(record("ünïcode ✓", Result.ok()))
    exposition = Exposition(daemon.view)

    first = exposition.render()
    assert first == whole(daemon)

    # One job changes, one goes, one comes: the cache must follow each.
    hub.publish(record("plain", Result.fail("status 500", status_code=500)))
    hub.forget("back\\slash")
    hub.track("late", "sleep", "check")
    hub.publish(record("late", Result.ok()))
    second = exposition.render()
    assert second == whole(daemon)
    assert second != first
    assert b'name="back\\\\slash"' in first and b"back\\\\slash" not in second
    # Nothing changed: the same text again, from the cache.
    assert exposition.render() == second


def families_of(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_plugins_declare_the_result_fields_exported_as_metrics(
    tmp_path: Path, testplugins: Path
) -> None:
    daemon = Daemon(Config(path=tmp_path / "c.yaml", jobs=()), sinks=[], history=False)
    hub = daemon.hub
    hub.track("web", "http-status", "check")
    hub.track("db", "reach", "check")  # a third-party check: result_metrics = port
    hub.track("nap", "sleep", "check")
    hub.publish(record("web", Result.fail("status 503", status_code=503)))
    hub.publish(RunRecord.of("db", "reach", Result.ok(port=5432), started_at=1.7e9, duration_ms=1))
    # sleep declares nothing: a status_code field of its own is not a metric.
    hub.publish(
        RunRecord.of("nap", "sleep", Result.ok(status_code=1), started_at=1.7e9, duration_ms=1)
    )
    exposition = Exposition(daemon.view)

    text = exposition.render()
    assert text == whole(daemon)
    families = families_of(text)
    http = families["runner_http_status_code"]
    assert (http.type, http.documentation) == (
        "gauge",
        "Status code of the last answer (http-status checks)",
    )
    assert [(s.labels, s.value) for s in http.samples] == [
        ({"name": "web", "plugin": "http-status"}, 503.0)
    ]
    reach = families["runner_reach_port"]
    assert reach.documentation == "The port the check connected to"
    assert [(s.labels, s.value) for s in reach.samples] == [
        ({"name": "db", "plugin": "reach"}, 5432.0)
    ]

    # The reach job goes: its family goes with it, and the cache follows.
    hub.forget("db")
    second = exposition.render()
    assert second == whole(daemon)
    assert "runner_reach_port" not in families_of(second)
    assert "runner_http_status_code" in families_of(second)


def test_a_plugin_cannot_declare_a_metric_of_the_daemon(tmp_path: Path) -> None:
    daemon = Daemon(Config(path=tmp_path / "c.yaml", jobs=()), sinks=[], history=False)
    daemon.hub.track("nap", "sleep", "check")
    daemon.hub.publish(RunRecord.of("nap", "sleep", Result.ok(), started_at=1.7e9, duration_ms=1))
    names = {name.removeprefix("runner_") for name in families_of(whole(daemon))}
    assert {"up", "job_up", "build_info"} <= names
    names |= {"build", "notifier_sent", "history_written"}
    for name in names:
        with pytest.raises(ValueError, match="is the daemon's own"):
            ResultMetric("value", name, "help")
    for name in ("Upper", "1st", "with-dash", ""):
        with pytest.raises(ValueError, match="lower case letters"):
            ResultMetric("value", name, "help")
    with pytest.raises(ValueError, match="leave out runner_"):
        ResultMetric("value", "runner_http_status_code", "help")


OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def whole_openmetrics(daemon: Daemon) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(daemon.view))
    registry.register(DaemonCollector(daemon.view))
    return openmetrics_latest(registry)


def test_openmetrics_when_the_scraper_asks_for_it_cached_the_same_way(tmp_path: Path) -> None:
    daemon = Daemon(Config(path=tmp_path / "c.yaml", jobs=()), sinks=[], history=False)
    hub = daemon.hub
    for name in NAMES:
        hub.track(name, "http-status", "check")
    hub.track("listener", "echo-listener", "service")
    hub.service_ready("listener")
    hub.publish(record("plain", Result.ok(status_code=200)))
    hub.publish(record('quote"d', Result.fail("status 503", status_code=503)))
    exposition = Exposition(daemon.view)

    assert exposition.content_type("").startswith("text/plain")
    assert exposition.content_type(OPENMETRICS).startswith("application/openmetrics-text")
    text = exposition.render()
    first = exposition.render(OPENMETRICS)
    assert first == whole_openmetrics(daemon)
    assert first.endswith(b"# EOF\n") and first.count(b"# EOF") == 1
    assert text == whole(daemon)  # each format has its own cache
    families = {f.name: f for f in openmetrics_families(first.decode())}
    assert families["runner_job_runs"].type == "counter"
    assert families["runner_build"].type == "info"

    # One job changes (the cached path), then most of them (one pass).
    hub.publish(record("plain", Result.fail("status 500", status_code=500)))
    assert exposition.render(OPENMETRICS) == whole_openmetrics(daemon)
    for name in NAMES:
        hub.publish(record(name, Result.ok()))
    assert exposition.render(OPENMETRICS) == whole_openmetrics(daemon)
    assert exposition.render() == whole(daemon)


def samples(text: bytes, family: str) -> dict[str, float]:
    return {s.labels["name"]: s.value for s in families_of(text)[family].samples}


def test_timestamps_of_the_last_run_and_of_the_state_and_every_change_counted(
    tmp_path: Path,
) -> None:
    daemon = Daemon(Config(path=tmp_path / "c.yaml", jobs=()), sinks=[], history=False)
    hub = daemon.hub
    hub.track("api", "http-status", "check")
    hub.track("never-ran", "sleep", "check")
    hub.track("listener", "echo-listener", "service")
    exposition = Exposition(daemon.view)

    before = exposition.render()
    # No run, no state yet: no timestamp (not 0, which would mean 1970).
    assert samples(before, "runner_job_last_run_timestamp_seconds") == {}
    assert samples(before, "runner_job_state_since_timestamp_seconds") == {}
    # The counter is there from the start, at 0, so its first change shows.
    assert samples(before, "runner_job_state_changes") == {"api": 0.0, "never-ran": 0.0}

    hub.publish(RunRecord.of("api", "http-status", Result.ok(), started_at=1.7e9, duration_ms=500))
    hub.publish(
        RunRecord.of("api", "http-status", Result.ok(), started_at=1.7e9 + 60, duration_ms=250)
    )
    hub.service_ready("listener")
    listener_since = hub.state("listener").since
    assert listener_since is not None
    text = exposition.render()
    assert samples(text, "runner_job_last_run_timestamp_seconds") == {"api": 1.7e9 + 60.25}
    assert samples(text, "runner_job_state_since_timestamp_seconds") == {
        "api": 1.7e9 + 0.5,  # the first ok of the streak
        "listener": listener_since,
    }
    assert samples(text, "runner_job_state_changes") == {"api": 1.0, "never-ran": 0.0}

    hub.publish(
        RunRecord.of(
            "api", "http-status", Result.fail("503"), started_at=1.7e9 + 120, duration_ms=1
        )
    )
    text = exposition.render()
    assert samples(text, "runner_job_state_since_timestamp_seconds")["api"] == 1.7e9 + 120.001
    assert samples(text, "runner_job_state_changes")["api"] == 2.0
    assert text == whole(daemon)


def test_a_cache_for_each_format_asked_for_the_oldest_forgotten(tmp_path: Path) -> None:
    daemon = Daemon(Config(path=tmp_path / "c.yaml", jobs=()), sinks=[], history=False)
    daemon.hub.track("nap", "sleep", "check")
    daemon.hub.publish(RunRecord.of("nap", "sleep", Result.ok(), started_at=1.7e9, duration_ms=1))
    exposition = Exposition(daemon.view)
    # A scraper may name any version: each is a format of its own, up to four kept.
    for version in ("1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"):
        accept = f"application/openmetrics-text;version={version}"
        assert exposition.render(accept) == whole_openmetrics(daemon)
        assert version in exposition.content_type(accept)
    assert len(exposition._formats) == 4
    assert exposition.render() == whole(daemon)
    assert len(exposition._formats) == 4
