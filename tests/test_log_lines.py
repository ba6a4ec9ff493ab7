"""A result's log line is the same whichever way it is written.

``LogSink`` writes each result's line through ``runner.log.log_result``: the
processors ``configure_logging`` set up, without structlog's dispatch around
them. These tests hold it to the line structlog itself makes from the same
event, and to the fallback under another configuration.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import structlog
from structlog.testing import capture_logs

from runner.log import (
    HOLD_BYTES,
    HOLD_S,
    _LineWriter,
    _UtcStamp,
    configure_logging,
    get_logger,
    log_result,
    secret_masker,
)
from runner.model import JobState, RunRecord
from runner.plugin import Result
from runner.results import LogSink


def _lines(read_fd: int) -> list[str]:
    return os.read(read_fd, 65536).decode().splitlines()


@pytest.mark.parametrize("fmt", ["json", "journal"])
def test_a_result_line_is_the_line_structlog_makes(fmt: str) -> None:
    read_fd, write_fd = os.pipe()
    saved = structlog.get_config()
    try:
        configure_logging(fmt, "info", stream=_LineWriter(write_fd))  # type: ignore[arg-type]
        secret_masker.set(["hunter2-token"])
        fields: dict[str, Any] = {
            "job": "api",
            "plugin": "http-status",
            "status": "fail",
            "duration_ms": 12.5,
            "message": "status 500 from https://x/?t=hunter2-token",
            "status_code": 500,
            "när": "ünïcode",
        }
        with structlog.contextvars.bound_contextvars(request_id="r-1"):
            get_logger().warning("job.finished", **fields)
            assert log_result("warning", "job.finished", fields)
        by_structlog, fast = _lines(read_fd)
    finally:
        structlog.configure(**saved)
        secret_masker.set(())
        os.close(read_fd)
        os.close(write_fd)

    if fmt == "journal":
        assert by_structlog.startswith("<4>{") and fast.startswith("<4>{")
        by_structlog, fast = by_structlog[3:], fast[3:]
    slow_event, fast_event = json.loads(by_structlog), json.loads(fast)
    assert "hunter2-token" not in fast and "***" in fast_event["message"]
    assert fast_event["request_id"] == "r-1"
    del slow_event["timestamp"], fast_event["timestamp"]
    assert list(fast_event.items()) == list(slow_event.items())  # same keys, values and order
    assert list(json.loads(fast))[:7] == [
        "timestamp",
        "level",
        "event",
        "job",
        "plugin",
        "status",
        "duration_ms",
    ]


def test_below_the_level_nothing_is_written_and_under_capture_logs_structlog_takes_it() -> None:
    read_fd, write_fd = os.pipe()
    saved = structlog.get_config()
    try:
        configure_logging("json", "warning", stream=_LineWriter(write_fd))  # type: ignore[arg-type]
        assert log_result("info", "job.finished", {"job": "quiet"})
        with capture_logs() as captured:
            record = RunRecord.of("nap", "sleep", Result.fail("bad"), started_at=0.0, duration_ms=1)
            LogSink().submit(record, JobState("nap", "sleep", "check"))
            assert not log_result("info", "job.finished", {"job": "x"})
        os.write(write_fd, b"end\n")
        written = _lines(read_fd)
    finally:
        structlog.configure(**saved)
        os.close(read_fd)
        os.close(write_fd)
    assert written == ["end"]  # the info line was filtered; the captured one not written
    assert [(e["event"], e["job"]) for e in captured] == [("job.finished", "nap")]


def test_the_result_lines_timestamp_is_the_one_structlog_writes() -> None:
    stamp = _UtcStamp()
    before = datetime.now(UTC)
    made = stamp()
    after = datetime.now(UTC)
    assert made.endswith("Z") and "+" not in made
    assert before <= datetime.fromisoformat(made) <= after
    second = 1_796_689_763
    with mock.patch("time.time_ns", return_value=second * 10**9 + 123):  # 0 us: no fraction
        assert stamp() == datetime.fromtimestamp(second, UTC).isoformat().replace("+00:00", "Z")
    with mock.patch("time.time_ns", return_value=second * 10**9 + 5_999):  # floored, as now()
        assert stamp() == "2026-12-08T00:29:23.000005Z"


class _Written:
    """What a file descriptor (a file, not a pipe: a pipe blocks a write past
    its 64 KiB) has been given since the last look."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT)
        self._seen = 0

    def new(self) -> bytes:
        data = os.pread(self.fd, 1 << 20, self._seen)
        self._seen += len(data)
        return data


async def test_the_loops_lines_are_held_briefly_then_written_together_in_order(
    tmp_path: Path,
) -> None:
    written = _Written(tmp_path / "out")
    out = _LineWriter(written.fd)
    loop = asyncio.get_running_loop()
    try:
        out.hold(loop)
        for i in range(3):
            out.write(b"loop %d\n" % i)
        assert written.new() == b""  # held: no system call per line
        # A line from another thread writes what the loop holds first: the
        # order is the order of the calls.
        await asyncio.to_thread(out.write, b"thread\n")
        assert written.new() == b"loop 0\nloop 1\nloop 2\nthread\n"
        out.write(b"later\n")
        # Written by the hold's timer, HOLD_S later, with no other prompt: the
        # loop fires it before any timer set after it for later.
        await asyncio.sleep(HOLD_S * 2)
        assert written.new() == b"later\n"
        out.write(b"x" * HOLD_BYTES + b"\n")  # a full hold is written at once
        assert len(written.new()) == HOLD_BYTES + 1
        out.write(b"last\n")
        out.hold(None)  # the end of the loop: what is held is written
        assert written.new() == b"last\n"
        out.write(b"unheld\n")
        assert written.new() == b"unheld\n"
    finally:
        out.hold(None)
        os.close(written.fd)


def test_held_lines_are_written_once_at_exit_and_never_by_a_forked_child() -> None:
    # Result lines still held when the process ends (an error past the loop's
    # end): atexit writes them. A fork writes them first: a child never
    # repeats them. (Any other event writes the held lines, then itself.)
    script = """
import asyncio, os, sys
from runner import log
log.configure_logging("json", own_stdout=True)
# As hold_lines does, never undone (its generator's end would write them too).
log._held_writer.hold(asyncio.new_event_loop())
log.log_result("info", "job.finished", {"job": "one"})
if os.fork() == 0:
    sys.exit(0)  # the child's atexit runs: its copy of the held lines is empty
os.wait()
log.log_result("info", "job.finished", {"job": "two"})
log.log_result("info", "job.finished", {"job": "three"})
raise SystemExit(3)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    jobs = [json.loads(line)["job"] for line in done.stdout.splitlines()]
    assert jobs == ["one", "two", "three"]
