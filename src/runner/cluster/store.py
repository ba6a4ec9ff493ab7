"""The cluster's state in the PostgreSQL the members share for history.

Three tables, next to history's (``runner_`` prefix, one set for every
cluster in the database):

``runner_cluster_members``
    one row per member name: the process holding it (``incarnation``, a
    random id per start; host and pid), until when it holds it
    (``expires_at``, renewed every lease/3), whether it left cleanly
    (``left_at``), its config's digest and its jobs' definitions.
``runner_cluster_jobs``
    one row per job, or per job and location for a check with
    ``locations:`` (``location`` is '' for a check that runs anywhere): its
    owner (member and incarnation) or NULL, and the last slot the previous
    owner ran (``last_slot``).
``runner_cluster_definitions``
    when each definition of a job was first seen in the cluster: when
    members disagree (a reload rolled out host by host), the newest wins.
``runner_cluster_locations``
    for a check with ``locations:``, each location's latest result and that
    location's state (runner.cluster.quorum decides the check's from them).
``runner_cluster_incidents``
    whether each such check is down, and since when: the member whose
    conditional ``UPDATE`` changes it sends the alert, so it is sent once.
``runner_cluster_pings``
    heartbeat pings a member received for a check another member runs,
    until that member takes them (``NOTIFY runner_cluster_ping`` wakes it).

Every time is the database's (``clock_timestamp()``), so the members'
clocks do not decide who holds what. Ownership changes by conditional
``UPDATE``s that only one member can win (a job is taken only while its
owner's membership has expired, or it has none); no statement runs per
check run. ``NOTIFY runner_cluster`` after a change is only a hint that
wakes the other members early.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "ClusterStore",
    "Incident",
    "JobRow",
    "LocationRow",
    "MemberRow",
    "MemberTaken",
    "Snapshot",
]

#: The channel of the wake-up hint.
CHANNEL = "runner_cluster"
#: The channel that says a heartbeat ping waits for its job's owner.
PING_CHANNEL = "runner_cluster_ping"
NOW = "extract(epoch from clock_timestamp())"
#: A member's checks may be taken by the others this share of its lease after
#: its last renewal (``expires_at``); it holds every run itself from
#: ``member.CONFIRMED_SHARE`` of it on, so a killed member's checks run elsewhere
#: within the lease and one interval, the takeover's own time included.
TAKEOVER_SHARE = 0.95
#: Serialises creating the tables (history's migrations take another lock).
_SCHEMA_LOCK = 0x72756E63  # "runc"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runner_cluster_members (
        cluster TEXT NOT NULL,
        member TEXT NOT NULL,
        incarnation TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        version TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        renewed_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        left_at DOUBLE PRECISION,
        config_digest TEXT NOT NULL,
        definitions TEXT NOT NULL,
        owned INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (cluster, member)
    )""",
    # Where the member is (--location); NULL: nowhere in particular.
    "ALTER TABLE runner_cluster_members ADD COLUMN IF NOT EXISTS location TEXT",
    # Keyed by (cluster, job, location) through the unique index below: a table
    # made before locations had (cluster, job) as its primary key, dropped here.
    """CREATE TABLE IF NOT EXISTS runner_cluster_jobs (
        cluster TEXT NOT NULL,
        job TEXT NOT NULL,
        location TEXT NOT NULL DEFAULT '',
        owner TEXT,
        incarnation TEXT,
        definition TEXT,
        acquired_at DOUBLE PRECISION,
        last_slot DOUBLE PRECISION
    )""",
    "ALTER TABLE runner_cluster_jobs ADD COLUMN IF NOT EXISTS location TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE runner_cluster_jobs DROP CONSTRAINT IF EXISTS runner_cluster_jobs_pkey",
    "CREATE UNIQUE INDEX IF NOT EXISTS runner_cluster_units "
    "ON runner_cluster_jobs (cluster, job, location)",
    """CREATE TABLE IF NOT EXISTS runner_cluster_locations (
        cluster TEXT NOT NULL,
        job TEXT NOT NULL,
        location TEXT NOT NULL,
        member TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT,
        finished_at DOUBLE PRECISION NOT NULL,
        duration_ms DOUBLE PRECISION NOT NULL,
        since DOUBLE PRECISION,
        down BOOLEAN NOT NULL,
        down_since DOUBLE PRECISION,
        consecutive_ok BIGINT NOT NULL,
        consecutive_not_ok BIGINT NOT NULL,
        recent_codes TEXT NOT NULL,
        PRIMARY KEY (cluster, job, location)
    )""",
    """CREATE TABLE IF NOT EXISTS runner_cluster_incidents (
        cluster TEXT NOT NULL,
        job TEXT NOT NULL,
        down BOOLEAN NOT NULL,
        down_since DOUBLE PRECISION,
        changed_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (cluster, job)
    )""",
    """CREATE TABLE IF NOT EXISTS runner_cluster_pings (
        id BIGSERIAL PRIMARY KEY,
        cluster TEXT NOT NULL,
        job TEXT NOT NULL,
        kind TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        exit_status INTEGER,
        body BYTEA NOT NULL,
        truncated BOOLEAN NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS runner_cluster_definitions (
        cluster TEXT NOT NULL,
        job TEXT NOT NULL,
        definition TEXT NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (cluster, job, definition)
    )""",
]


