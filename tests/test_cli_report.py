"""``runner status`` and ``runner history`` as commands: the history they read is
a real SQLite history, written by the store the daemon writes with; once each
through a real terminal (a pseudo-terminal of a set size), as a person runs them."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import run_cli
from runner.history import SQLiteStore
from runner.model import RunRecord
from runner.plugin import Result, Status
from runner.results import ResultHub

WriteConfig = Callable[..., Path]
LONG = "status 503 Service Unavailable from upstream payments-gateway after 3 redirects"


def record(job: str, result: Result, ago: float, plugin: str = "http-status") -> RunRecord:
    finished = time.time() - ago
    return RunRecord.of(job, plugin, result, started_at=finished - 0.05, duration_ms=50.0)


@pytest.fixture
def config(write_config: WriteConfig, tmp_path: Path) -> Path:
    """A config of two checks and a service, with a history of runs: web failing
    (2 error, then a fail with a long message and plugin fields; an ok before),
    nap ok; echo, the service, has none."""
    db = tmp_path / "history.sqlite3"
    path = write_config(
        f"""
        history: {{path: {db}}}
        jobs:
          - {{name: shop-checkout-api, plugin: http-status, options: {{url: "http://127.0.0.1:9/"}}}}
          - {{name: nap, plugin: sleep, options: {{seconds: 0}}}}
          - {{name: echo, plugin: echo-listener, options: {{port: 0}}}}
        """
    )
    hub = ResultHub()
    hub.track("shop-checkout-api", "http-status", "check")
    hub.track("nap", "sleep", "check")
    shop = "shop-checkout-api"
    records = [
        record(shop, Result.ok(status_code=200), 400),
        record(shop, Result(Status.ERROR, "connection refused"), 300),
        record(shop, Result(Status.ERROR, "connection refused"), 200),
        record(shop, Result.fail(LONG, status_code=503, timings_ms={"dns": 0.4}), 165),
        record("nap", Result.ok(slept_s=0), 100, plugin="sleep"),
    ]
    for one in records:
        hub.publish(one)

    async def write() -> None:
        store = SQLiteStore(db)
        await store.open(create=True)
        try:
            await store.write(records, hub.states.values())
        finally:
            await store.close()

    asyncio.run(write())
    return path


def history(config: Path, *args: str) -> list[dict[str, object]]:
    result = run_cli("history", str(config), *args)
    assert result.returncode == 0, result.stderr
    runs: list[dict[str, object]] = json.loads(result.stdout)
    return runs


# --------------------------------------------------------------------------- --status


def test_history_status_takes_one_status_not_ok_or_a_list(config: Path) -> None:
    shop = "shop-checkout-api"
    assert [r["status"] for r in history(config, shop)] == ["fail", "error", "error", "ok"]
    assert [r["status"] for r in history(config, shop, "--status", "error")] == ["error"] * 2
    not_ok = history(config, shop, "--status", "not-ok")
    assert [r["status"] for r in not_ok] == ["fail", "error", "error"]
    listed = history(config, shop, "--status", "fail,error")
    assert listed == not_ok  # newest first across the statuses asked
    assert [r["status"] for r in history(config, shop, "--status", "ok,timeout")] == ["ok"]
    limited = history(config, shop, "--status", "not-ok", "--limit", "2")
    assert [r["status"] for r in limited] == ["fail", "error"]
    assert history(config, shop, "--status", "timeout") == []
    # --json keeps every field (the plugin's among them).
    assert not_ok[0]["timings_ms"] == {"dns": 0.4} and not_ok[0]["status_code"] == 503


def test_history_refuses_a_status_that_is_none(config: Path) -> None:
    result = run_cli("history", str(config), "nap", "--status", "fail,broken")
    assert result.returncode == 2
    assert "'broken' is not a status" in result.stderr
    assert "not-ok" in result.stderr


# --------------------------------------------------------------------------- services and names


@pytest.mark.parametrize("command", ["status", "history"])
def test_a_service_has_no_status_or_history_and_says_so(config: Path, command: str) -> None:
    result = run_cli(command, str(config), "echo")
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"'echo' is a service (echo-listener) in {config}" in result.stderr
    assert "a service has no runs" in result.stderr
    assert "checks: shop-checkout-api, nap" in result.stderr


def test_status_of_named_checks_shows_only_them(config: Path) -> None:
    result = run_cli("status", str(config), "nap", "--json")
    assert result.returncode == 0, result.stderr  # nap is ok: the failing one is not asked
    assert [row["job"] for row in json.loads(result.stdout)] == ["nap"]
    every = run_cli("status", str(config), "--json")
    assert every.returncode == 1
    rows = json.loads(every.stdout)
    assert [row["job"] for row in rows] == ["shop-checkout-api", "nap"]
    # --json keeps its fields: since is absolute there.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", rows[0]["since"])
    unknown = run_cli("status", str(config), "nope")
    assert unknown.returncode == 2
    assert "no check named 'nope'" in unknown.stderr


# --------------------------------------------------------------------------- a real terminal


def on_a_terminal(args: list[str], columns: int, rows: int = 40) -> tuple[int, list[str]]:
    """Run ``python -m runner ARGS`` with its output on a pseudo-terminal
    ``columns`` wide; its exit code and its lines, without colours."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 60
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no end of output in 60 s: {bytes(out)!r}"
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out.extend(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", out.decode())
    return code, text.replace("\r\n", "\n").splitlines()


@pytest.mark.parametrize("columns", [60, 100])
def test_status_and_history_through_a_real_terminal(config: Path, columns: int) -> None:
    code, lines = on_a_terminal(["status", str(config)], columns)
    assert code == 1, lines  # shop-checkout-api is failing
    assert max(len(line) for line in lines) <= columns, lines
    header = lines.index(next(line for line in lines if line.startswith("job ")))
    shop, nap = lines[header + 1], lines[header + 2]  # one line each
    # Since the first error (300 s before), and since nap's run (100 s before).
    assert re.match(r"shop-checkout-api  +DOWN  +[5-9]m \d+s ago  +FAIL status 503", shop)
    assert re.match(r"nap  +ok  +[1-5]m \d+s ago  +ok", nap), lines
    assert lines[header + 3] == "2 jobs: 1 ok, 1 failing (shop-checkout-api)"

    code, lines = on_a_terminal(["history", str(config), "shop-checkout-api"], columns)
    assert code == 0, lines
    assert max(len(line) for line in lines) <= columns, lines
    assert lines[0] == "shop-checkout-api: 4 runs, newest first"
    assert [line.split()[2] for line in lines[2:]] == ["FAIL", "ERROR", "ERROR", "ok"]
    assert "status_code" not in "\n".join(lines)

    code, lines = on_a_terminal(
        ["history", str(config), "shop-checkout-api", "--status", "timeout", "--since", "1h"],
        columns,
    )
    assert code == 0
    assert " ".join(" ".join(lines).split()) == (  # as wrapped at the width
        "no runs of shop-checkout-api match --status timeout --since 1h "
        "(all its runs: 1 ok, 1 fail, 2 error)"
    )
