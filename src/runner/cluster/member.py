"""This daemon as a member of a cluster: its lease, and which checks it runs.

One task (:meth:`ClusterMember._run`) renews the member's lease every
lease/3 and, in the same transaction, reads who is live and who owns what.
From that it computes which checks this member should run
(:func:`runner.cluster.ownership.owners`), then:

- stops checks the database says another member now owns (this member was
  paused or cut off past its lease);
- releases checks another member should now run (it joined, or holds a
  newer definition): stopped here first, then released, so two members
  never run one check;
- takes the checks it should run that have no owner, or whose owner's
  membership expired (killed), and starts each at its first slot after the
  last one its previous owner ran.

Nothing of this is on the path of a run: a run asks only :meth:`may_run`,
a comparison with the end of the lease the last renewal confirmed. A
process paused past its lease (SIGSTOP, a VM frozen) wakes with that time
passed, so it holds every run until a renewal says what it still owns.

When the database cannot be reached, the member keeps running the checks it
owns (a monitor must not go blind because its database did) and takes no
other; once it is back, it takes no expired member's checks for one lease,
so members that were cut off too have renewed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runner import __version__
from runner.cluster import ClusterRefused
from runner.cluster.ownership import owners
from runner.cluster.store import (
    TAKEOVER_SHARE,
    ClusterStore,
    MemberLost,
    MemberRow,
    MemberTaken,
    digest_of,
)
from runner.log import get_logger
from runner.model import Health, Job, JobState
from runner.pings import Ping, PingedCheck, PingKind

if TYPE_CHECKING:
    from runner.alerts import AlertSink
    from runner.config import Config
    from runner.history import HistorySink
    from runner.results import ResultHub
    from runner.scheduler import Scheduler

__all__ = ["ClusterMember", "ClusterRefused", "default_member_name"]

#: Connecting and each statement at start.
CONNECT_TIMEOUT = 10.0
#: How long a stopped check's in-flight run gets to end when it moves.
MOVE_GRACE = 5.0
#: A renewal confirms the lease for this share of it, measured from when the
#: renewal was sent; the others may take the checks after TAKEOVER_SHARE of it,
#: measured from when the renewal arrived (later). A paused member's runs
#: have stopped before anyone takes its checks.
CONFIRMED_SHARE = 0.9
assert CONFIRMED_SHARE < TAKEOVER_SHARE


def default_member_name(environ: Mapping[str, str] | None = None) -> str:
    """``RUNNER_MEMBER``, else the host name."""
    env = os.environ if environ is None else environ
    return env.get("RUNNER_MEMBER") or socket.gethostname()


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClusterMember:
    """Joins the cluster, and starts and stops this member's share of the checks."""

    def __init__(
        self,
        config: Config,
        name: str,
        scheduler: Scheduler,
        hub: ResultHub,
        *,
        history: HistorySink | None,
        alerts: AlertSink | None,
        on_lost: Callable[[str], None],
        location: str | None = None,
    ) -> None:
        assert config.cluster is not None and config.history.url is not None
        self.name = name
        #: Where this member is (``--location``); None: nowhere in particular.
        self.location = location
        self.cluster = config.cluster_name or ""
        self.lease = config.cluster.lease
        self.renew_every = self.lease / 3
        self.incarnation = uuid.uuid4().hex
        self.url = config.history.url
        self.store = ClusterStore(self.url, self.cluster, name, self.incarnation, location)
        self.scheduler = scheduler
        self.hub = hub
        self.history = history
        self.alerts = alerts
        self._on_lost = on_lost
        self._jobs: dict[str, Job] = {j.name: j for j in config.checks}
        #: The checks this member can run, each with its location here ('': anywhere).
        self._units = self._units_of(self._jobs.values())
        #: Checks this member owns and runs.
        self.owned: set[str] = set()
        #: Checks owned in the database but stopped here by a reload (restarted
        #: by the next cycle if still this member's), with their last slot.
        self._paused: dict[str, float | None] = {}
        #: The loop time until which the last renewal confirmed the lease.
        self.confirmed_until = -math.inf
        self.store_up = True
        #: No expired member's checks are taken before this loop time.
        self._takeover_after = 0.0
        #: The last renewal's view: live members (for metrics and runner cluster).
        self.members: list[MemberRow] = []
        #: The locations of the live members, and of every member not gone
        #: cleanly (``locations: all``: a killed member's location is unknown,
        #: not gone).
        self.live_locations: frozenset[str] = frozenset()
        self.known_locations: frozenset[str] = frozenset()
        self._digests: dict[str, str] = {}
        self._definitions: dict[str, dict[str, str]] = {}
        self._first_seen: dict[tuple[str, str], float] = {}
        self._owners_key: tuple[Any, ...] | None = None
        self._owners: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None
        #: Pings being kept for another member, and the taking of pings kept for this one.
        self._relaying: set[asyncio.Task[None]] = set()
        self._taking: asyncio.Task[None] | None = None
        #: The digest of this member's job definitions, and of those the database has.
        self._digest = digest_of(self._my_definitions().items())
        self._published = ""
        #: The scheduler's count of held runs at the last cycle.
        self._held = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = get_logger().bind(cluster=self.cluster, member=name)

    # ---------------------------------------------------------------- lifetime

    def _my_definitions(self) -> dict[str, str]:
        return {name: job.definition for name, job in self._jobs.items()}

    def _units_of(self, jobs: Iterable[Job]) -> dict[str, str]:
        """Each check this member can run, and its location here: '' for a
        check that runs anywhere, this member's location for a check with
        ``locations:`` that lists it (or all); not those that do not."""
        units = {}
        for job in jobs:
            if job.locations is None:
                units[job.name] = ""
            elif self.location is not None and (
                job.runs_everywhere or self.location in job.locations
            ):
                units[job.name] = self.location
        return units

    async def join(self) -> None:
        """Hold the member name (before anything else starts), or raise
        :class:`ClusterRefused` with why."""
        from runner.history.postgres import redact

        try:
            await self.store.open(CONNECT_TIMEOUT)
        except Exception as exc:
            await self.store.close()
            raise ClusterRefused(
                f"cannot reach the cluster's database {redact(self.url)}: "
                f"{str(exc) or type(exc).__name__}"
            ) from None
        definitions = self._my_definitions()
        self._published = self._digest
        try:
            await self.store.join(
                host=socket.gethostname(),
                pid=os.getpid(),
                version=__version__,
                lease=self.lease,
                digest=self._published,
                definitions=definitions,
                units=self._units,
                alive=_alive,
            )
        except MemberTaken as exc:
            await self.store.close()
            raise ClusterRefused(str(exc)) from None
        except Exception as exc:
            await self.store.close()
            raise ClusterRefused(
                f"cannot join cluster {self.cluster!r}: {str(exc) or type(exc).__name__}"
            ) from None
        self._loop = asyncio.get_running_loop()
        self.confirmed_until = self._loop.time() + self.lease * CONFIRMED_SHARE
        self._log.info(
            "cluster.joined",
            lease_s=self.lease,
            incarnation=self.incarnation,
            **({"location": self.location} if self.location is not None else {}),
        )

    async def begin(self) -> None:
        """Take this member's first share (before READY), then keep renewing."""
        delay = await self._cycle_guarded()
        self._task = asyncio.create_task(self._run(delay), name="cluster:member")

    async def stop(self) -> None:
        """A clean stop: stop the checks here, then release them at once, so the
        others take them over without waiting for the lease to expire."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=CONNECT_TIMEOUT)
            self._task = None
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.terminate()
        pending = [t for t in (self._taking, *self._relaying) if t is not None]
        if pending:  # a relayed ping is written before the store closes
            await asyncio.wait(pending, timeout=CONNECT_TIMEOUT)
        async with self._lock:
            slots = await self._stop_here(self.owned)
            slots.update(self._paused)
            self._paused.clear()
            await self._flush()  # the next owner reads the jobs' states
            try:
                await asyncio.wait_for(self.store.leave(slots), CONNECT_TIMEOUT)
                self._log.info("cluster.left", released=len(slots))
            except Exception as exc:
                self._log.warning(
                    "cluster.leave_failed",
                    error=str(exc) or type(exc).__name__,
                    hint="the other members take these checks when the lease expires",
                )
        await self.store.close()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def may_run(self) -> bool:
        """Whether a scheduled run may start now (the scheduler's gate)."""
        assert self._loop is not None  # (kept: get_running_loop() is a getpid() on 3.11)
        return not self.store_up or self._loop.time() < self.confirmed_until

    async def apply(self, config: Config) -> None:
        """A reload: the checks of ``config`` (changed ones already stopped
        here by the caller), published so the cluster moves them."""
        async with self._lock:
            old = self._jobs
            self._jobs = {j.name: j for j in config.checks}
            self._units = self._units_of(self._jobs.values())
            self._digest = digest_of(self._my_definitions().items())
            for name in list(self.owned):
                handle = self.scheduler.handles.get(name)
                if handle is None:  # stopped by the reload (changed or removed)
                    self.owned.discard(name)
                    self._paused[name] = None
            if self._my_definitions() != {n: j.definition for n, j in old.items()}:
                try:
                    await self._publish()
                except Exception as exc:  # published by the next renewal that reaches it
                    self._unreachable(exc)
        self._wake.set()

    async def _publish(self) -> None:
        digest = self._digest
        await self.store.publish(digest, self._my_definitions(), self._units)
        self._published = digest

    # ---------------------------------------------------------------- pings

    def relay_ping(self, job: str, ping: Ping) -> bool:
        """A ping for a pinged check (heartbeat) of this config that another
        member runs: kept in the database for it. False for no such check."""
        found = self._jobs.get(job)
        if found is None or not issubclass(found.plugin, PingedCheck):
            return False
        task = asyncio.create_task(self._relay(job, ping), name="cluster:relay-ping")
        self._relaying.add(task)
        task.add_done_callback(self._relaying.discard)
        return True

    async def _relay(self, job: str, ping: Ping) -> None:
        try:
            await self.store.relay_ping(
                job, ping.kind.value, ping.at, ping.exit_status, ping.body, ping.truncated
            )
        except Exception as exc:
            self._log.error("cluster.ping_lost", job=job, error=str(exc) or type(exc).__name__)

    def _pings_wait(self) -> None:
        if self._taking is None or self._taking.done():
            self._taking = asyncio.create_task(self._take_pings(), name="cluster:take-pings")

    async def _take_pings(self) -> None:
        """Hand the pings other members kept for this member's pinged checks to them."""
        pinged = [
            name
            for name in self.owned
            if name in self._jobs and issubclass(self._jobs[name].plugin, PingedCheck)
        ]
        if not pinged:
            return
        try:
            waiting = await self.store.take_pings(pinged)
        except Exception as exc:
            self._log.debug("cluster.pings_unread", error=str(exc))
            return
        for job, kind, at, exit_status, body, truncated in waiting:
            self.scheduler.ping(job, Ping(PingKind(kind), at, exit_status, body, truncated))

    def last_slots(self, names: Iterable[str]) -> dict[str, float | None]:
        """The wall-clock due time of each check's last run (None: none, or not
        a calendar schedule)."""
        out: dict[str, float | None] = {}
        for name in names:
            handle = self.scheduler.handles.get(name)
            ticker = handle.ticker if handle is not None else None
            due = ticker.last_due if ticker is not None else None
            out[name] = due if ticker is not None and ticker.schedule.wall_clock else None
        return out

    # ---------------------------------------------------------------- the cycle

    async def _listen(self) -> None:
        """(Re)open the connection that hears the hints (it dies with the server)."""
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None
        try:
            self._listener = await self.store.listen(self._wake.set, self._pings_wait)
        except Exception as exc:  # only a hint: renewals go on without it
            self._log.debug("cluster.listen_failed", error=str(exc))

    async def _run(self, delay: float) -> None:
        while not self._stopping:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
            # cancellation that lands as the event is set, and the stop hung
            # (bench/README.md, issue 21).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            # Cleared before the cycle, not after: a hint that comes during it
            # (a member leaving) makes the next cycle at once, not a renewal later.
            self._wake.clear()
            delay = await self._cycle_guarded()

    async def _cycle_guarded(self) -> float:
        try:
            async with self._lock:
                return await self._cycle()
        except MemberLost:
            self._log.error(
                "cluster.member_taken",
                hint="another daemon joined with this member's name while this one was "
                "cut off; this one stops",
            )
            await self._stop_here(self.owned)
            self._on_lost("another daemon took this member's name")
            return math.inf
        except Exception as exc:
            self._unreachable(exc)
            return self.renew_every

    def _unreachable(self, exc: BaseException) -> None:
        if self.store_up:
            self.store_up = False
            self._log.error(
                "cluster.store_unreachable",
                error=str(exc) or type(exc).__name__,
                error_type=type(exc).__name__,
                hint="this member keeps running its checks and takes no others until it is back",
                owned=len(self.owned),
            )

    async def _cycle(self) -> float:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        async with asyncio.timeout(self.renew_every):  # (not wait_for: see _run)
            snapshot = await self.store.renew(self.lease, len(self.owned), self._digests)
        if not self.store_up:
            self.store_up = True
            self._takeover_after = sent + self.lease
            self._log.info("cluster.store_back", owned=len(self.owned))
        if self._published != self._digest:
            await self._publish()  # a reload while the store was unreachable
        if self._listener is None or self._listener.is_closed():
            await self._listen()
        now = snapshot.now
        live = {m.name: m for m in snapshot.members if m.live(now)}
        self.members = sorted(live.values(), key=lambda m: m.name)
        self.live_locations = frozenset(m.location for m in live.values() if m.location)
        self.known_locations = frozenset(
            m.location for m in snapshot.members if m.location and m.left_at is None
        )
        for name, held in snapshot.definitions.items():
            self._definitions[name] = held
            self._digests[name] = live[name].config_digest if name in live else ""
        for name in list(self._definitions):
            if name not in live:
                del self._definitions[name]
                self._digests.pop(name, None)
        if snapshot.first_seen is not None:
            self._first_seen = snapshot.first_seen
        key = tuple(sorted((m.name, m.incarnation, m.config_digest) for m in live.values()))
        if key != self._owners_key:
            where = {m.name: m.location for m in live.values()}
            self._owners = owners(self._units, self._definitions, self._first_seen, where)
            self._owners_key = key

        mine = {
            job
            for (job, _location), row in snapshot.jobs.items()
            if row.owner == self.name and row.incarnation == self.incarnation
        }
        lost = self.owned - mine
        if lost:
            # Paused or cut off past the lease: another member runs these now.
            await self._stop_here(lost)
            self._log.warning("cluster.checks_lost", count=len(lost), jobs=sorted(lost)[:10])
        for name in set(self._paused) - mine:
            del self._paused[name]
        self.confirmed_until = sent + self.lease * CONFIRMED_SHARE
        newly_held = self.scheduler.held - self._held
        if newly_held:
            self._held = self.scheduler.held
            self._log.warning(
                "cluster.runs_held",
                count=newly_held,
                hint="runs were due while this member's lease was not confirmed "
                "(the process was paused, or its event loop blocked past the lease)",
            )

        # Give away what another member should run (stopped here first).
        give = {job for job in mine if self._owners.get(job) != self.name}
        if give:
            slots = await self._stop_here(give & self.owned)
            for job in give & set(self._paused):
                slots[job] = self._paused.pop(job)
            await self._flush()
            await self.store.release(slots)
            self._log.info("cluster.released", count=len(give), jobs=sorted(give)[:10])

        # Start again what a reload stopped and is still this member's.
        keep = {job: slot for job, slot in self._paused.items() if job in mine and job not in give}
        if keep:
            for job in keep:
                del self._paused[job]
            await self._start_here(keep)

        # Take what this member should run and nobody live holds.
        expired_too = sent >= self._takeover_after
        want = []
        for job, owner in self._owners.items():
            place = self._units.get(job)  # None: a reload removed it since the owners were computed
            if owner != self.name or job in mine or place is None:
                continue
            row = snapshot.jobs.get((job, place))
            if row is None:
                continue
            holder = live.get(row.owner) if row.owner is not None else None
            if holder is not None and holder.incarnation == row.incarnation:
                continue  # it gives the job away when it sees this member
            if row.owner is not None and not expired_too:
                continue
            want.append(job)
        if want:
            definitions = {job: self._jobs[job].definition for job in want}
            units = {job: self._units[job] for job in want}
            taken = await self.store.acquire(units, definitions, expired_too=expired_too)
            if taken:
                await self._start_here(taken)
                self._log.info("cluster.taken", count=len(taken), jobs=sorted(taken)[:10])

        # Pings kept while no hint arrived (or before this member took the check).
        self._pings_wait()

        # Wake when the first other member's lease ends: its checks are then free.
        delay = self.renew_every
        for member in live.values():
            if member.name != self.name:
                delay = min(delay, max(member.expires_at - now, 0.0) + 0.01)
        return delay

    async def _flush(self) -> None:
        """Write the results so far, so the next owner of a check reads its state."""
        if self.history is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.history.flush(), CONNECT_TIMEOUT)

    async def _stop_here(self, names: Iterable[str]) -> dict[str, float | None]:
        names = set(names)
        slots = self.last_slots(names)
        self.owned -= names
        await self.scheduler.stop(names, grace=MOVE_GRACE)
        for name in names:
            self.hub.forget(name)
        return slots

    async def _start_here(self, taken: Mapping[str, float | None]) -> None:
        """Start checks this member took, each from its stored state and at its
        first slot after ``taken[job]`` (the last one run before)."""
        jobs = [self._jobs[name] for name in taken if name in self._jobs]
        await self._seed(jobs)
        for job in jobs:
            if job.name in self.scheduler.handles:
                continue
            self.scheduler.start(job, not_before=taken[job.name])
            self.owned.add(job.name)

    async def _seed(self, jobs: list[Job]) -> None:
        """The taken checks' states as their previous owner stored them, made to
        agree with the alert ledger: an incident it told of goes on here, so
        its recovery is told once and the incident is not told again."""
        located = [j for j in jobs if j.locations is not None]
        if located:
            await self._seed_locations(located)
        jobs = [j for j in jobs if j.locations is None]
        if self.history is None or not jobs:
            return
        recent = {j.name: j.thresholds.window for j in jobs if j.thresholds.window}
        by_name = {j.name: j for j in jobs}
        loaded = await self.history.load_states(recent, by_name)
        stored = {s.job: s for s in loaded if s.job in by_name}
        told: Mapping[tuple[str, str], Any] = {}
        if self.alerts is not None:
            told = await self.alerts.adopt(by_name)
        for (name, _notifier), sent in told.items():
            if sent.event not in ("down", "reminder"):
                continue
            # An incident the ledger holds and the stored state lacks (its owner
            # died before its state was written): it goes on here.
            state = stored.get(name)
            episode = sent.episode if sent.episode is not None else sent.sent_at
            if state is None:
                job = by_name[name]
                stored[name] = JobState(
                    job=name,
                    plugin=job.plugin_name,
                    kind=job.kind,
                    state=Health.FAILING,
                    since=episode,
                    down=True,
                    down_since=episode,
                )
            elif not state.down:
                stored[name] = replace(state, down=True, down_since=episode)
        seeded = list(stored.values())
        self.hub.seed(seeded)

    async def _seed_locations(self, jobs: list[Job]) -> None:
        """A check with ``locations:`` taken over in this location goes on
        from this location's state as its previous member stored it (its
        alerts are the quorum's: runner.cluster.quorum)."""
        try:
            latest, _ = await self.store.read_locations([j.name for j in jobs])
        except Exception as exc:  # it starts from unknown, as a new check would
            self._log.warning("cluster.location_state_unread", error=str(exc) or type(exc).__name__)
            return
        seeded = []
        for job in jobs:
            row = latest.get(job.name, {}).get(self.location or "")
            if row is None:
                continue
            seeded.append(
                JobState(
                    job=job.name,
                    plugin=job.plugin_name,
                    kind=job.kind,
                    state=Health.OK if row.status == "ok" else Health.FAILING,
                    since=row.since,
                    consecutive_ok=row.consecutive_ok,
                    consecutive_not_ok=row.consecutive_not_ok,
                    down=row.down,
                    down_since=row.down_since,
                    recent_codes=row.recent_codes,
                )
            )
        self.hub.seed(seeded)
