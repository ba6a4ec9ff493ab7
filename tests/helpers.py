"""Real peers for the tests: a local HTTP server and the daemon as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

Event = dict[str, Any]


# --------------------------------------------------------------------------- HTTP peer

PAGES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/ok": (200, {}, b"<html><head><title>Local page</title></head><body>ok</body></html>"),
    "/error": (500, {}, b"<html><head><title>Oops</title></head><body>error</body></html>"),
    "/redirect": (302, {"Location": "/ok"}, b""),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.rpartition("/")[2] or 5))
        status, headers, body = PAGES.get(self.path.split("?")[0], PAGES["/ok"])
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


@contextmanager
def local_http_server() -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Peer:
    """A local HTTP server: answers GET with ``status`` and records POSTs (an
    alert receiver for webhooks). ``statuses``, when not empty, gives the next
    GETs' statuses one by one before ``status`` does.

    ``mode`` for POSTs: ``ok`` (204), ``error`` (500), ``slow`` (204 once
    ``release`` is set: the POST is recorded while its sender still waits)
    or ``hang`` (no answer until the test ends); ``modes``, when not empty,
    gives the next POSTs' one by one before ``mode`` does.
    """

    def __init__(self) -> None:
        self.status = 200
        self.statuses: list[int] = []
        self.mode = "ok"
        self.modes: list[str] = []
        self.received: list[dict[str, Any]] = []
        self.release = threading.Event()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = b"target"
                self.send_response(peer.statuses.pop(0) if peer.statuses else peer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                peer.received.append(
                    {
                        "at": time.time(),
                        "headers": dict(self.headers),
                        "raw": raw,
                        **json.loads(raw),
                    }
                )
                mode = peer.modes.pop(0) if peer.modes else peer.mode
                if mode in ("hang", "slow"):
                    peer.release.wait(60)
                if mode == "hang":
                    return
                self.send_response(500 if mode == "error" else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r.get("event") == kind]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def echo_roundtrip(port: int, payload: bytes) -> bytes:
    """Send ``payload`` to an echo server on 127.0.0.1 and read back as many bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass(frozen=True, slots=True)
class Process:
    """One process as read from /proc at one moment."""

    pid: int
    ppid: int
    state: str
    argv: tuple[str, ...]

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)


def processes(pids: Iterable[int]) -> dict[int, Process]:
    """The live processes among ``pids``, each read once: one read of
    ``/proc/PID/stat`` (parent, state) and one of ``/proc/PID/cmdline``.

    Left out: a process that has gone, a zombie or a dead one (``Z``, ``X``),
    and one whose cmdline reads empty, which a process that is exiting does
    once its memory is gone. Reading a process's cmdline twice can get its
    arguments the first time and nothing the second: an exiting Chromium
    renderer then passed for a browser (issue 25)."""
    found = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        argv = tuple(arg.decode(errors="replace") for arg in raw.split(b"\0") if arg)
        if state not in ("Z", "X") and argv:
            found[pid] = Process(pid, int(ppid), state, argv)
    return found


def alive(pids: set[int], name: str = "") -> set[int]:
    """The pids in ``pids`` that still run (not zombies) and whose cmdline has ``name``."""
    return {pid for pid, proc in processes(pids).items() if name in proc.cmdline}


def is_chromium(proc: Process) -> bool:
    """A Chromium process (browser, zygote, renderer...), not its crash handler."""
    name = Path(proc.argv[0]).name
    return "chrom" in name and "crashpad" not in name


def playwright_drivers(pids: Iterable[int]) -> set[int]:
    """Playwright's driver processes (``node .../cli.js run-driver``) among ``pids``."""
    return {pid for pid, proc in processes(pids).items() if "run-driver" in proc.argv}


def chromium_browsers(pids: Iterable[int]) -> set[int]:
    """The Chromium browsers among ``pids``: the Chromium processes that a
    Playwright driver started (every other Chromium process is one of theirs).
    One snapshot: each process read once."""
    procs = processes(pids)
    drivers = {pid for pid, proc in procs.items() if "run-driver" in proc.argv}
    return {pid for pid, proc in procs.items() if proc.ppid in drivers and is_chromium(proc)}


def chromium_processes(pids: Iterable[int]) -> set[int]:
    """Every live Chromium process among ``pids`` (crash handlers left out)."""
    return {pid for pid, proc in processes(pids).items() if is_chromium(proc)}


