"""What the CLI shows a person: ``runner run``'s summary, ``runner status`` and
``runner history`` as tables (rich, coloured on a terminal). The status rows
themselves are built in :mod:`runner.status`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from runner.config import Config
from runner.model import Health, Job, Maintenance, Occurrence, RunRecord
from runner.plugin import Status
from runner.status import UPTIME_WINDOWS, StatusRow, uptime_text

if TYPE_CHECKING:
    from runner.cluster.store import MemberRow

_STYLE = {
    "ok": "green",
    "fail": "red",
    "error": "red",
    "timeout": "yellow",
    "failing": "red",
    "unknown": "dim",
    "maintenance": "blue",
    "down": "red bold",
}


def _console(*, force_terminal: bool | None = None) -> Console:
    # What is printed is Text, never markup: a job named "api [v2]" stays so.
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
    """The plugin's fields after the message of ``runner run``'s summary, as JSON
    values (``body_complete=true``), never Python's reprs."""
    extra = " ".join(f"{k}={_compact(v)}" for k, v in record.fields.items())
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
            Text(record.job),
            f"{record.duration_ms:.0f} ms",
            Text(f"{message}{'  ' if message and extra else ''}{extra}"),
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


def _state_word(row: StatusRow) -> str:
    """The state column: as ``--json`` says it (``ok``, ``failing``, ``unknown``,
    ``maintenance``), but ``down`` for a failing check its alert rule holds, as
    the page and the badge say."""
    if row.down and row.maintenance is None:
        return "down"
    return row.shown_state


#: The gap between two columns of a table.
_GAP = 2
#: What the last result keeps (label and the start of its message) before a
#: numeric column of ``runner status`` may take room from it.
_LAST_MIN = 24
#: The numeric columns of ``runner status``, in the order they are given room
#: as the terminal widens (docs/commands.md says so); shown in table order.
NUMERIC_PRIORITY = ("24h", "p50", "7d", "30d", "p95", "1h", "runs", "failures")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _one_line(text: str) -> str:
    """``text`` with every run of white space (new lines, tabs) one space."""
    return " ".join(text.split())


@dataclass
class _Column:
    header: str
    cells: list[Text]
    justify: Literal["left", "right"] = "left"

    @property
    def natural(self) -> int:
        lines = [line for cell in self.cells for line in cell.plain.splitlines()]
        return max(map(cell_len, [self.header, *lines]))


def _status_columns(rows: Sequence[StatusRow], now: float) -> dict[str, _Column]:
    """Every column ``runner status`` can show, by name, in table order."""
    columns = {
        "job": _Column("job", [Text(row.job) for row in rows]),
        "state": _Column("state", [_label(_state_word(row)) for row in rows]),
        "since": _Column(
            "since",
            [Text("—" if r.since is None else f"{ago(now - r.since)} ago") for r in rows],
        ),
        "last": _Column("last result", [_last(row.last) for row in rows]),
    }
    for label in UPTIME_WINDOWS:
        columns[label] = _Column(
            label, [Text(uptime_text(row.uptime[label])) for row in rows], "right"
        )
    for label in ("p50", "p95"):
        columns[label] = _Column(label, [Text(_ms(row.latency_ms[label])) for row in rows], "right")
    columns["runs"] = _Column("runs", [Text(str(row.runs)) for row in rows], "right")
    columns["failures"] = _Column("failures", [Text(str(row.failures)) for row in rows], "right")
    return columns


def _last(record: RunRecord | None) -> Text:
    if record is None:
        return Text("—")
    last = _label(record.status.value)
    if record.message:
        last.append(f" {_one_line(record.message)}")
    return last


def _status_widths(columns: Mapping[str, _Column], width: int) -> dict[str, int]:
    """The columns of ``runner status`` that fit in ``width``, with their widths.

    The job's name and its state always, in full (a name wider than the
    terminal folds, never cut); then since; then the last result, at least its
    first :data:`_LAST_MIN` columns; then the numeric columns in the order of
    :data:`NUMERIC_PRIORITY`, each only when it fits whole; what is left goes
    to the last result, cut to fit.
    """
    state = columns["state"].natural
    widths = {"job": max(1, min(columns["job"].natural, width - _GAP - state)), "state": state}
    room = width - widths["job"] - _GAP - state
    since = columns["since"].natural
    if room >= _GAP + since:
        widths["since"] = since
        room -= _GAP + since
    last = columns["last"].natural
    keep = min(last, _LAST_MIN)
    if "since" not in widths or room < _GAP + min(keep, len("FAIL")):
        return widths
    room -= _GAP
    for name in NUMERIC_PRIORITY:
        need = _GAP + columns[name].natural
        if room - need >= keep:
            widths[name] = columns[name].natural
            room -= need
    widths["last"] = min(last, room)
    return widths