class MemberTaken(Exception):
    """Another live process holds this member name."""

    def __init__(self, member: str, host: str, pid: int, expires_in: float) -> None:
        super().__init__(
            f"member {member!r} is already running (pid {pid} on {host}, lease for another "
            f"{max(expires_in, 0):.1f}s): give each daemon its own name with --member NAME "
            "(or RUNNER_MEMBER)"
        )


class MemberLost(Exception):
    """This process no longer holds its member name: another process took it."""


@dataclass(frozen=True, slots=True)
class MemberRow:
    name: str
    incarnation: str
    host: str
    pid: int
    version: str
    started_at: float
    renewed_at: float
    expires_at: float
    left_at: float | None
    config_digest: str
    owned: int
    location: str | None = None

    def live(self, now: float) -> bool:
        return self.left_at is None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class JobRow:
    owner: str | None
    incarnation: str | None
    last_slot: float | None


@dataclass(frozen=True, slots=True)
class LocationRow:
    """A location's latest result of a check with ``locations:``, and that
    location's state (as its member's hub had it after the result)."""

    location: str
    member: str
    status: str
    message: str | None
    finished_at: float
    duration_ms: float
    since: float | None
    down: bool
    down_since: float | None
    consecutive_ok: int
    consecutive_not_ok: int
    recent_codes: str


@dataclass(frozen=True, slots=True)
class Incident:
    """Whether a check with ``locations:`` is down (its quorum of locations
    failed), and since when."""

    down: bool
    down_since: float | None


@dataclass
class Snapshot:
    """The cluster as one renewal read it."""

    #: The database's clock at the read.
    now: float
    members: list[MemberRow]
    #: By (job, location); location '' for a check that runs anywhere.
    jobs: dict[tuple[str, str], JobRow]
    #: Definitions of the members whose digest the caller did not know, by member.
    definitions: dict[str, dict[str, str]] = field(default_factory=dict)
    #: When each (job, definition) was first seen; only when ``definitions`` is not empty.
    first_seen: dict[tuple[str, str], float] | None = None