def wait_for_count(find: Callable[[], set[int]], count: int, timeout: float, what: str) -> set[int]:
    """Wait until ``find()`` returns ``count`` pids; return them, or fail after
    ``timeout`` naming the last ones found. Counts of processes move (a
    renderer exiting, a browser starting): never assert on a single sample."""
    last: set[int] = set()

    def settled() -> bool:
        nonlocal last
        last = find()
        return len(last) == count

    try:
        wait_until(settled, timeout, f"{count} {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; found {len(last)}: {sorted(last)}") from None
    return last


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``predicate`` every ``interval`` seconds until it returns something
    truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RunnerProcess:
    """``python -m runner ARGS`` as a real subprocess, its JSON log lines collected."""

    def __init__(
        self, *args: str, env: Mapping[str, str] | None = None, prefix: Sequence[str] = ()
    ) -> None:
        """``prefix``: a command that execs the rest (``setpriv ...``)."""
        # Never inherit a real systemd's notify socket; a test passes its own.
        base = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        full_env = {**base, **(env or {})}
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "runner", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full_env,
        )
        self.events: list[Event] = []
        self.raw_lines: list[str] = []
        self._new: queue.Queue[Event] = queue.Queue()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self.raw_lines.append(line)
                event = json.loads(line)  # every line on stdout must be JSON
                with self._lock:
                    self.events.append(event)
        except ValueError:
            # kill() after a failed test closed the pipe under us: the test's
            # own failure is the one to report, not this thread's. (A line
            # that is not JSON is a ValueError too, with the pipe open.)
            if not self.proc.stdout.closed:
                raise

    def find(self, **match: Any) -> list[Event]:
        with self._lock:
            return [e for e in self.events if all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, timeout: float = 15.0, count: int = 1, **match: Any) -> list[Event]:
        """Wait until ``count`` events match every field in ``match``; return them."""

        def ready() -> list[Event] | None:
            found = self.find(**match)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                self._reader.join(timeout=2)
                found = self.find(**match)
                if len(found) >= count:
                    return found
                raise AssertionError(
                    f"runner exited with {self.proc.returncode} before {match} was logged; "
                    f"stderr: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            return None

        return list(wait_until(ready, timeout, f"{count} event(s) matching {match}"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Send ``sig`` and return the exit code; fails if it takes longer than ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"runner did not exit within {timeout}s of {sig!r}") from None
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        self._close_pipes()
        return code

    def kill(self) -> None:
        """Make sure the process is gone and its pipes closed (for ``finally``).

        Its descendants too: under a ``prefix`` (a wrapper) the daemon is one
        of them, and SIGKILL to the wrapper alone left it running, browser and
        all, after a failed test."""
        if self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        self._close_pipes()

    def __enter__(self) -> RunnerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def serve_until(
    config: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    count: int = 1,
    timeout: float = 15.0,
    **match: Any,
) -> RunnerProcess:
    """``runner serve CONFIG`` until ``count`` events match ``match``, then SIGTERM;
    fails unless it exits 0. Returns the stopped process, its events kept."""
    with RunnerProcess("serve", str(config), env=env) as runner:
        runner.wait_for(timeout=timeout, count=count, **match)
        assert runner.stop() == 0
    return runner


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner ARGS`` to completion."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def pip_install_alone(source: Path, site: Path) -> Path:
    """pip install the distribution in ``source`` into the folder ``site``, without
    its dependencies (runner-daemon and pytest are this environment's); returns
    ``site``, to put on PYTHONPATH."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
    )
    return site


# --------------------------------------------------------------------------- benchmarks

BENCH = Path(__file__).resolve().parent.parent / "bench"


def need_programs(programs: dict[str, str]) -> None:
    """Skip unless each program (key) is installed; fail instead under CI,
    where scripts/dev.sh installs them. Values are the Debian packages."""
    missing = [
        package
        for program, package in programs.items()
        if shutil.which(program) is None
        and shutil.which(program, path="/usr/sbin:/usr/bin") is None
    ]
    if missing:
        hint = f"benchmark peers not installed: {', '.join(missing)} (run bench/setup)"
        if os.environ.get("CI"):
            pytest.fail(hint, pytrace=False)
        pytest.skip(hint)


def run_bench(
    name: str, tmp_path: Path, *extra: str, timeout: float = 120
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """``bench/NAME.py --smoke --trials 1`` (and ``extra``), which must exit 0;
    returns the JSON it wrote, and the finished process."""
    out = tmp_path / f"{name}.json"
    script = str(BENCH / f"{name}.py")
    done = subprocess.run(
        [sys.executable, script, "--smoke", "--trials", "1", *extra, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    return json.loads(out.read_text()), done
