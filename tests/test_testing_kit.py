"""runner.testing: the helpers plugin authors use, exercised the way they would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from runner.testing import running_daemon

WriteConfig = Callable[..., Path]


async def test_running_daemon_collects_results_and_reloads(write_config: WriteConfig) -> None:
    config = write_config(
        """
        jobs:
          - {name: echo, plugin: echo-listener}
          - {name: nap, plugin: sleep, interval: 100ms, options: {seconds: 0}}
        """,
        name="runner.yaml",
    )
    async with running_daemon(config) as daemon:
        port = daemon.daemon.scheduler.handles["echo"].ready.is_set() and next(iter([1]))
        assert port
        results = await daemon.wait_for_results("nap", count=2, timeout=10)
        assert {r["status"] for r in results} == {"ok"}
        assert results[0]["plugin"] == "sleep"

        config.write_text(
            "jobs:\n  - {name: nap2, plugin: sleep, interval: 100ms, options: {seconds: 0}}\n"
        )
        assert await daemon.reload() is True
        assert set(daemon.daemon.scheduler.handles) == {"nap2"}
        await daemon.wait_for_results("nap2", count=1, timeout=10)

        config.write_text("jobs: [")
        assert await daemon.reload() is False
        count = len(daemon.results_for("nap2"))
        await daemon.wait_for_results("nap2", count=count + 1, timeout=10)
    # Stopped: no task of the daemon is left.
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith(("job:", "run:"))]


async def test_unhandled_loop_exceptions_go_to_the_log(write_config: WriteConfig) -> None:
    config = write_config("jobs:\n  - {name: nap, plugin: sleep, interval: 1h}\n")
    async with running_daemon(config):
        with capture_logs() as logs:
            done = asyncio.Event()

            def broken_callback() -> None:
                done.set()
                raise ZeroDivisionError("division by zero")

            asyncio.get_running_loop().call_soon(broken_callback)
            await done.wait()
    events = [e for e in logs if e["event"] == "loop.unhandled_exception"]
    assert events and events[0]["error_type"] == "ZeroDivisionError"
    assert events[0]["log_level"] == "error"
    # The in-process daemon gave the loop its default handler back.
    assert asyncio.get_running_loop().get_exception_handler() is None