def status_table(rows: Sequence[StatusRow], now: float, width: int) -> Table:
    """The table of ``runner status`` for a terminal ``width`` columns wide."""
    columns = _status_columns(rows, now)
    widths = _status_widths(columns, width)
    table = Table(box=None, pad_edge=False, padding=(0, _GAP, 0, 0), header_style="bold")
    shown = [name for name in columns if name in widths]
    for name in shown:
        column = columns[name]
        table.add_column(
            column.header,
            justify=column.justify,
            width=widths[name],
            # A name wider than the terminal folds (whole, over lines); the
            # last result is cut to one line.
            no_wrap=name != "job",
            overflow="fold" if name == "job" else "ellipsis",
        )
    for i in range(len(rows)):
        table.add_row(*(columns[name].cells[i] for name in shown))
    return table


def print_status(
    rows: Sequence[StatusRow],
    now: float,
    *,
    where: str,
    console: Console | None = None,
    maintenance: Maintenance | None = None,
) -> None:
    """``runner status`` on a terminal: a table of ``rows``, one line each, then a
    line of counts, then the maintenance windows on now and the next one.

    At any width each row shows the job's name and state in full, then since
    when (``2m 45s ago``) and the last result cut to fit; the numeric columns
    come as the width allows (:data:`NUMERIC_PRIORITY`).

    Args:
        now: the time the rows were read at ("since ... ago").
        where: the history they were read from, for the title.
        console: where to print; default: stdout (at the terminal's width, or
            200 columns off a terminal).
        maintenance: the config's windows.
    """
    console = console or _console()
    console.print(Text(f"history: {where}", style="dim"))
    console.print(status_table(rows, now, console.width))
    for row in rows:
        if row.locations:
            for where_line in _locations_lines(row, now):
                console.print(where_line)
    held = [r.job for r in rows if r.maintenance is not None]
    shown = [r for r in rows if r.maintenance is None]
    failing = [r.job for r in shown if r.state is Health.FAILING]
    unknown = [r.job for r in shown if r.state is Health.UNKNOWN]
    line = f"{count(len(rows), 'job')}: {len(shown) - len(failing) - len(unknown)} ok"
    if failing:
        line += f", {len(failing)} failing ({', '.join(failing[:5])})"
    if unknown:
        line += f", {len(unknown)} without a result yet"
    if held:
        line += f", {len(held)} in maintenance"
    console.print(Text(line))
    if maintenance:
        for occurrence in maintenance.current(now):
            console.print(Text(f"maintenance now: {_occurrence(occurrence, now)}", style="blue"))
        upcoming = maintenance.next(now)
        if upcoming is not None:
            console.print(Text(f"next maintenance: {_occurrence(upcoming, now)}"))


_LOCATION_STYLES = {"ok": "green", "failing": "yellow", "down": "bold red", "unknown": "dim"}


def _locations_lines(row: StatusRow, now: float) -> list[Text]:
    """A check run from several locations: a line saying how many report,
    then one per location (``eu-west  down (status 500), 42 ms, 5s ago``)."""
    reporting = sum(place.state != "unknown" for place in row.locations)
    lines = [Text(f"{row.job}: {reporting} of {len(row.locations)} locations reporting")]
    width = max(len(place.location) for place in row.locations)
    for place in row.locations:
        line = Text(f"  {place.location.ljust(width)}  ")
        line.append(place.state, style=_LOCATION_STYLES.get(place.state, ""))
        if place.state in ("failing", "down") and place.message:
            line.append(f" ({place.message})")
        if place.latency_ms is not None:
            line.append(f", {place.latency_ms:.0f} ms")
        if place.finished_at is not None:
            line.append(f", {ago(now - place.finished_at)} ago", style="dim")
        lines.append(line)
    return lines


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


