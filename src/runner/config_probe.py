"""Validating a config in a child process, with a memory and a CPU-time limit.

A reload must never stall or kill the daemon, whatever the new file holds.
The YAML bounds of :mod:`runner.yaml_source` keep reading it finite, but a
file just under them can still cost a few hundred MiB, and validation runs
plugins' own option validators. So before the daemon reads a new config
itself, ``python -m runner.config_probe PATH`` validates it in a process of
its own, under ``RLIMIT_AS`` and ``RLIMIT_CPU``; the daemon waits for it
without blocking its event loop and kills it at the deadline. Only a config
that passed is then read by the daemon (in a thread).

The child prints one JSON line as its last line of output:
``{"problems": ["file:line: ...", ...]}``, empty when the config is valid.
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import signal
import sys
from pathlib import Path

__all__ = ["ProbeFailed", "probe"]

#: The address space the child may use (the daemon itself is not limited).
MEMORY_LIMIT = 1024 * 1024 * 1024
#: The child's work is bounded by CPU time (``timeout`` seconds of it); the
#: wall-clock deadline is this many times longer. On a loaded machine the child
#: gets a fraction of a core: a file a quiet machine refuses in 2.5 s for its
#: size took 8 s of wall clock at a load of 14, and a wall-clock limit alone
#: then refused it as "too slow" instead of saying what was wrong with it.
WALL_CLOCK_FACTOR = 3.0


class ProbeFailed(RuntimeError):
    """The config could not be validated within the limits; the message says which."""


async def probe(
    path: Path, timeout: float, memory: int = MEMORY_LIMIT, *, wall_clock: float | None = None
) -> list[str]:
    """The problems of the config at ``path`` (empty: valid), found by a child process.

    Raises:
        ProbeFailed: the child used ``timeout`` seconds of CPU (or
            :data:`WALL_CLOCK_FACTOR` times that of wall clock) or ``memory``
            bytes, or died. ``wall_clock`` overrides the wall-clock deadline.
    """
    wall_clock = timeout * WALL_CLOCK_FACTOR if wall_clock is None else wall_clock
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runner.config_probe",
        str(path),
        str(memory),
        str(max(1, math.ceil(timeout))),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), wall_clock)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ProbeFailed(f"validating the config took longer than {wall_clock:g}s") from None
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    if process.returncode == -signal.SIGXCPU:
        raise ProbeFailed(f"validating the config took longer than {timeout:g}s of CPU time")
    lines = out.decode("utf-8", "replace").strip().splitlines()
    try:
        problems = json.loads(lines[-1])["problems"]
    except (IndexError, ValueError, KeyError, TypeError):
        raise ProbeFailed(
            f"validating the config failed (exit {process.returncode}); it may need more "
            f"than {memory // 2**20} MiB"
        ) from None
    return [str(p) for p in problems]


def main(argv: list[str]) -> int:
    path, memory, cpu = argv[0], int(argv[1]), int(argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # SIGXCPU at the soft limit (the daemon names it), SIGKILL a second later.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    from runner.config import ConfigError, load_config

    try:
        load_config(path, keep_unloadable=True)
        problems: list[str] = []
    except ConfigError as exc:
        problems = [p.format(str(exc.path)) for p in exc.problems]
    except MemoryError:
        problems = [f"{path}: reading it needs more than {memory // 2**20} MiB"]
    except Exception as exc:  # a plugin's validator that raised something odd
        problems = [f"{path}: {type(exc).__name__}: {exc}"]
    print("\n" + json.dumps({"problems": problems}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
