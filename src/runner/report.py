"""What the CLI shows a person: ``runner run``'s summary, ``runner status`` and
``runner history`` as tables (rich, coloured on a terminal). The status rows
themselves are built in :mod:`runner.status`.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from runner.cluster.store import MemberRow
from runner.config import Config
from runner.model import Health, Job, Maintenance, Occurrence, RunRecord
from runner.plugin import Status
from runner.status import UPTIME_WINDOWS, StatusRow

_STYLE = {
    "ok": "green",
    "fail": "red",
    "error": "red",
    "timeout": "yellow",
    "failing": "red",
    "unknown": "dim",
    "maintenance": "blue",
}


def _console(*, force_terminal: bool | None = None) -> Console:
    # Off a terminal (a pipe, a CI log) lines are not wrapped at 80 columns.
    return Console(
        soft_wrap=False,
        width=None if sys.stdout.isatty() else 200,
        highlight=False,
        force_terminal=force_terminal,
    )


def _label(status: str) -> Text:
    return Text(status if status == "ok" else status.upper(), style=_STYLE.get(status, ""))


def ago(seconds: float) -> str:
    """``3h 12m``, ``45s``, ``2d 4h``: a span as a person reads it."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _short_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def _extra(record: RunRecord) -> str:
    extra = " ".join(f"{k}={v}" for k, v in record.fields.items())
    if record.maintenance is not None:
        extra = f"maintenance={record.maintenance} {extra}".rstrip()
    return extra


# --------------------------------------------------------------------------- runner run