def _field_text(value: object) -> str:
    """A field's value as read (fields are JSON-safe): ``true``, ``12.5``,
    ``text``, ``dns=0.4 connect=1.2`` for a mapping, ``a, b`` for a list."""
    if isinstance(value, str):
        return _one_line(value)
    if isinstance(value, Mapping):
        return " ".join(f"{k}={_compact(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_compact(v) for v in value)
    return _compact(value)


def _compact(value: object) -> str:
    if isinstance(value, str):
        return _one_line(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _details(record: RunRecord) -> list[str]:
    """``key: value`` lines of what a run says beyond its message: the plugin's
    fields, its attempts (when retried) and what each earlier try got."""
    lines = [f"{key}: {_field_text(value)}" for key, value in record.fields.items()]
    if record.attempts != 1:
        lines.append(f"attempts: {record.attempts}")
    lines.extend(f"attempt {i}: {_one_line(e)}" for i, e in enumerate(record.attempt_errors, 1))
    return lines


def print_history(
    job: str,
    runs: Sequence[RunRecord],
    *,
    console: Console | None = None,
    verbose: bool = False,
    matched: str | None = None,
) -> None:
    """``runner history`` on a terminal: ``runs`` (newest first) as a table of
    when each finished, its status, where (runs made by members with a
    location), duration and message.

    Each run is one line, its message cut to fit; the maintenance window a
    run started in is said after the message. With ``verbose`` the message
    is whole (folded over lines) and the plugin's fields follow it, a line
    each.

    Args:
        console: where to print; default: as :func:`print_status`.
        matched: when ``runs`` is empty, what was asked and what there is
            instead, for the line that says so (``--status fail (all its
            runs: 12 error, 3 ok)``).
    """
    console = console or _console()
    if not runs:
        console.print(Text(f"no runs of {job} match{f' {matched}' if matched else ''}"))
        return
    console.print(Text(f"{job}: {count(len(runs), 'run')}, newest first", style="bold"))
    columns = [
        _Column("finished", [Text(_short_time(r.finished_at)) for r in runs]),
        _Column("status", [_label(r.status.value) for r in runs]),
        _Column("duration", [Text(f"{r.duration_ms:.0f} ms") for r in runs], "right"),
        _Column("message", [_said(r, verbose=verbose) for r in runs]),
    ]
    if any(r.location is not None for r in runs):  # a check run from several locations
        columns.insert(2, _Column("location", [Text(r.location or "-") for r in runs]))
    *fixed, message = columns
    room = console.width - sum(c.natural + _GAP for c in fixed)
    table = Table(box=None, pad_edge=False, padding=(0, _GAP, 0, 0), header_style="bold")
    for column in fixed:
        table.add_column(column.header, justify=column.justify, width=column.natural, no_wrap=True)
    table.add_column(
        "message",
        width=max(1, min(message.natural, room)),
        # One line a run; with -v the message is whole, folded over lines.
        no_wrap=not verbose,
        overflow="fold" if verbose else "ellipsis",
    )
    for i in range(len(runs)):
        table.add_row(*(column.cells[i] for column in columns))
    console.print(table)


def _said(record: RunRecord, *, verbose: bool) -> Text:
    """The message cell of ``runner history``: the message and the maintenance
    window; with ``verbose``, the run's details a line each."""
    said = Text(_one_line(record.message or ""))
    if record.maintenance is not None:
        said.append(f"{'  ' if said else ''}maintenance={record.maintenance}", style="blue")
    if verbose:
        for line in _details(record):
            said.append(f"{chr(10) if said else ''}{line}", style="dim")
    return said


def print_next(rows: Sequence[tuple[str, str, str]], *, console: Console | None = None) -> None:
    """``runner next`` on a terminal: (job, due in its zone, due in UTC) rows."""
    console = console or _console()
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("job", no_wrap=True, min_width=4)
    table.add_column("due", no_wrap=True)
    table.add_column("due (UTC)", no_wrap=True)
    previous = None
    for name, due, due_utc in rows:
        table.add_row(Text(name if name != previous else ""), due, due_utc)
        previous = name
    console.print(table)


def print_cluster(
    cluster: str,
    members: Sequence[MemberRow],
    now: float,
    here: str,
    *,
    named: Sequence[str] = (),
    console: Console | None = None,
) -> None:
    """``runner cluster``: each member, its state, location, last renewal,
    checks owned and config digest (marked when it is the file's); then the
    locations the config's checks name that no live member has (``named``)."""
    console = console or _console()
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    located = any(m.location for m in members)
    columns = ("member", "state", *(("location",) if located else ()), "host", "renewed")
    for column in (*columns, "checks", "config"):
        table.add_column(column, overflow="fold", justify="right" if column == "checks" else "left")
    for m in members:
        live = m.live(now)
        state = "live" if live else ("left" if m.left_at is not None else "expired")
        style = "green" if live else "dim"
        digest = m.config_digest[:12] + (" (this file)" if m.config_digest == here else "")
        table.add_row(
            Text(m.name, style="bold"),
            Text(state, style=style),
            *((m.location or "-",) if located else ()),
            f"{m.host} pid {m.pid}",
            f"{ago(now - m.renewed_at)} ago",
            str(m.owned if live else 0),
            digest,
        )
    if not members:
        console.print(Text(f"cluster {cluster}: no member has joined yet"))
        if named:
            console.print(Text(f"locations named by the config: {', '.join(named)}"))
        return
    alive = sum(m.live(now) for m in members)
    console.print(Text(f"cluster {cluster}: {alive} live of {count(len(members), 'member')}"))
    console.print(table)
    unknown = unmanned(named, members, now)
    if unknown:
        console.print(
            Text(
                f"no live member in {', '.join(unknown)}: checks from there are unknown "
                "(start a member with --location NAME)",
                style="yellow",
            )
        )


def unmanned(named: Sequence[str], members: Sequence[MemberRow], now: float) -> list[str]:
    """The locations of ``named`` that no live member has."""
    there = {m.location for m in members if m.live(now)}
    return [place for place in named if place not in there]
