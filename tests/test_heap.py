"""runner serve freezes what lives as long as the daemon out of the garbage
collector's walks (runner.heap), and must never let that freeze keep garbage."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import RunnerProcess
from runner import heap

WriteConfig = Callable[..., Path]


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_settle_frees_cycles_that_died_while_frozen(unfrozen: None) -> None:
    node = Node()
    alive = weakref.ref(node)
    heap.settle("test")
    assert gc.get_freeze_count() > 0

    del node
    gc.collect()
    # What a reload leaves: garbage among frozen objects, out of gc.collect()'s sight...
    assert alive() is not None
    heap.settle("test")
    # ...and freed by the next settle, so the frozen set never grows with reloads.
    assert alive() is None


def test_serve_settles_after_start_and_after_each_reload(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - {name: nap, plugin: sleep, interval: 200ms, options: {seconds: 0}}
        """,
        name="runner.yaml",
    )
    with RunnerProcess("serve", str(config), "--log-level", "debug") as runner:
        started = runner.wait_for(event="heap.settled", reason="started")[0]
        assert started["frozen"] > 10_000  # modules, config, plugins: the long-lived heap
        runner.wait_for(event="job.finished", job="nap")

        write_config(
            """
            jobs:
              - {name: nap2, plugin: sleep, interval: 200ms, options: {seconds: 0}}
            """,
            name="runner.yaml",
        )
        runner.proc.send_signal(signal.SIGHUP)
        runner.wait_for(event="daemon.reloaded")
        runner.wait_for(event="heap.settled", reason="reloaded")
        runner.wait_for(event="job.finished", job="nap2")
        assert runner.stop() == 0


@pytest.mark.parametrize("frozen", [False, True])
def test_runner_runs_exit_leaves_the_heap_out_of_the_last_collection(frozen: bool) -> None:
    # The interpreter's exit collects once more, walking the whole heap (0.2
    # to 0.35 s after page checks); `runner run` skips that walk. Seen from
    # outside: a cycle's finalizer runs at exit only without it.
    script = f"""
from runner import heap
class Node:
    def __init__(self): self.me = self
    def __del__(self): print("collected", flush=True)
node = Node()
if {frozen}:
    heap.exit_without_a_last_walk()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == ("" if frozen else "collected\n")
