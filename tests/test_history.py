"""History end to end: a real daemon writes it, `runner status` and `runner history`
read it back, and it survives kill -9, restarts, a full disk and a read-only file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from helpers import RunnerProcess, closed_port, run_cli, serve_until, wait_until
from runner.history import HistorySink, SQLiteStore
from runner.model import RunRecord
from runner.plugin import Result
from runner.results import ResultHub
from runner.testing import running_daemon

WriteConfig = Callable[..., Path]

#: The fields a result has both in the log line and in history's JSON.
RESULT_KEYS = ("job", "plugin", "status", "duration_ms", "message", "status_code", "slept_s")


def same_result(stored: dict[str, Any], logged: dict[str, Any]) -> dict[str, Any]:
    return {k: stored.get(k) for k in RESULT_KEYS} | {
        "logged": {k: logged.get(k) for k in RESULT_KEYS}
    }


def as_result(event: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(event.get(k) for k in RESULT_KEYS)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def status_json(config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    result = run_cli("status", str(config), "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, {row["job"]: row for row in json.loads(result.stdout)}


def stored_rows(path: Path) -> list[tuple[str, float]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT j.name, r.duration_ms FROM runner_runs r JOIN runner_jobs j ON j.id = r.job_id"
        ).fetchall()


def test_status_and_history_agree_with_the_logged_results_run_for_run(
    write_config: WriteConfig, http_base: str, tmp_path: Path
) -> None:
    config = write_config(
        f"""
        defaults: {{interval: 200ms, timeout: 5s}}
        history: {{flush_every: 100ms}}
        jobs:
          - {{name: up, plugin: http-status, options: {{url: "{http_base}/ok"}}}}
          - {{name: down, plugin: http-status, options: {{url: "{http_base}/error"}}}}
          - {{name: nap, plugin: sleep, options: {{seconds: 0}}}}
        """,
        name="site.yaml",
    )
    with RunnerProcess("serve", str(config)) as runner:
        for job in ("up", "down", "nap"):
            runner.wait_for(event="job.finished", job=job, count=3)
        # Readers never wait for the writer: status works while the daemon runs.
        wait_until(lambda: status_json(config)[1]["down"]["runs"] >= 1, 10, "a stored run")
        assert runner.stop() == 0
    # The default place: $XDG_STATE_HOME/runner/<config name>.sqlite3 (set by conftest).
    assert (tmp_path / "state" / "runner" / "site.sqlite3").exists()

    logged = {job: runner.find(event="job.finished", job=job) for job in ("up", "down", "nap")}
    code, rows = status_json(config)
    assert code == 1  # "down" is failing
    assert rows.keys() == {"up", "down", "nap"}
    for job, events in logged.items():
        row = rows[job]
        # A clean stop flushed every result.
        assert row["runs"] == len(events), job
        assert as_result(row["last"]) == as_result(events[-1])
    assert rows["up"]["state"] == "ok" and rows["up"]["failures"] == 0
    assert rows["up"]["uptime"]["1h"] == 1.0 and rows["up"]["uptime"]["30d"] == 1.0
    assert rows["up"]["latency_ms"]["p50"] is not None
    assert rows["down"]["state"] == "failing"
    assert rows["down"]["failures"] == rows["down"]["runs"]
    assert rows["down"]["uptime"]["24h"] == 0.0
    assert rows["down"]["latency_ms"] == {"p50": None, "p95": None}  # no ok run to time
    assert rows["down"]["last"]["message"].startswith("status 500")

    result = run_cli("history", str(config), "down", "--json", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    history = json.loads(result.stdout)
    assert [as_result(r) for r in history] == [as_result(e) for e in reversed(logged["down"])]
    finished = [epoch(r["finished_at"]) for r in history]
    assert finished == sorted(finished, reverse=True)
    # "since" is the first result of the current streak: here the first run.
    assert rows["down"]["since"] == history[-1]["finished_at"]

    limited = json.loads(run_cli("history", str(config), "up", "--limit", "2").stdout)
    assert [as_result(r) for r in limited] == [as_result(e) for e in logged["up"][:-3:-1]]
    only_ok = json.loads(run_cli("history", str(config), "down", "--status", "ok").stdout)
    assert only_ok == []
    recent = json.loads(run_cli("history", str(config), "nap", "--since", "1h").stdout)
    assert len(recent) == len(logged["nap"])
    # Readers left no -wal or -shm file of theirs next to the stopped daemon's history.
    assert [p.name for p in (tmp_path / "state" / "runner").iterdir()] == ["site.sqlite3"]


def test_a_failing_job_is_failing_since_the_same_time_after_a_restart(
    write_config: WriteConfig,
) -> None:
    config = write_config(
        f"""
        history: {{flush_every: 100ms}}
        jobs:
          - name: api
            plugin: http-status
            interval: 100ms
            options: {{url: "http://127.0.0.1:{closed_port()}/"}}
        """
    )
    first = serve_until(config, event="job.finished", job="api", count=2)
    _, before = status_json(config)
    assert before["api"]["state"] == "failing"

    second = serve_until(config, event="job.finished", job="api", count=2)
    code, after = status_json(config)
    assert code == 1
    assert after["api"]["state"] == "failing"
    assert after["api"]["since"] == before["api"]["since"]
    runs = len(first.find(event="job.finished")) + len(second.find(event="job.finished"))
    assert after["api"]["runs"] == after["api"]["failures"] == runs


def test_kill_9_in_a_write_burst_loses_at_most_the_last_batch_and_never_corrupts(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    jobs = "\n".join(
        f"  - {{name: job-{i}, plugin: sleep, options: {{seconds: 0}}}}" for i in range(1000)
    )
    db = tmp_path / "burst.sqlite3"
    config = write_config(
        f"defaults: {{interval: 500ms}}\n"
        f"history: {{path: {db}, flush_every: 200ms}}\n"
        f"jobs:\n{jobs}\n"
    )
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="job.finished", count=6000, timeout=60)
        killed_at = time.time()
        runner.proc.send_signal(signal.SIGKILL)
        runner.proc.wait(timeout=10)
    logged = runner.find(event="job.finished")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = Counter(stored_rows(db))
    # A flush runs every 200 ms: everything logged a second before the kill is stored.
    settled = Counter(
        (e["job"], e["duration_ms"]) for e in logged if epoch(e["timestamp"]) < killed_at - 1.0
    )
    assert sum(settled.values()) > 1000  # the test means something
    assert not settled - stored, "runs logged well before the kill are missing"
    assert sum(stored.values()) <= len(logged)  # nothing stored that did not run
    # And the daemon opens it again and goes on.
    with RunnerProcess("serve", str(config)) as again:
        again.wait_for(event="history.opened")
        again.wait_for(event="job.finished", count=10)
        assert again.stop() == 0


async def test_a_stuck_database_never_delays_checks_and_history_catches_up(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    db = tmp_path / "stuck.sqlite3"
    config = write_config(
        f"""
        history: {{path: {db}, flush_every: 50ms}}
        jobs:
          - {{name: tick, plugin: sleep, interval: 50ms, options: {{seconds: 0}}}}
        """
    )
    async with running_daemon(config, history=True) as daemon:
        await daemon.wait_for_results("tick", count=3)
        await asyncio.sleep(0)
        # Another process takes the write lock: the writer thread waits on it.
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            stored_then = len(stored_rows(db))
            seen = len(daemon.results_for("tick"))
            # Checks keep their schedule while every write is stuck.
            await daemon.wait_for_results("tick", count=seen + 15, timeout=10)
            assert len(stored_rows(db)) == stored_then
        finally:
            locker.execute("ROLLBACK")
            locker.close()

        async def caught_up() -> None:
            while len(stored_rows(db)) < len(daemon.results_for("tick")) - 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        async with asyncio.timeout(10):
            await caught_up()
    assert len(stored_rows(db)) == len(daemon.results_for("tick"))


async def test_the_daemon_deletes_runs_past_keep_and_keep_runs_and_keeps_the_rest(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.history import SQLiteStore
    from runner.history import sink as history_sink
    from runner.model import RunRecord
    from runner.plugin import Result
    from runner.results import ResultHub

    db = tmp_path / "old.sqlite3"
    store = SQLiteStore(db)
    await store.open(create=True)
    hub = ResultHub()
    now = time.time()
    old = [  # 40 days old: past keep
        hub.publish(
            RunRecord.of(
                "old", "sleep", Result.ok(), started_at=now - 40 * 86400 + i, duration_ms=1.0
            )
        ).last
        for i in range(30)
    ]
    recent = [  # one day old: within keep, but past keep_runs for all but the newest 5
        hub.publish(
            RunRecord.of("tick", "sleep", Result.ok(), started_at=now - 86400 + i, duration_ms=1.0)
        ).last
        for i in range(20)
    ]
    await store.write([r for r in old + recent if r is not None], hub.states.values())
    await store.close()
    config = write_config(
        f"""
        history: {{path: {db}, keep: 30d, keep_runs: 5}}
        jobs:
          - {{name: tick, plugin: sleep, interval: 1h, options: {{seconds: 0}}}}
        """
    )
    monkeypatch.setattr(history_sink, "RETENTION_FIRST", 0.2)
    with capture_logs() as logs:
        async with running_daemon(config, history=True):
            async with asyncio.timeout(10):
                while not any(e["event"] == "history.pruned" for e in logs):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
    pruned = next(e for e in logs if e["event"] == "history.pruned")
    # The first pass runs 0.2 s after start, before the first flush (flush_every
    # is 1 s): it deletes the old job's runs and tick's 15 oldest.
    assert pruned["runs"] == 30 + 15
    rows = Counter(name for name, _ in stored_rows(db))
    assert rows == {"tick": 5 + 1}  # and the run of this start, stored at the stop


# --------------------------------------------------------------------------- disk trouble


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of the test's own, to fill up and to make read-only."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the full-disk tests mount a tmpfs and need root, which CI has")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def remount(mount: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


def burst_config(write_config: WriteConfig, db: Path, jobs: int = 200) -> Path:
    lines = "\n".join(
        f"  - {{name: job-{i}, plugin: sleep, options: {{seconds: 0}}}}" for i in range(jobs)
    )
    return write_config(
        f"defaults: {{interval: 100ms}}\nhistory: {{path: {db}, flush_every: 100ms}}\n"
        f"jobs:\n{lines}\n"
    )


def test_a_full_disk_logs_once_checks_go_on_and_writing_resumes_with_nothing_lost(
    write_config: WriteConfig, small_fs: Path
) -> None:
    db = small_fs / "history.sqlite3"
    with RunnerProcess("serve", str(burst_config(write_config, db))) as runner:
        failed = runner.wait_for(event="history.write_failed", timeout=60)[0]
        assert "full" in failed["error"], failed
        # Checks run on: plenty more results while every write fails.
        after = len(runner.find(event="job.finished"))
        runner.wait_for(event="job.finished", count=after + 2000, timeout=30)
        assert len(runner.find(event="history.write_failed")) == 1  # once per episode
        remount(small_fs, "size=64m")
        resumed = runner.wait_for(event="history.write_resumed", timeout=30)[0]
        assert resumed["dropped"] == 0
        assert runner.stop(timeout=20) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The queue held every result through the episode: all of them are stored.
    assert len(stored_rows(db)) == len(runner.find(event="job.finished"))


def test_a_read_only_database_logs_once_and_writing_resumes_when_it_is_writable(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    if os.geteuid() != 0 and os.environ.get("CI"):
        pytest.fail("this test drops root's file-permission override and needs root")
    db = tmp_path / "history.sqlite3"
    config = burst_config(write_config, db, jobs=20)
    first = serve_until(config, event="job.finished", count=50)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("history.sqlite3")]
    for path in files:
        path.chmod(0o444)
    # Root writes anything: without CAP_DAC_OVERRIDE it meets the file's mode like a user.
    root_as_a_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    with RunnerProcess(
        "serve", str(config), prefix=root_as_a_user if os.geteuid() == 0 else ()
    ) as runner:
        failed = runner.wait_for(event="history.unavailable", timeout=30)[0]
        assert "is not writable" in failed["error"], failed
        after = len(runner.find(event="job.finished"))
        runner.wait_for(event="job.finished", count=after + 200, timeout=30)
        assert len(runner.find(event="history.unavailable")) == 1
        for path in files:
            path.chmod(0o644)
        runner.wait_for(event="history.write_resumed", timeout=30)
        assert runner.stop(timeout=20) == 0
    total = len(first.find(event="job.finished")) + len(runner.find(event="job.finished"))
    assert len(stored_rows(db)) == total


# --------------------------------------------------------------------------- errors


def test_status_says_why_it_cannot_read_and_exits_2(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    config = write_config("jobs:\n  - {name: nap, plugin: sleep}\n", name="fresh.yaml")
    nothing = run_cli("status", str(config))
    assert nothing.returncode == 2
    assert "no history at" in nothing.stderr and "fresh.sqlite3" in nothing.stderr

    off = write_config("history: {enabled: false}\njobs:\n  - {name: nap, plugin: sleep}\n")
    result = run_cli("status", str(off))
    assert result.returncode == 2 and "history is off" in result.stderr

    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    from_future = write_config(
        f"history: {{path: {newer}}}\njobs:\n  - {{name: nap, plugin: sleep}}\n"
    )
    result = run_cli("status", str(from_future))
    assert result.returncode == 2
    assert "schema version 99" in result.stderr and "Upgrade runner" in result.stderr
    unknown = run_cli("history", str(from_future), "nap")
    assert unknown.returncode == 2


async def test_a_daemon_with_an_unusable_history_still_runs_its_checks(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    config = write_config(
        f"""
        history: {{path: {newer}, flush_every: 50ms}}
        jobs:
          - {{name: tick, plugin: sleep, interval: 50ms, options: {{seconds: 0}}}}
        """
    )
    with capture_logs() as logs:
        async with running_daemon(config, history=True) as daemon:
            await daemon.wait_for_results("tick", count=5)
    unavailable = [e for e in logs if e["event"] == "history.unavailable"]
    assert len(unavailable) == 1
    assert "schema version 99" in unavailable[0]["error"]
    assert any(e["event"] == "history.lost" for e in logs)


def test_history_config_errors_name_the_field(write_config: WriteConfig) -> None:
    config = write_config(
        """
        history:
          path: /tmp/a.sqlite3
          url: mysql://db/runner
          keeep: 3d
        jobs:
          - {name: nap, plugin: sleep}
        """
    )
    result = run_cli("check", str(config))
    assert result.returncode == 2
    err = result.stderr
    assert f"{config}:3: history: url: expected a PostgreSQL URL" in err
    assert f"{config}:4: history: keeep: unknown key; did you mean 'keep'?" in err
    both = write_config(
        "history: {path: a.db, url: 'postgresql://x/y'}\njobs: [{name: n, plugin: sleep}]\n"
    )
    result = run_cli("check", str(both))
    assert (
        result.returncode == 2
        and "give path (SQLite) or url (PostgreSQL), not both" in result.stderr
    )


# --------------------------------------------------------------------------- PostgreSQL


def test_a_daemon_writes_to_postgresql_and_status_reads_it(
    write_config: WriteConfig, postgres_url: str, http_base: str
) -> None:
    config = write_config(
        f"""
        defaults: {{interval: 200ms}}
        history: {{url: "{postgres_url}", flush_every: 100ms}}
        jobs:
          - {{name: up, plugin: http-status, options: {{url: "{http_base}/ok"}}}}
          - {{name: down, plugin: http-status, options: {{url: "{http_base}/error"}}}}
        """
    )
    runner = serve_until(config, event="job.finished", job="down", count=3)
    code, rows = status_json(config)
    assert code == 1
    for job in ("up", "down"):
        events = runner.find(event="job.finished", job=job)
        assert rows[job]["runs"] == len(events)
        assert as_result(rows[job]["last"]) == as_result(events[-1])
    assert rows["down"]["state"] == "failing" and rows["up"]["state"] == "ok"
    history = json.loads(run_cli("history", str(config), "down", "--limit", "500").stdout)
    logged = runner.find(event="job.finished", job="down")
    assert [as_result(r) for r in history] == [as_result(e) for e in reversed(logged)]


class _NoRecent(SQLiteStore):
    """A store whose last statuses cannot be read (say, a database that refuses the query)."""

    async def load_recent(self, jobs: Iterable[str], count: int) -> dict[str, str]:
        raise sqlite3.OperationalError("no such column: finished_at")


@pytest.mark.parametrize("store_class", [SQLiteStore, _NoRecent], ids=["reads", "fails"])
async def test_the_sink_reads_back_the_last_statuses_of_jobs_with_windows_or_at_least_states(
    store_class: type[SQLiteStore], tmp_path: Path
) -> None:
    sink = HistorySink(store_class(tmp_path / "history.sqlite3"))
    async with AsyncExitStack() as stack:
        await sink.start(stack)
        hub = ResultHub([sink])
        for i, result in enumerate([Result.fail("500"), Result.ok(), Result.fail("500")]):
            hub.publish(
                RunRecord.of("api", "http-status", result, started_at=100.0 + i, duration_ms=5)
            )
            hub.publish(
                RunRecord.of("web", "http-status", Result.ok(), started_at=100.0 + i, duration_ms=5)
            )
        assert await sink.flush()
        with capture_logs() as logs:
            states = {s.job: s for s in await sink.load_states({"api": 5})}
    assert set(states) == {"api", "web"} and states["api"].consecutive_not_ok == 1
    assert states["web"].recent_codes == ""  # a rule in a row: nothing more is read
    if store_class is SQLiteStore:
        assert states["api"].recent_codes == "fof" and logs == []
    else:
        assert states["api"].recent_codes == ""
        assert [e["event"] for e in logs] == ["history.read_failed"]