def count(n: int, noun: str) -> str:
    """``1 check``, ``2 checks``, ``0 services``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def names(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


@dataclass(frozen=True)
class ServiceDown:
    """A service of ``runner run`` that did not start, and the checks it concerns."""

    name: str
    error: str
    #: host:port the service was to listen on, when its options say (``port:``).
    address: str | None = None
    #: Checks of the run whose options name that port: they ran against
    #: whatever else listened there, or against nothing.
    checks: tuple[str, ...] = ()


def services_down(
    config: Config, errors: Mapping[str, str], checks: Sequence[Job]
) -> list[ServiceDown]:
    """What to say about each service in ``errors`` (name -> why it is not up)."""
    jobs = {job.name: job for job in config.services}
    out = []
    for name, error in sorted(errors.items()):
        options = jobs[name].options if name in jobs else None
        port = getattr(options, "port", None)
        if not isinstance(port, int) or isinstance(port, bool) or port <= 0:
            out.append(ServiceDown(name, error))
            continue
        host = str(getattr(options, "host", "127.0.0.1"))
        # A check that names the port (http://127.0.0.1:8002/, localhost:8002)
        # was meant for this service.
        names_port = re.compile(rf":{port}(?!\d)")
        behind = tuple(c.name for c in checks if names_port.search(c.options.model_dump_json()))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        out.append(ServiceDown(name, error, address, behind))
    return out


def run_exit_reason(records: Sequence[RunRecord], down: Sequence[ServiceDown]) -> str | None:
    """Why ``runner run`` exits 1, in a line; None when it exits 0."""
    reasons = []
    if down:
        reasons.append(
            f"{count(len(down), 'service')} did not start ({names([s.name for s in down])})"
        )
    failed = [r.job for r in records if r.status is not Status.OK]
    if failed:
        shown = failed if len(failed) <= 5 else [*failed[:5], f"{len(failed) - 5} more"]
        reasons.append(f"{count(len(failed), 'check')} did not pass ({names(shown)})")
    return "; ".join(reasons) or None


def print_run_summary(
    records: Sequence[RunRecord],
    down: Sequence[ServiceDown] = (),
    *,
    color: bool | None = None,
    notes: Sequence[str] = (),
) -> None:
    """What went wrong first (services that did not start, and why), then one
    line per check, notes, the counts, and the exit code's reason.

    Args:
        color: True forces colours (``--log-format console``), None detects a terminal.
        notes: lines said once after the table (the offline hint).
    """
    console = _console(force_terminal=color)
    if down:
        console.print(
            Text(
                f"{count(len(down), 'service')} did not start; the checks ran without "
                f"{'it' if len(down) == 1 else 'them'}:",
                style="red bold",
            )
        )
        for service in down:
            console.print(Text(f"  {service.name}: {service.error}"))
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("status", no_wrap=True)
    table.add_column("job", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("message")
    for record in records:
        message = record.message or ""
        extra = _extra(record)
        table.add_row(
            _label(record.status.value),
            record.job,
            f"{record.duration_ms:.0f} ms",
            f"{message}{'  ' if message and extra else ''}{extra}",
        )
    if records:
        console.print(table)
    for service in down:
        if service.checks:
            console.print(
                Text(
                    f"note: {names(list(service.checks))} ran while {service.name} was down: "
                    f"{'its result comes' if len(service.checks) == 1 else 'their results come'}"
                    f" from whatever else answered on {service.address}, not from "
                    f"{service.name}.",
                    style="yellow",
                )
            )
    for note in notes:
        console.print(Text(f"note: {note}", style="yellow"))
    counts = {s.value: sum(r.status is s for r in records) for s in Status}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(f"{count(len(records), 'check')}: {summary or 'none run'}")
    reason = run_exit_reason(records, down)
    if reason is not None:
        console.print(Text(f"exit code 1: {reason}", style="red bold"))


# --------------------------------------------------------------------------- runner status


def _percent(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 1:
        return "100%"
    return f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def print_status(
    rows: Sequence[StatusRow],
    now: float,
    *,
    where: str,
    console: Console | None = None,
    maintenance: Maintenance | None = None,
) -> None:
    """``runner status`` on a terminal: a table of ``rows``, then a line of counts,
    then the maintenance windows on now and the next one.

    Args:
        now: the time the rows were read at ("since ... (3h 12m)").
        where: the history they were read from, for the title.
        console: where to print; default: stdout (at the terminal's width, or
            200 columns off a terminal).
        maintenance: the config's windows.
    """
    console = console or _console()
    table = Table(title=f"history: {where}", title_justify="left", title_style="dim")
    for name in ("job", "state", "since", "last result"):
        table.add_column(name, overflow="fold")
    for label in UPTIME_WINDOWS:
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("p50", justify="right", no_wrap=True)
    table.add_column("p95", justify="right", no_wrap=True)
    table.add_column("runs", justify="right", no_wrap=True)
    table.add_column("failures", justify="right", no_wrap=True)
    for row in rows:
        since = "—"
        if row.since is not None:
            since = f"{_short_time(row.since)} ({ago(now - row.since)})"
        last = Text("—")
        if row.last is not None:
            last = _label(row.last.status.value)
            if row.last.message:
                last.append(f" {row.last.message[:80]}")
        table.add_row(
            row.job,
            _label(row.shown_state),
            since,
            last,
            *(_percent(row.uptime[label]) for label in UPTIME_WINDOWS),
            _ms(row.latency_ms["p50"]),
            _ms(row.latency_ms["p95"]),
            str(row.runs),
            str(row.failures),
        )
    console.print(table)
    held = [r.job for r in rows if r.maintenance is not None]
    shown = [r for r in rows if r.maintenance is None]
    failing = [r.job for r in shown if r.state is Health.FAILING]
    unknown = [r.job for r in shown if r.state is Health.UNKNOWN]
    line = f"{len(rows)} jobs: {len(shown) - len(failing) - len(unknown)} ok"
    if failing:
        line += f", {len(failing)} failing ({', '.join(failing[:5])})"
    if unknown:
        line += f", {len(unknown)} without a result yet"
    if held:
        line += f", {len(held)} in maintenance"
    console.print(line)
    if maintenance:
        for occurrence in maintenance.current(now):
            console.print(Text(f"maintenance now: {_occurrence(occurrence, now)}", style="blue"))
        upcoming = maintenance.next(now)
        if upcoming is not None:
            console.print(f"next maintenance: {_occurrence(upcoming, now)}")


def _occurrence(occurrence: Occurrence, now: float) -> str:
    """``nightly (db-*): 2026-12-08 02:00:00Z to 04:00:00Z, ends in 1h 12m``."""
    window = occurrence.window
    start, end = _short_time(occurrence.start), _short_time(occurrence.end)
    if start[:10] == end[:10]:
        end = end[11:]
    text = f"{window.name} ({', '.join(window.jobs)}): {start} to {end}"
    if occurrence.start <= now:
        return f"{text}, ends in {ago(occurrence.end - now)}"
    return f"{text}, starts in {ago(occurrence.start - now)}"


# --------------------------------------------------------------------------- runner history


def print_history(job: str, runs: Sequence[RunRecord], *, console: Console | None = None) -> None:
    """``runner history`` on a terminal: ``runs`` (newest first) as a table.

    Args:
        console: where to print; default: as :func:`print_status`.
    """
    console = console or _console()
    if not runs:
        console.print(f"no runs of {job} match")
        return
    table = Table(title=f"{job}: {len(runs)} runs, newest first", title_justify="left")
    table.add_column("finished", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("message", overflow="fold")
    for record in runs:
        message = record.message or ""
        extra = _extra(record)
        table.add_row(
            _short_time(record.finished_at),
            _label(record.status.value),
            f"{record.duration_ms:.0f} ms",
            f"{message}{'  ' if message and extra else ''}{extra}",
        )
    console.print(table)


def print_next(rows: Sequence[tuple[str, str, str]], *, console: Console | None = None) -> None:
    """``runner next`` on a terminal: (job, due in its zone, due in UTC) rows."""
    console = console or _console()
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("job", no_wrap=True, min_width=4)
    table.add_column("due", no_wrap=True)
    table.add_column("due (UTC)", no_wrap=True)
    previous = None
    for name, due, due_utc in rows:
        table.add_row(name if name != previous else "", due, due_utc)
        previous = name
    console.print(table)


def print_cluster(
    cluster: str,
    members: Sequence[MemberRow],
    now: float,
    here: str,
    *,
    console: Console | None = None,
) -> None:
    """``runner cluster``: each member, its state, last renewal, checks owned
    and config digest (marked when it is the file's)."""
    console = console or Console()
    table = Table(title=f"cluster {cluster}", title_justify="left")
    for column in ("member", "state", "host", "renewed", "checks", "config"):
        table.add_column(column, overflow="fold")
    for m in members:
        live = m.live(now)
        state = "live" if live else ("left" if m.left_at is not None else "expired")
        style = "green" if live else "dim"
        digest = m.config_digest[:12] + (" (this file)" if m.config_digest == here else "")
        table.add_row(
            Text(m.name, style="bold"),
            Text(state, style=style),
            f"{m.host} pid {m.pid}",
            f"{now - m.renewed_at:.1f}s ago",
            str(m.owned if live else 0),
            digest,
        )
    if not members:
        console.print(f"cluster {cluster}: no member has joined yet")
        return
    console.print(table)
