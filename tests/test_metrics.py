"""/metrics keeps each job's formatted samples while its state is unchanged;
what it serves must be exactly what prometheus_client writes for all jobs at
once, whatever changed in between."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from runner.config import Config
from runner.daemon import Daemon
from runner.metrics import DaemonCollector, Exposition, JobCollector
from runner.model import RunRecord
from runner.plugin import Result

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