class ClusterStore:
    """The cluster's statements, on a small pool of its own (history's writes
    never delay a renewal)."""

    def __init__(
        self, url: str, cluster: str, member: str, incarnation: str, location: str | None = None
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.member = member
        self.incarnation = incarnation
        self.location = location
        self._pool: asyncpg.Pool | None = None

    async def open(self, timeout: float) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self.url, min_size=1, max_size=2, timeout=timeout, command_timeout=timeout
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            for statement in SCHEMA:
                await conn.execute(statement)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction. After a failure the pool's connections
        are replaced (the server may have restarted under them); a lost member
        name is not such a failure."""
        pool = self._ready()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except MemberLost:
            raise
        except BaseException:
            await self._reset()
            raise

    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConnectionError("the cluster store is closed")
        return self._pool

    async def _reset(self) -> None:
        """After a failure: new connections next time (the server may have restarted)."""
        if self._pool is not None:
            self._pool.expire_connections()

    # ---------------------------------------------------------------- membership

    async def join(
        self,
        *,
        host: str,
        pid: int,
        version: str,
        lease: float,
        digest: str,
        definitions: Mapping[str, str],
        units: Mapping[str, str],
        alive: Any,
    ) -> None:
        """Hold the member name, or raise :class:`MemberTaken`.

        A name held by a live incarnation is refused, unless that incarnation
        is a process of this host that ``alive(pid)`` says is gone (a daemon
        killed and restarted within its lease)."""
        async with self._transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.cluster)
            row = await conn.fetchrow(
                f"SELECT host, pid, expires_at - {NOW} AS left, left_at FROM "
                "runner_cluster_members WHERE cluster = $1 AND member = $2",
                self.cluster,
                self.member,
            )
            live = row is not None and row["left_at"] is None and row["left"] > 0
            if live and (row["host"] != host or alive(row["pid"])):
                raise MemberTaken(self.member, row["host"], row["pid"], row["left"])
            await conn.execute(
                "INSERT INTO runner_cluster_members (cluster, member, incarnation, host, pid, "
                "version, started_at, renewed_at, expires_at, left_at, config_digest, "
                f"definitions, location) VALUES ($1, $2, $3, $4, $5, $6, {NOW}, {NOW}, "
                f"{NOW} + $7 * {TAKEOVER_SHARE}, NULL, $8, $9, $10) "
                "ON CONFLICT (cluster, member) DO UPDATE SET "
                "incarnation = excluded.incarnation, host = excluded.host, pid = excluded.pid, "
                "version = excluded.version, started_at = excluded.started_at, "
                "renewed_at = excluded.renewed_at, expires_at = excluded.expires_at, "
                "left_at = NULL, config_digest = excluded.config_digest, "
                "definitions = excluded.definitions, owned = 0, location = excluded.location",
                self.cluster,
                self.member,
                self.incarnation,
                host,
                pid,
                version,
                lease,
                digest,
                json.dumps(dict(definitions)),
                self.location,
            )
            await self._add_definitions(conn, definitions, units)
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.cluster)

    async def publish(
        self, digest: str, definitions: Mapping[str, str], units: Mapping[str, str]
    ) -> None:
        """A reload: this member's jobs and their definitions are now ``definitions``."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE runner_cluster_members SET config_digest = $4, definitions = $5 "
                "WHERE cluster = $1 AND member = $2 AND incarnation = $3",
                self.cluster,
                self.member,
                self.incarnation,
                digest,
                json.dumps(dict(definitions)),
            )
            await self._add_definitions(conn, definitions, units)
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.cluster)

    async def _add_definitions(
        self, conn: asyncpg.Connection, definitions: Mapping[str, str], units: Mapping[str, str]
    ) -> None:
        """Note the definitions, and make a row for each job this member can
        run (``units``: the job's location there, '' for anywhere)."""
        jobs, defs = list(definitions), list(definitions.values())
        await conn.execute(
            "INSERT INTO runner_cluster_definitions (cluster, job, definition, first_seen) "
            f"SELECT $1, j, d, {NOW} FROM unnest($2::text[], $3::text[]) AS t(j, d) "
            "ON CONFLICT DO NOTHING",
            self.cluster,
            jobs,
            defs,
        )
        await conn.execute(
            "INSERT INTO runner_cluster_jobs (cluster, job, location) SELECT $1, j, l FROM "
            "unnest($2::text[], $3::text[]) AS t(j, l) ON CONFLICT DO NOTHING",
            self.cluster,
            list(units),
            list(units.values()),
        )

    async def renew(self, lease: float, owned: int, known: Mapping[str, str]) -> Snapshot:
        """Extend this member's lease and read the cluster (members, owners).

        ``known``: the config digest of each member whose definitions the
        caller holds; the others' definitions are read too.
        Raises :class:`MemberLost` when another process took the name.
        """
        async with self._transaction() as conn:
            now = await conn.fetchval(
                f"UPDATE runner_cluster_members SET renewed_at = {NOW}, "
                f"expires_at = {NOW} + $4 * {TAKEOVER_SHARE}, owned = $5 "
                "WHERE cluster = $1 AND member = $2 AND incarnation = $3 RETURNING renewed_at",
                self.cluster,
                self.member,
                self.incarnation,
                lease,
                owned,
            )
            if now is None:
                raise MemberLost(self.member)
            members = [
                _member(r)
                for r in await conn.fetch(
                    f"SELECT {MEMBER_COLUMNS} FROM runner_cluster_members WHERE cluster = $1",
                    self.cluster,
                )
            ]
            jobs = {
                (r["job"], r["location"]): JobRow(r["owner"], r["incarnation"], r["last_slot"])
                for r in await conn.fetch(
                    "SELECT job, location, owner, incarnation, last_slot FROM runner_cluster_jobs "
                    "WHERE cluster = $1",
                    self.cluster,
                )
            }
            snapshot = Snapshot(float(now), members, jobs)
            unknown = [
                m.name
                for m in members
                if m.live(snapshot.now) and known.get(m.name) != m.config_digest
            ]
            if unknown:
                for r in await conn.fetch(
                    "SELECT member, definitions FROM runner_cluster_members "
                    "WHERE cluster = $1 AND member = ANY($2::text[])",
                    self.cluster,
                    unknown,
                ):
                    snapshot.definitions[r["member"]] = json.loads(r["definitions"])
                snapshot.first_seen = {
                    (r["job"], r["definition"]): float(r["first_seen"])
                    for r in await conn.fetch(
                        "SELECT job, definition, first_seen FROM runner_cluster_definitions "
                        "WHERE cluster = $1",
                        self.cluster,
                    )
                }
            return snapshot

    # ---------------------------------------------------------------- ownership

    async def acquire(
        self, units: Mapping[str, str], definitions: Mapping[str, str], *, expired_too: bool
    ) -> dict[str, float | None]:
        """Take the jobs among ``units`` (each with its location here, '' for
        anywhere) that have no owner, or (``expired_too``) whose owner's
        membership has expired. Returns each job taken and the last slot its
        previous owner ran."""
        if not units:
            return {}
        jobs = list(units)
        free = "j.owner IS NULL"
        if expired_too:
            free += (
                " OR NOT EXISTS (SELECT 1 FROM runner_cluster_members m WHERE "
                "m.cluster = j.cluster AND m.member = j.owner AND m.incarnation = j.incarnation "
                f"AND m.left_at IS NULL AND m.expires_at > {NOW})"
            )
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "UPDATE runner_cluster_jobs AS j SET owner = $2, incarnation = $3, "
                f"definition = t.d, acquired_at = {NOW} "
                "FROM unnest($4::text[], $5::text[], $6::text[]) AS t(job, d, l) "
                f"WHERE j.cluster = $1 AND j.job = t.job AND j.location = t.l AND ({free}) "
                "RETURNING j.job, j.last_slot",
                self.cluster,
                self.member,
                self.incarnation,
                jobs,
                [definitions[j] for j in jobs],
                [units[j] for j in jobs],
            )
            if rows:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.cluster)
        return {r["job"]: r["last_slot"] for r in rows}

    async def release(self, last_slots: Mapping[str, float | None]) -> None:
        """Give up jobs this incarnation owns, noting the last slot each ran."""
        if last_slots:
            async with self._transaction() as conn:
                await self._release(conn, last_slots)
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.cluster)

    async def leave(self, last_slots: Mapping[str, float | None]) -> None:
        """A clean stop: release every job and mark the membership left, in one
        transaction with one hint (two hints woke the others while this member
        was still live in their view, and the second was lost: bench/README.md)."""
        async with self._transaction() as conn:
            await self._release(conn, last_slots)
            await conn.execute(
                f"UPDATE runner_cluster_members SET left_at = {NOW}, owned = 0 "
                "WHERE cluster = $1 AND member = $2 AND incarnation = $3",
                self.cluster,
                self.member,
                self.incarnation,
            )
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.cluster)

    async def _release(
        self, conn: asyncpg.Connection, last_slots: Mapping[str, float | None]
    ) -> None:
        await conn.execute(
            RELEASE,
            self.cluster,
            self.member,
            self.incarnation,
            list(last_slots),
            list(last_slots.values()),
        )

    async def listen(self, callback: Any, on_ping: Any) -> asyncpg.Connection:
        """A connection of its own that calls ``callback()`` on each hint, and
        ``on_ping()`` when pings wait."""
        import asyncpg

        conn = await asyncpg.connect(self.url, timeout=10)

        def on_notify(_conn: Any, _pid: int, channel: str, payload: str) -> None:
            if payload == self.cluster:
                (on_ping if channel == PING_CHANNEL else callback)()

        await conn.add_listener(CHANNEL, on_notify)
        await conn.add_listener(PING_CHANNEL, on_notify)
        return conn

    # ---------------------------------------------------------------- locations

    async def report(
        self, rows: Mapping[str, LocationRow]
    ) -> tuple[dict[str, dict[str, LocationRow]], dict[str, Incident]]:
        """Store this location's latest result of each job in ``rows``, and
        read back every location's, and the jobs' incidents: one transaction,
        a few rows per job (one per location), whatever the history holds."""
        jobs = list(rows)
        values = list(rows.values())
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO runner_cluster_locations (cluster, job, location, member, status, "
                "message, finished_at, duration_ms, since, down, down_since, consecutive_ok, "
                "consecutive_not_ok, recent_codes) SELECT $1, * FROM unnest($2::text[], "
                "$3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], "
                "$9::float8[], $10::bool[], $11::float8[], $12::int8[], $13::int8[], $14::text[]) "
                "ON CONFLICT (cluster, job, location) DO UPDATE SET member = excluded.member, "
                "status = excluded.status, message = excluded.message, "
                "finished_at = excluded.finished_at, duration_ms = excluded.duration_ms, "
                "since = excluded.since, down = excluded.down, down_since = excluded.down_since, "
                "consecutive_ok = excluded.consecutive_ok, "
                "consecutive_not_ok = excluded.consecutive_not_ok, "
                "recent_codes = excluded.recent_codes "
                # A slower run of an earlier slot does not overwrite a later one.
                "WHERE runner_cluster_locations.finished_at <= excluded.finished_at",
                self.cluster,
                jobs,
                [v.location for v in values],
                [v.member for v in values],
                [v.status for v in values],
                [v.message for v in values],
                [v.finished_at for v in values],
                [v.duration_ms for v in values],
                [v.since for v in values],
                [v.down for v in values],
                [v.down_since for v in values],
                [v.consecutive_ok for v in values],
                [v.consecutive_not_ok for v in values],
                [v.recent_codes for v in values],
            )
            return await read_locations_in(conn, self.cluster, jobs)

    async def read_locations(
        self, jobs: Sequence[str]
    ) -> tuple[dict[str, dict[str, LocationRow]], dict[str, Incident]]:
        """Every location's latest result of ``jobs``, and their incidents."""
        async with self._transaction() as conn:
            return await read_locations_in(conn, self.cluster, jobs)

    async def claim(self, job: str, down: bool, since: float | None) -> Incident | None:
        """Mark ``job`` down (since ``since``) or recovered, if it is not so
        already: the incident before, when this member made the change (it
        then sends the alert), else None (another member made it first)."""
        async with self._transaction() as conn:
            if down:
                row = await conn.fetchrow(
                    "INSERT INTO runner_cluster_incidents (cluster, job, down, down_since, "
                    f"changed_at) VALUES ($1, $2, true, $3, {NOW}) ON CONFLICT (cluster, job) "
                    "DO UPDATE SET down = true, down_since = excluded.down_since, "
                    "changed_at = excluded.changed_at WHERE NOT runner_cluster_incidents.down "
                    "RETURNING down_since",
                    self.cluster,
                    job,
                    since,
                )
                return None if row is None else Incident(False, None)
            row = await conn.fetchrow(
                f"UPDATE runner_cluster_incidents SET down = false, changed_at = {NOW} "
                "WHERE cluster = $1 AND job = $2 AND down "
                "RETURNING down_since",
                self.cluster,
                job,
            )
            return None if row is None else Incident(True, row["down_since"])

    # ---------------------------------------------------------------- pings

    async def relay_ping(
        self, job: str, kind: str, at: float, exit_status: int | None, body: bytes, truncated: bool
    ) -> None:
        """Keep a ping for the member that runs ``job``."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO runner_cluster_pings (cluster, job, kind, at, exit_status, "
                "body, truncated) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                self.cluster,
                job,
                kind,
                at,
                exit_status,
                body,
                truncated,
            )
            await conn.execute("SELECT pg_notify($1, $2)", PING_CHANNEL, self.cluster)

    async def take_pings(
        self, jobs: Sequence[str]
    ) -> list[tuple[str, str, float, int | None, bytes, bool]]:
        """The pings waiting for ``jobs``, oldest first, taken (deleted)."""
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM runner_cluster_pings WHERE cluster = $1 AND job = ANY($2::text[]) "
                "RETURNING id, job, kind, at, exit_status, body, truncated",
                self.cluster,
                list(jobs),
            )
        rows = sorted(rows, key=lambda r: r["id"])
        return [
            (
                r["job"],
                r["kind"],
                float(r["at"]),
                r["exit_status"],
                bytes(r["body"]),
                r["truncated"],
            )
            for r in rows
        ]


#: Give up jobs ($4) this incarnation ($2, $3) owns, noting each one's last slot ($5).
RELEASE = (
    "UPDATE runner_cluster_jobs AS j SET owner = NULL, incarnation = NULL, "
    "last_slot = COALESCE(t.slot, j.last_slot) "
    "FROM unnest($4::text[], $5::float8[]) AS t(job, slot) "
    "WHERE j.cluster = $1 AND j.job = t.job AND j.owner = $2 AND j.incarnation = $3"
)
MEMBER_COLUMNS = (
    "member, incarnation, host, pid, version, started_at, renewed_at, expires_at, left_at, "
    "config_digest, owned, location"
)


LOCATION_COLUMNS = (
    "location, member, status, message, finished_at, duration_ms, since, down, down_since, "
    "consecutive_ok, consecutive_not_ok, recent_codes"
)


def _location(r: Any) -> LocationRow:
    return LocationRow(
        location=r["location"],
        member=r["member"],
        status=r["status"],
        message=r["message"],
        finished_at=float(r["finished_at"]),
        duration_ms=float(r["duration_ms"]),
        since=None if r["since"] is None else float(r["since"]),
        down=bool(r["down"]),
        down_since=None if r["down_since"] is None else float(r["down_since"]),
        consecutive_ok=int(r["consecutive_ok"]),
        consecutive_not_ok=int(r["consecutive_not_ok"]),
        recent_codes=r["recent_codes"],
    )


def _member(r: Any) -> MemberRow:
    return MemberRow(
        name=r["member"],
        incarnation=r["incarnation"],
        host=r["host"],
        pid=int(r["pid"]),
        version=r["version"],
        started_at=float(r["started_at"]),
        renewed_at=float(r["renewed_at"]),
        expires_at=float(r["expires_at"]),
        left_at=None if r["left_at"] is None else float(r["left_at"]),
        config_digest=r["config_digest"],
        owned=int(r["owned"]),
        location=r["location"],
    )


async def read_members(url: str, cluster: str, timeout: float) -> tuple[float, list[MemberRow]]:
    """The database's clock and every member of ``cluster`` (``runner cluster``)."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=timeout)
    try:
        exists = await conn.fetchval("SELECT to_regclass('runner_cluster_members') IS NOT NULL")
        now = float(await conn.fetchval(f"SELECT {NOW}"))
        if not exists:
            return now, []
        rows = await conn.fetch(
            f"SELECT {MEMBER_COLUMNS} FROM runner_cluster_members WHERE cluster = $1 "
            "ORDER BY member",
            cluster,
        )
        return now, [_member(r) for r in rows]
    finally:
        await conn.close()


