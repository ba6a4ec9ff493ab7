"""Cluster members as real subprocesses (``runner serve CONFIG --member NAME``),
and what their logged runs tell: who ran which slot, and that none ran twice.

Every run a member makes is one ``job.finished`` line on its stdout, with
``member`` (and ``location``); a killed member's lines count up to its death.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers import RunnerProcess, wait_until

INTERVAL = 1.0


def started_at(event: dict[str, Any]) -> float:
    """When a logged run started: its finish (the line's time) less its duration."""
    finished = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
    return float(finished - event["duration_ms"] / 1000)


class Members:
    """The members of one cluster, each ``runner serve CONFIG --member NAME``."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.running: dict[str, RunnerProcess] = {}
        #: Every process started, including stopped and killed ones (their runs count).
        self.all: list[RunnerProcess] = []

    def start(
        self,
        name: str,
        *,
        wait: bool = True,
        location: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunnerProcess:
        where = ("--location", location) if location is not None else ()
        proc = RunnerProcess("serve", str(self.config), "--member", name, *where, env=env)
        self.running[name] = proc
        self.all.append(proc)
        if wait:
            proc.wait_for(event="daemon.started", timeout=30)
        return proc

    def start_all(self, *names: str, checks: int) -> float:
        """Start the members ``names`` and wait until each of the ``checks`` has
        run; returns a time after which every check has run (and runs on)."""
        for name in names:
            self.start(name)
        settled = time.time() + 1
        wait_until(lambda: len(owners_now(self, settled)) == checks, 20, "every check to run")
        return settled

    def runs(self) -> list[dict[str, Any]]:
        return [e for p in self.all for e in p.find(event="job.finished")]

    def runs_after(self, t: float) -> list[dict[str, Any]]:
        return [e for e in self.runs() if started_at(e) > t]

    def close(self) -> None:
        for proc in self.running.values():
            proc.kill()


def assert_no_slot_twice(runs: list[dict[str, Any]], interval: float = INTERVAL) -> None:
    by_job: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for event in runs:
        by_job[event["job"]].append((started_at(event), event.get("member", "?")))
    doubles = []
    for job, starts in by_job.items():
        starts.sort()
        for (a, ma), (b, mb) in itertools.pairwise(starts):
            if b - a < interval / 2:
                doubles.append((job, round(a, 3), ma, round(b, 3), mb))
    assert not doubles, f"runs of one job less than half an interval apart: {doubles[:10]}"


def owners_now(members: Members, since: float) -> dict[str, set[str]]:
    """Which members ran each job since ``since``."""
    seen: dict[str, set[str]] = defaultdict(set)
    for event in members.runs_after(since):
        seen[event["job"]].add(event["member"])
    return seen
