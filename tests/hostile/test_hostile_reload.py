"""A hostile config sent on SIGHUP never stalls or kills the daemon (issue 12, section 1).

A real daemon runs a control job every 200 ms; its config file is replaced by
an alias bomb, a dense file of 600,000 values, deep nesting and bad bytes, each
followed by SIGHUP. Each reload is refused (``reload.refused`` with the
place), the control job's results keep their schedule throughout (asserted
on their timestamps), the daemon's peak memory stays small, and a good config
still reloads afterwards.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from helpers import RunnerProcess
from runner.config_probe import ProbeFailed, probe

WriteConfig = Callable[..., Path]

CONTROL = "  - {name: control, plugin: sleep, interval: 200ms, options: {seconds: 0}}\n"
GOOD = "jobs:\n" + CONTROL
MAX_GAP = 1.5


def bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        previous = "a" if i == 1 else f"l{i - 1}"
        lines.append(f"l{i}: &l{i} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n" + GOOD


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_hostile_reloads_are_refused_and_the_schedule_holds(write_config: WriteConfig) -> None:
    config = write_config(GOOD, name="reload.yaml")
    hostile = [
        (bomb(), ":6:10: alias *l4 repeats"),
        ("x: [" + "1," * 600_000 + "1]\n" + GOOD, "more than 500,000 values"),
        ("x: " + "[" * 600 + "]" * 600 + "\n" + GOOD, ":1:67: collections nest deeper than 64"),
        (
            "jobs:\n  - {name: control, plugin: sleep, interval: 1e309}\n",
            "interval: must be finite",
        ),
    ]
    with RunnerProcess("serve", str(config)) as runner:
        runner.wait_for(event="job.finished", job="control", count=5)
        for count, (text, says) in enumerate(hostile, start=1):
            config.write_text(text)
            runner.proc.send_signal(signal.SIGHUP)
            refused = runner.wait_for(event="reload.refused", count=count, timeout=30)[-1]
            assert any(says in p for p in refused["problems"]), refused
        config.write_bytes(b"jobs:\n  - {name: caf\xe9, plugin: sleep}\n")
        runner.proc.send_signal(signal.SIGHUP)
        refused = runner.wait_for(event="reload.refused", count=len(hostile) + 1)[-1]
        assert f"{config}:2:15: byte 0xe9 is not UTF-8" in refused["problems"][0]

        # Still reloads: a second job appears.
        config.write_text(GOOD + "  - {name: added, plugin: sleep, interval: 200ms}\n")
        runner.proc.send_signal(signal.SIGHUP)
        runner.wait_for(event="daemon.reloaded")
        runner.wait_for(event="job.finished", job="added")
        peak = peak_rss_mib(runner.proc.pid)
        assert runner.stop() == 0

    # About 50 MiB at start; the hostile files are read by a child process.
    assert peak < 150, f"the daemon grew to {peak:.0f} MiB"
    control = runner.find(event="job.finished", job="control")
    times = [
        datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() for e in control
    ]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < MAX_GAP, f"the control job stalled for {max(gaps):.2f}s during a reload"
    assert all(e["status"] == "ok" for e in control)


async def test_the_probe_is_bounded_in_time_and_memory(write_config: WriteConfig) -> None:
    config = write_config(GOOD)
    assert await probe(config, 30) == []
    with pytest.raises(ProbeFailed, match=r"longer than 0\.03s"):  # 3x in wall clock
        await probe(config, 0.01)
    # The dense file costs about 2.5 s of CPU to refuse for its size.
    dense = write_config("x: [" + "1," * 600_000 + "1]\n" + GOOD, name="dense.yaml")
    with pytest.raises(ProbeFailed, match=r"longer than 1s of CPU time"):
        await probe(dense, 1, wall_clock=120)
    with pytest.raises(ProbeFailed, match="more than 20 MiB"):
        await probe(config, 30, memory=20 * 1024 * 1024)
    config.write_text(GOOD + "  - {name: other, plugin: sleep, interval: .inf}\n")
    problems = await probe(config, 30)
    assert problems == [f"{config}:3: jobs[1] 'other': interval: must be finite (got inf)"]
