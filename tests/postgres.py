"""A real PostgreSQL server for the tests, started once per session.

``postgres_server`` runs Debian's server binaries (``initdb``, ``postgres``)
in a temporary directory, on 127.0.0.1 and a free port, with durability
switched off (the data is thrown away); it is stopped and removed at the end
of the session. ``postgres_url`` gives each test a fresh, empty database on
it, so no test sees another's rows.

As root the server runs as Debian's ``postgres`` user (PostgreSQL refuses to
run as root). Without server binaries the tests are skipped, except under CI
(``$CI`` set), where they fail: ``scripts/dev.sh setup`` installs them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from itertools import count
from pathlib import Path
from typing import Any, NoReturn

import pytest

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin "
    "or `pg_config --bindir`; install them with `apt-get install postgresql` "
    "(scripts/dev.sh setup does it as root)"
)
#: How long the server may take to accept connections, and to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
USER = "runner"
#: The data is thrown away after the session: no durability, as fast as it goes.
FAST = ("--no-sync",)
SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
)


def find_bindir() -> Path | None:
    """The folder with ``initdb`` and ``postgres``: Debian's, highest version first,
    else ``pg_config --bindir`` (which on Debian names the client's folder only)."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One ``postgres`` process on a throwaway data directory."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="runner-pg-"))
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.dir / "server.log"
        self._databases = count(1)
        # PostgreSQL will not run as root; Debian's package creates this user.
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            try:
                shutil.chown(self.dir, user=self._user)
            except LookupError:
                os.rmdir(self.dir)
                raise RuntimeError(
                    "as root the test server runs as the 'postgres' user, which does not "
                    "exist; `apt-get install postgresql` creates it"
                ) from None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> dict[str, Any]:
        return {"user": self._user, "cwd": self.dir} if self._user else {"cwd": self.dir}

    @cached_property
    def version(self) -> int:
        """The server's major version."""
        out = subprocess.run(
            [self.bindir / "postgres", "--version"], capture_output=True, text=True, check=True
        ).stdout
        match = re.search(r"(\d+)", out)
        return int(match.group(1)) if match else 0

    def start(self) -> None:
        data = self.dir / "data"
        initdb = subprocess.run(
            [self.bindir / "initdb", "-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", *FAST],
            capture_output=True,
            text=True,
            **self._run_as(),
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stderr}")
        # A free port can be taken between our probe and the server's bind: try again.
        for _ in range(3):
            self.port = _free_port()
            with open(self._log, "wb") as log:
                self._proc = subprocess.Popen(
                    [self.bindir / "postgres", "-D", data, "-k", self.dir, "-p", str(self.port)]
                    + [arg for setting in SETTINGS for arg in ("-c", setting)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    **self._run_as(),
                )
            if self._wait_ready():
                return
            if "could not bind" not in self.log_tail():
                break
        raise RuntimeError(f"PostgreSQL did not start:\n{self.log_tail()}")

    def resume(self) -> None:
        """Start the server again after :meth:`stop`, on its data and its port
        (a database server restarted under the daemons)."""
        assert self._proc is None, "the server is running"
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [self.bindir / "postgres", "-D", self.dir / "data", "-k", self.dir]
                + ["-p", str(self.port)]
                + [arg for setting in SETTINGS for arg in ("-c", setting)],
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._run_as(),
            )
        if not self._wait_ready():
            raise RuntimeError(f"PostgreSQL did not start again:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        """True once the server accepts connections; False if it exited first."""
        assert self._proc is not None
        isready = [self.bindir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if subprocess.run([*isready, "-U", USER, "-d", "postgres", "-t", "1"]).returncode == 0:
                return True
            time.sleep(0.05)  # poll interval; the deadline bounds the wait
        self.stop()
        raise RuntimeError(f"PostgreSQL not ready after {START_TIMEOUT} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Fast shutdown (SIGINT), killed if it takes too long."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def remove(self) -> None:
        shutil.rmtree(self.dir)

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{next(self._databases)}"
        # FILE_COPY (PostgreSQL 15+) copies the template's files; the default,
        # WAL_LOG, writes all of them to the WAL too: several times slower here.
        strategy = " STRATEGY = FILE_COPY" if self.version >= 15 else ""
        self.execute(f'CREATE DATABASE "{name}"{strategy}')
        return self.url(name)

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement (from any thread, inside or outside an event loop)."""
        fetch(self.url(database), sql)


def fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the database at ``url`` and return its rows, from
    any thread, inside or outside an event loop."""
    rows: list[tuple[Any, ...]] = []

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            rows.extend(tuple(r) for r in await conn.fetch(sql, *args))
        finally:
            await conn.close()

    # A thread of its own: asyncio.run must not touch the test's event loop.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return rows


def _missing() -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(INSTALL_HINT, pytrace=False)
    pytest.skip(INSTALL_HINT)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own, started and at the end stopped and removed
    (skipped without server binaries, failed under CI)."""
    bindir = find_bindir()
    if bindir is None:
        _missing()
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.remove()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session."""
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database of this test's own, dropped after it."""
    url = postgres_server.create_database()
    yield url
    postgres_server.execute(f'DROP DATABASE "{url.rpartition("/")[2]}" WITH (FORCE)')