async def read_locations_in(
    conn: asyncpg.Connection, cluster: str, jobs: Sequence[str]
) -> tuple[dict[str, dict[str, LocationRow]], dict[str, Incident]]:
    """Each location's latest result of ``jobs``, and their incidents, on ``conn``."""
    latest: dict[str, dict[str, LocationRow]] = {}
    for r in await conn.fetch(
        f"SELECT job, {LOCATION_COLUMNS} FROM runner_cluster_locations "
        "WHERE cluster = $1 AND job = ANY($2::text[])",
        cluster,
        list(jobs),
    ):
        latest.setdefault(r["job"], {})[r["location"]] = _location(r)
    incidents = {
        r["job"]: Incident(r["down"], r["down_since"])
        for r in await conn.fetch(
            "SELECT job, down, down_since FROM runner_cluster_incidents "
            "WHERE cluster = $1 AND job = ANY($2::text[])",
            cluster,
            list(jobs),
        )
    }
    return latest, incidents


async def read_located(
    url: str, cluster: str, jobs: Sequence[str], timeout: float
) -> tuple[float, list[MemberRow], dict[str, dict[str, LocationRow]], dict[str, Incident]]:
    """For ``runner status``: the members of ``cluster``, each location's
    latest result of ``jobs`` (checks with ``locations:``) and their incidents."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=timeout)
    try:
        exists = await conn.fetchval(
            "SELECT to_regclass('runner_cluster_locations') IS NOT NULL "
            "AND to_regclass('runner_cluster_incidents') IS NOT NULL"
        )
        now = float(await conn.fetchval(f"SELECT {NOW}"))
        if not exists:
            return now, [], {}, {}
        members = [
            _member(r)
            for r in await conn.fetch(
                f"SELECT {MEMBER_COLUMNS} FROM runner_cluster_members WHERE cluster = $1",
                cluster,
            )
        ]
        latest, incidents = await read_locations_in(conn, cluster, jobs)
        return now, members, latest, incidents
    finally:
        await conn.close()


def digest_of(definitions: Iterable[tuple[str, str]]) -> str:
    """One digest of a member's jobs and their definitions."""
    import hashlib

    h = hashlib.blake2b(digest_size=12)
    for job, definition in sorted(definitions):
        h.update(f"{job}\0{definition}\n".encode())
    return h.hexdigest()
