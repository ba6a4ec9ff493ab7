"""The garbage collector, tuned for a daemon that holds thousands of jobs.

CPython's cyclic collector stops the event loop while it runs, and a full
(generation 2) collection walks every tracked object in the process. At
10,000 jobs that is about 600,000 objects (each job's config, plugin, task,
timer and state, plus every imported module) and 180-280 ms of a stopped
loop, every few seconds: checks then start that late (bench/README.md,
"Garbage collection").

Two measures, both only in ``runner serve`` (a long-running process; ``runner
run`` and tests keep Python's defaults):

* :func:`tune` makes young collections smaller and full ones rarer.
* :func:`settle` runs a second after the jobs have started (after READY, so
  not in the way of start-up), and again after each reload.
  It collects, then moves every object still alive (modules, the config, the
  plugins, the services' tasks, the checks' tickers: what lives as long as
  the daemon) into the permanent generation with :func:`gc.freeze`, which no
  later collection walks. A full collection then costs what the short-lived objects cost (at
  10,000 jobs about 50 ms instead of 250).

Frozen objects are still freed by reference counting as usual; only garbage
*cycles* among them would wait. That is why :func:`settle` unfreezes and
collects first: a reload turns the previous config's jobs into garbage, and
that garbage is collected then, so what stays frozen never grows with the
number of reloads.
"""

from __future__ import annotations

import atexit
import gc
import time

from runner.log import get_logger

#: Python's default is (700, 10, 10). A daemon keeps, per job, a state and a
#: record that live one interval: at 10,000 jobs x 1 s they are tens of
#: thousands of young objects that outlive the young collections. With the
#: default first threshold those collections came seldom and big (up to 40 ms,
#: the p99 of the gaps between runs); with 200 they come often and small
#: (under 1 ms), and with 5 the middle one too. 1000 keeps full collections
#: (30-40 ms at 10,000 jobs, the frozen heap aside) to one per half minute
#: there (bench/README.md, "Garbage collection thresholds").
THRESHOLDS = (200, 5, 1000)


def tune() -> None:
    """Set the collector's thresholds for a long-running daemon."""
    gc.set_threshold(*THRESHOLDS)


def settle(reason: str) -> None:
    """Collect, then keep every surviving object out of later collections."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    get_logger().debug(
        "heap.settled",
        reason=reason,
        collected=collected,
        frozen=gc.get_freeze_count(),
        pause_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def exit_without_a_last_walk() -> None:
    """At the interpreter's exit, leave what is alive out of the collector's
    last pass (``runner run``, whose exit is part of its time): that pass
    walks every object of a heap that holds Playwright and the config, 0.2 to
    0.35 s at the end of a `runner run` of page checks, 60-70 ms after a bare
    ``import playwright.async_api`` and 10 ms with this (bench/README.md,
    "Issue 23"). Memory is the system's to take back either way; only
    finalizers of garbage cycles still alive then do not run, which Python
    never promised at exit.
    """
    atexit.register(gc.freeze)
