"""The ``runner`` command: parse arguments, set up logging, call one function.

Exit codes (a public contract):
    0  success (serve stopped cleanly; check found no problem; run: every check
       passed; status: every job is ok)
    1  run: at least one check did not pass; status: a job is failing or has
       no result yet; plugins: a plugin cannot be loaded
    2  the config (or the command line) is invalid; nothing was started;
       plugins NAME: no such plugin; status, history: the history cannot be read,
       or the job named is a service or no check of the config
ping exits 1 when the daemon did not take the ping; ping -- COMMAND exits with
the command's status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from runner import __version__, heap, loops, process, reaper
from runner.config import Config, ConfigError, load_config
from runner.daemon import Daemon
from runner.durations import format_duration, parse_duration
from runner.log import configure_logging, get_logger
from runner.model import Health, RunRecord, format_time
from runner.offline import OfflineHint, offline_hint
from runner.plugin import Status
from runner.registry import NOTIFIERS, PLUGINS, PluginError, Registry, UnknownPluginError
from runner.results import LogSink, Sink
from runner.systemd import SystemdNotifier

if TYPE_CHECKING:
    # What only status, history and schema need is imported in their commands:
    # `runner serve` of a config without history pays nothing for it.
    from runner.history import HistoryStore
    from runner.status import StatusRow

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

CONFIG_HELP = "path to the YAML config file (its format: README.md, or `runner schema`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner", description="A pluggable task-runner daemon for checks as code."
    )
    parser.add_argument("--version", action="version", version=f"runner {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_log_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--log-format",
            choices=["auto", "json", "journal", "console"],
            default="auto",
            help="json lines; journal: json lines with a <priority> prefix for systemd's "
            "journal; console: colored lines; auto: console on a terminal, else json",
        )
        p.add_argument(
            "--log-level",
            choices=["debug", "info", "warning", "error"],
            default="info",
            help="the lowest level logged (default: info, every result; warning: fails, "
            "errors, timeouts and problems). runner run's summary table logs warning and up",
        )

    def add_loop_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--loop",
            choices=loops.CHOICES,
            default="auto",
            help="the event loop: uvloop (faster; installed by runner-daemon[fast]) or "
            "asyncio's own; auto: uvloop when installed (default)",
        )

    serve = sub.add_parser("serve", help="run every job until SIGTERM or SIGINT")
    serve.add_argument("config", help=CONFIG_HELP)
    serve.add_argument(
        "--member",
        metavar="NAME",
        help="this daemon's name in its cluster (configs with cluster:); default "
        "$RUNNER_MEMBER, else the host name",
    )
    serve.add_argument(
        "--location",
        metavar="NAME",
        help="where this member is (eu-west): it runs the checks with locations: that list "
        "it; default $RUNNER_LOCATION, else none",
    )
    add_log_options(serve)
    add_loop_option(serve)

    check = sub.add_parser("check", help="validate a config and exit")
    check.add_argument("config", help=CONFIG_HELP)

    copy = sub.add_parser(
        "copy-history",
        help="copy the history a config names (every run, state and alert sent) into "
        "another store: a PostgreSQL URL (moving to a cluster) or a SQLite file",
    )
    copy.add_argument("config", help=CONFIG_HELP)
    copy.add_argument(
        "--to",
        required=True,
        metavar="URL_OR_PATH",
        help="postgresql://USER@HOST/DB, or the path of a SQLite file",
    )

    cluster = sub.add_parser(
        "cluster",
        help="list the members of a config's cluster; exit 0 when the live ones agree "
        "on the config, 1 when not, 2 when the database cannot be reached",
    )
    cluster.add_argument("config", help=CONFIG_HELP)
    cluster.add_argument("--json", action="store_true", help="JSON lines, one per member")

    run = sub.add_parser("run", help="run each check once and exit 0 if all passed, 1 if not")
    run.add_argument("config", help=CONFIG_HELP)
    run.add_argument(
        "--job", action="append", default=[], metavar="NAME", help="run only this check (repeat)"
    )
    add_log_options(run)
    add_loop_option(run)

    plugins = sub.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("name", nargs="?", help="show only this plugin, with every option")
    plugins.add_argument("--verbose", "-v", action="store_true", help="show every option")

    sub.add_parser(
        "schema",
        help="print a JSON Schema of the config, with every installed plugin's options",
    )

    status = sub.add_parser(
        "status",
        help="each job's state, since when, uptime and latency, read from the history; "
        "exit 0 when every job is ok, 1 if not",
    )
    status.add_argument("config", help=CONFIG_HELP)
    status.add_argument(
        "jobs",
        nargs="*",
        metavar="JOB",
        help="only these checks of the config (default: every one)",
    )
    status.add_argument("--json", action="store_true", help="JSON (the default off a terminal)")

    notify_test = sub.add_parser(
        "notify-test",
        help="send a test alert through one notifier of the config; exit 0 if it was delivered",
    )
    notify_test.add_argument("config", help=CONFIG_HELP)
    notify_test.add_argument("notifier", help="the name of a notifiers: entry")

    history = sub.add_parser("history", help="the runs of one job, newest first")
    history.add_argument("config", help=CONFIG_HELP)
    history.add_argument("job", help="the name of a job of the config")
    history.add_argument(
        "--since", type=_duration_arg, metavar="DURATION", help="only runs this recent (2h, 7d)"
    )
    history.add_argument(
        "--status",
        type=_statuses_arg,
        metavar="STATUS",
        help="only runs with this status: ok, fail, error, timeout, not-ok (any but ok), "
        "or a comma list (fail,error)",
    )
    history.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    history.add_argument("--json", action="store_true", help="JSON (the default off a terminal)")
    history.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="each message whole and the plugin's fields (--json has them too)",
    )

    ping = sub.add_parser(
        "ping",
        help="ping a heartbeat job of the config's running daemon (for scripts); with "
        "-- COMMAND: ping start, run it, ping its exit status, exit with it",
    )
    ping.add_argument("config", help=CONFIG_HELP)
    ping.add_argument("job", help="the name of a heartbeat job of the config")
    what = ping.add_mutually_exclusive_group()
    what.add_argument("--start", action="store_true", help="say the job started")
    what.add_argument("--fail", action="store_true", help="say the job failed")
    what.add_argument(
        "--exit", type=_exit_status, metavar="N", help="say the job ended with exit status N"
    )
    ping.add_argument(
        "wrapped",
        nargs="*",
        metavar="-- COMMAND",
        help="run this, pinging start and then its exit status",
    )

    next_ = sub.add_parser(
        "next",
        help="each check's next due times, as the scheduler computes them (jitter included)",
    )
    next_.add_argument("config", help=CONFIG_HELP)
    next_.add_argument(
        "--job", action="append", default=[], metavar="NAME", help="only this check (repeat)"
    )
    next_.add_argument(
        "--count", type=_count_arg, default=5, metavar="N", help="due times per check (default 5)"
    )
    next_.add_argument(
        "--from",
        dest="start",
        type=_time_arg,
        metavar="ISO8601",
        help="as if the daemon started at this time (default: now); without an offset "
        "(2027-03-28T01:00) it is read in each job's own time zone",
    )
    next_.add_argument(
        "--json", action="store_true", help="JSON lines (the default off a terminal)"
    )
    return parser


def _exit_status(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) <= 255):
        raise argparse.ArgumentTypeError(f"{text!r} is not an exit status (0-255)")
    return int(text)


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: What ``--status not-ok`` stands for.
NOT_OK = tuple(s.value for s in Status if s is not Status.OK)


def _statuses_arg(text: str) -> tuple[str, ...]:
    """``fail``, ``not-ok``, ``fail,error``: the statuses asked for, in :class:`Status` order."""
    names = {s.value for s in Status}
    wanted: set[str] = set()
    for item in text.split(","):
        item = item.strip().lower()
        if item == "not-ok":
            wanted.update(NOT_OK)
        elif item in names:
            wanted.add(item)
        else:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a status: expected ok, fail, error, timeout or not-ok, "
                "or a comma list of them (fail,error)"
            )
    return tuple(s.value for s in Status if s.value in wanted)


def _count_arg(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 10_000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 10000, got {text!r}")
    return count


def _time_arg(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (2027-03-28T01:30, 2027-03-28T01:30+01:00)"
        ) from None
    # Epoch seconds and cronsim's 50-year walks both stay in datetime's range.
    if not 1971 <= when.year <= 9000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a year from 1971 to 9000")
    return when


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "run"):
        reaper.run_as_init_if_pid1()  # as PID 1, reap orphaned browser processes
    try:
        code = _dispatch(args)
        process.exit_if_stuck(code)
        return code
    except BrokenPipeError:
        # `runner plugins | head`: the reader left. Stop quietly, as a shell tool would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    handler = {
        "serve": cmd_serve,
        "check": cmd_check,
        "cluster": cmd_cluster,
        "copy-history": cmd_copy_history,
        "run": cmd_run,
        "plugins": cmd_plugins,
        "schema": cmd_schema,
        "status": cmd_status,
        "history": cmd_history,
        "notify-test": cmd_notify_test,
        "ping": cmd_ping,
        "next": cmd_next,
    }
    code: int = handler[args.command](args)
    return code


def _load(path: str, *, keep_unloadable: bool = False) -> Config | None:
    try:
        return load_config(path, keep_unloadable=keep_unloadable)
    except ConfigError as exc:
        _print_error(f"error: {exc}")
        return None


def _print_error(text: str) -> None:
    """Print an error for a person; into the journal, at error priority.

    Under systemd, stderr is a journal stream (``$JOURNAL_STREAM`` names its
    device and inode) that reads a ``<3>`` at the start of a line as "error",
    so ``journalctl -p err`` shows why a service did not start.
    """
    if _stderr_is_journal():
        text = "\n".join(f"<3>{line}" for line in text.splitlines())
    print(text, file=sys.stderr)


def _stderr_is_journal() -> bool:
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{device}:{inode}"


def _loop_factory(args: argparse.Namespace) -> loops.LoopFactory | None:
    try:
        return loops.loop_factory(args.loop)
    except loops.LoopUnavailable as exc:
        _print_error(f"error: {exc}")
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    new_loop = _loop_factory(args)
    config = _load(args.config, keep_unloadable=True)
    if config is None or new_loop is None:
        return EXIT_USAGE
    location = args.location or os.environ.get("RUNNER_LOCATION") or None
    if location is not None:
        from runner.model.job import check_location

        try:
            check_location(location)
        except ValueError as exc:
            _print_error(f"error: --location: {exc}")
            return EXIT_USAGE
        if config.cluster is None:
            _print_error(
                f"error: --location {location}: {args.config} has no cluster: section "
                "(a location is where a cluster member is; docs/cluster.md)"
            )
            return EXIT_USAGE
    configure_logging(args.log_format, args.log_level, own_stdout=True)
    # A long-running process with thousands of jobs: rarer full collections,
    # and none of them walking what lives as long as the daemon (runner.heap).
    heap.tune()
    # Read (and removed from the environment, so Chromium does not inherit it) here.
    systemd = SystemdNotifier.from_environ()
    # Said once when every check fails to resolve its host: no network.
    sinks: list[Sink] = [LogSink(), OfflineHint(config.checks)]
    member = None
    if config.cluster is not None:
        from runner.cluster.member import default_member_name

        member = args.member or default_member_name()
    daemon = Daemon(
        config, sinks=sinks, systemd=systemd, settle_heap=True, member=member, location=location
    )
    return process.run(daemon.serve(), loop_factory=new_loop, abandoned=daemon.scheduler.abandoned)


def cmd_copy_history(args: argparse.Namespace) -> int:
    opened = _open_history(args)
    if isinstance(opened, int):
        return opened
    _, source = opened
    from pathlib import Path

    from runner.history import HistoryError
    from runner.history.copy import copy_history
    from runner.history.postgres import PostgresStore, redact
    from runner.history.sqlite import SQLiteStore

    to: str = args.to
    target = (
        PostgresStore(to)
        if to.startswith(("postgresql://", "postgres://"))
        else SQLiteStore(Path(to).expanduser().resolve())
    )
    if target.where == source.where:
        print(f"error: {redact(to)} is the history {args.config} names already", file=sys.stderr)
        return EXIT_USAGE

    def progress(runs: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{runs:,} runs copied", end="", file=sys.stderr, flush=True)

    try:
        counts = asyncio.run(copy_history(source, target, progress=progress))
    except HistoryError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"copied {counts.runs:,} runs of {counts.jobs} jobs and {counts.alerts} alert records "
        f"from {source.where} to {target.where}"
    )
    return EXIT_OK


def cmd_cluster(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    if config.cluster is None or config.history.url is None:
        print(f"error: {args.config} has no cluster: section", file=sys.stderr)
        return EXIT_USAGE
    from runner.cluster.store import digest_of, read_members
    from runner.history.postgres import redact
    from runner.report import print_cluster, unmanned

    cluster = config.cluster_name or ""
    try:
        now, members = asyncio.run(read_members(config.history.url, cluster, timeout=10.0))
    except Exception as exc:
        print(
            f"error: cannot read cluster {cluster!r} from {redact(config.history.url)}: "
            f"{str(exc) or type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    here = digest_of((j.name, j.definition) for j in config.checks)
    live = [m for m in members if m.live(now)]
    named = sorted(
        {p for j in config.checks if j.locations and not j.runs_everywhere for p in j.locations}
    )
    if args.json or not sys.stdout.isatty():
        for m in members:
            row = {
                "member": m.name,
                "state": "live" if m.live(now) else ("left" if m.left_at else "expired"),
                "host": m.host,
                "pid": m.pid,
                "version": m.version,
                "started_at": format_time(m.started_at),
                "renewed_at": format_time(m.renewed_at),
                "renewed_ago_s": round(now - m.renewed_at, 3),
                "owned": m.owned if m.live(now) else 0,
                "config_digest": m.config_digest,
                "config_matches_file": m.config_digest == here,
                "location": m.location,
            }
            print(json.dumps(row))
        for place in unmanned(named, members, now):
            print(json.dumps({"location": place, "state": "unknown", "members": 0}))
    else:
        print_cluster(cluster, members, now, here, named=named)
    return EXIT_OK if len({m.config_digest for m in live}) <= 1 else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    from runner.report import count

    print(
        f"{args.config}: ok, {count(len(config.jobs), 'job')} "
        f"({count(len(config.checks), 'check')}, {count(len(config.services), 'service')})"
    )
    for job in config.jobs:
        when = job.schedule.describe() if job.schedule is not None else "service"
        if job.locations is not None:
            places = "every location" if job.runs_everywhere else ", ".join(job.locations)
            quorum = f"quorum {job.quorum}" if job.quorum else "quorum: more than half"
            when += f", from {places} ({quorum})"
        print(f"  {job.name}  [{job.plugin_name}]  {when}")
    if config.cluster is not None:
        print(
            f"  cluster {config.cluster_name}: lease {format_duration(config.cluster.lease)}; "
            "each member runs its share of the checks (runner cluster CONFIG lists them)"
        )
    for window in config.maintenance.windows:  # maintenance windows
        when = window.describe()
        if window.start is not None and window.end is not None:
            when += f" {format_time(window.start)} to {format_time(window.end)}"
        print(f"  maintenance {window.name}: {when}, jobs {', '.join(window.jobs)}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    heap.exit_without_a_last_walk()
    new_loop = _loop_factory(args)
    config = _load(args.config, keep_unloadable=True)
    if config is None or new_loop is None:
        return EXIT_USAGE
    from runner.pings import PingedCheck

    # A heartbeat is told by pings to `runner serve`; one run of it has none to read.
    jobs = [j for j in config.checks if not issubclass(j.plugin, PingedCheck)]
    if args.job:
        by_name = {j.name: j for j in config.jobs}
        problems = []
        for name in args.job:
            if name not in by_name:
                problems.append(f"no job named {name!r}; jobs: {', '.join(by_name)}")
            elif by_name[name].is_service:
                problems.append(f"{name!r} is a service; services always start with `runner run`")
            elif issubclass(by_name[name].plugin, PingedCheck):
                problems.append(
                    f"{name!r} is a {by_name[name].plugin_name} job: it is pinged while "
                    "`runner serve` runs, not run"
                )
        if problems:
            print("error: " + "\n       ".join(problems), file=sys.stderr)
            return EXIT_USAGE
        jobs = [j for j in jobs if j.name in args.job]
    human = args.log_format == "console" or (args.log_format == "auto" and sys.stdout.isatty())
    # On a terminal the summary below is the output; only problems are logged.
    configure_logging(args.log_format, "warning" if human else args.log_level, own_stdout=True)
    daemon = Daemon(config, sinks=[] if human else [LogSink(), OfflineHint(jobs)])
    records = process.run(
        daemon.run_once(jobs), loop_factory=new_loop, abandoned=daemon.scheduler.abandoned
    )
    errors = {
        name: daemon.hub.state(name).last_error or "not ready"
        for name in daemon.services_not_ready()
    }
    from runner.report import print_run_summary, run_exit_reason, services_down

    down = services_down(config, errors, jobs)
    reason = run_exit_reason(records, down)
    if human:
        hint = offline_hint(jobs, records)
        print_run_summary(
            records,
            down,
            color=True if args.log_format == "console" else None,
            notes=[hint] if hint else [],
        )
    else:
        # The last line says why the exit code is what it is.
        get_logger().log(
            logging.ERROR if reason else logging.INFO,
            "run.finished",
            exit_code=EXIT_FAILED if reason else EXIT_OK,
            reason=reason,
            services_not_started=[s.name for s in down],
            checks=len(records),
            checks_not_passed=[r.job for r in records if r.status is not Status.OK],
        )
    return EXIT_FAILED if reason else EXIT_OK


def _open_history(args: argparse.Namespace) -> tuple[Config, HistoryStore] | int:
    """The config and its history store, opened for reading; or an exit code."""
    config = _load(args.config, keep_unloadable=True)
    if config is None:
        return EXIT_USAGE
    if not config.history.enabled:
        print(
            f"error: {args.config}: history is off (history: {{enabled: false}})", file=sys.stderr
        )
        return EXIT_USAGE
    from runner.history import open_store

    return config, open_store(config.history, config.path)


def cmd_status(args: argparse.Namespace) -> int:
    opened = _open_history(args)
    if isinstance(opened, int):
        return opened
    config, store = opened
    from runner.history import HistoryError
    from runner.report import print_status
    from runner.status import status_rows

    checks = config.checks
    if args.jobs:
        for name in args.jobs:
            if _not_a_check(config, name, args.config, "no status"):
                return EXIT_USAGE
        asked = set(args.jobs)
        checks = tuple(j for j in checks if j.name in asked)
    jobs = [j.name for j in checks]
    now = time.time()

    async def read() -> list[StatusRow]:
        await store.open(create=False)
        try:
            # No daemon is asked: the states are history's (up to its flush behind).
            states = {s.job: s for s in await store.load_states(jobs)}
            stats = await store.stats(jobs, now)
            located = [j for j in checks if j.locations is not None]
            places = None
            if located and config.history.url is not None:
                from runner.cluster.quorum import read_shown

                shown, places = await read_shown(
                    config.history.url, config.cluster_name or "", located, states
                )
                states.update(shown)
            return status_rows(checks, states, stats, config.maintenance, now, places)
        finally:
            await store.close()

    try:
        rows = asyncio.run(read())
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json or not sys.stdout.isatty():
        print(json.dumps([row.to_json() for row in rows], indent=2))
    else:
        print_status(rows, now, where=store.where, maintenance=config.maintenance)
    # A job in a maintenance window may fail: that fails no `runner status`.
    ok = all(row.state is Health.OK or row.maintenance is not None for row in rows)
    return EXIT_OK if ok else EXIT_FAILED


def cmd_history(args: argparse.Namespace) -> int:
    opened = _open_history(args)
    if isinstance(opened, int):
        return opened
    config, store = opened
    from runner.history import HistoryError

    if args.limit < 1:
        print("error: --limit must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    if any(s.name == args.job for s in config.services):
        _not_a_check(config, args.job, args.config, "no history")
        return EXIT_USAGE
    since = time.time() - args.since if args.since else None
    statuses: tuple[str, ...] | None = args.status
    if statuses is not None and len(statuses) == len(Status):
        statuses = None  # every status: no filter

    async def read() -> tuple[list[RunRecord], bool, dict[str, int]]:
        await store.open(create=False)
        try:
            runs = await _read_runs(store, args.job, since, statuses, args.limit)
            known = bool(runs) or args.job in await store.job_ids()
            counts: dict[str, int] = {}
            if known and not runs:  # what there is instead, to say so
                for state in await store.load_states([args.job]):
                    counts.update(state.counts)
            return runs, known, counts
        finally:
            await store.close()

    try:
        runs, known, counts = asyncio.run(read())
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not known and args.job not in {j.name for j in config.jobs}:
        names = ", ".join(j.name for j in config.checks)
        print(
            f"error: no job named {args.job!r} in {args.config} or its history; jobs: {names}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.json or not sys.stdout.isatty():
        print(json.dumps([r.to_json() for r in runs], indent=2))
    else:
        from runner.report import print_history

        print_history(
            args.job, runs, verbose=args.verbose, matched=_what_there_is(counts, known, args)
        )
    return EXIT_OK


async def _read_runs(
    store: HistoryStore, job: str, since: float | None, statuses: Sequence[str] | None, limit: int
) -> list[RunRecord]:
    """The newest ``limit`` runs of ``job`` with one of ``statuses`` (None: any)."""
    if statuses is None:
        return await store.runs(job, since=since, limit=limit)
    # The store filters one status at a time: the newest `limit` of each, merged,
    # hold the newest `limit` of them all.
    runs: list[RunRecord] = []
    for status in statuses:
        runs.extend(await store.runs(job, since=since, status=status, limit=limit))
    runs.sort(key=lambda r: r.finished_at, reverse=True)
    return runs[:limit]


def _what_there_is(counts: dict[str, int], known: bool, args: argparse.Namespace) -> str:
    """When no run matched, what was asked and what the job's runs are instead:
    ``--status fail (all its runs: 3 error, 1 ok)``."""
    if not known:
        return "(it has no stored runs yet)"
    asked = []
    if args.status:
        asked.append(f"--status {','.join(args.status)}")
    if args.since:
        asked.append(f"--since {format_duration(args.since)}")
    held = ", ".join(f"{counts[s.value]} {s.value}" for s in Status if counts.get(s.value))
    return f"{' '.join(asked)} (all its runs: {held or 'none'})".lstrip()


def _not_a_check(config: Config, name: str, path: str, what: str) -> bool:
    """Say why ``name`` has ``what`` (no status, no history) when it is a service
    or no job of the config; False when it is a check."""
    if any(j.name == name for j in config.checks):
        return False
    checks = ", ".join(j.name for j in config.checks) or "none"
    service = next((j for j in config.services if j.name == name), None)
    if service is not None:
        _print_error(
            f"error: {name!r} is a service ({service.plugin_name}) in {path}: a service "
            f"has no runs, so {what}; checks: {checks}"
        )
    else:
        _print_error(f"error: no check named {name!r} in {path}; checks: {checks}")
    return True


def cmd_notify_test(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    by_name = {n.name: n for n in config.notifiers}
    if args.notifier not in by_name:
        names = ", ".join(by_name) or "none"
        print(
            f"error: no notifier named {args.notifier!r} in {args.config}; notifiers: {names}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    configure_logging("console" if sys.stdout.isatty() else "json", "warning")
    from runner.alerts import send_test_alert

    error = asyncio.run(send_test_alert(by_name[args.notifier]))
    if error is not None:
        print(f"{args.notifier}: not delivered: {error}")
        return EXIT_FAILED
    print(f"{args.notifier}: test alert delivered")
    return EXIT_OK


def cmd_ping(args: argparse.Namespace) -> int:
    """Ping a heartbeat job through the endpoint of the daemon running ``args.config``.

    Without a command: one ping; exit 0 when the daemon took it, 1 if not.
    With one: ping start, run it (its output is its own), ping its exit
    status, and exit with that status whether or not the pings got through
    (a failed ping is said on stderr): a wrapper never changes the outcome of
    what it wraps.
    """
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    if args.wrapped and (args.start or args.fail or args.exit is not None):
        _print_error("error: with a command, runner ping sends start and the exit status itself")
        return EXIT_USAGE
    target = _ping_target(config, args.job)
    if isinstance(target, str):
        _print_error(f"error: {args.config}: {target}")
        return EXIT_USAGE
    url, headers = target
    import httpx

    # Our own daemon: never through a proxy from the environment.
    with httpx.Client(trust_env=False, timeout=10.0, headers=headers) as client:

        def send(suffix: str) -> bool:
            try:
                answer = client.post(url + suffix)
            except httpx.HTTPError as exc:
                _print_error(f"runner ping: {args.job}{suffix}: not delivered: {exc}")
                return False
            if answer.status_code != 200:
                text = answer.text.strip()
                _print_error(f"runner ping: {args.job}{suffix}: {answer.status_code} {text}")
                return False
            return True

        if not args.wrapped:
            suffix = "/start" if args.start else "/fail" if args.fail else ""
            if args.exit is not None:
                suffix = f"/{args.exit}"
            return EXIT_OK if send(suffix) else EXIT_FAILED
        send("/start")
        status = _run_command(args.wrapped)
        send(f"/{status}")
        return status


def _ping_target(config: Config, name: str) -> tuple[str, dict[str, str]] | str:
    """The URL of a ping to the heartbeat job ``name`` and the headers it
    needs; or what is wrong."""
    from urllib.parse import quote

    from runner.pings import PingedCheck

    job = next((j for j in config.jobs if j.name == name), None)
    if job is None:
        names = ", ".join(j.name for j in config.jobs if issubclass(j.plugin, PingedCheck))
        return f"no job named {name!r}; heartbeat jobs: {names or 'none'}"
    if not issubclass(job.plugin, PingedCheck):
        return f"job {name!r} is a {job.plugin_name} check, not a heartbeat: it takes no pings"
    if config.http is None:
        return "no http: section; the daemon takes pings on its HTTP endpoint"
    host, port = config.http.host_and_port()
    if port == 0:
        return f"http.listen {config.http.listen} picks a free port; give a fixed one to ping"
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    key = job.plugin.ping_key(job.options)
    headers = {}
    if key is None and config.http.auth is not None:
        headers["Authorization"] = f"Bearer {config.http.auth.token}"
    return f"http://{host}:{port}/ping/{quote(key or job.name, safe='')}", headers


def _run_command(command: list[str]) -> int:
    """Run ``command`` as it is; its exit status, as a shell gives it (128 + N
    for a signal, 127 when it is not found, 126 when it cannot be run)."""
    import subprocess

    try:
        code = subprocess.call(command)
    except FileNotFoundError:
        _print_error(f"runner ping: {command[0]}: command not found")
        return 127
    except OSError as exc:
        _print_error(f"runner ping: {command[0]}: {exc.strerror or exc}")
        return 126
    return 128 - code if code < 0 else code


def cmd_next(args: argparse.Namespace) -> int:
    """Each check's next ``--count`` due times, asked of the same schedule
    objects the scheduler asks, the way its ticker asks them: the first due
    time after the start (plus the first-run spread of an interval), then
    each one after the last. An interval job's times are relative to when
    the daemon starts, so they are shown as if it started at ``--from``."""
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    checks = list(config.checks)
    if args.job:
        by_name = {j.name: j for j in config.jobs}
        problems = []
        for name in args.job:
            if name not in by_name:
                problems.append(
                    f"no job named {name!r}; checks: {', '.join(j.name for j in checks)}"
                )
            elif by_name[name].is_service:
                problems.append(f"{name!r} is a service: it runs continuously, with no due times")
        if problems:
            print("error: " + "\n       ".join(problems), file=sys.stderr)
            return EXIT_USAGE
        jobs = [j for j in checks if j.name in args.job]
    else:
        jobs = checks
    from runner.scheduler import first_run_offset, first_run_window
    from runner.schedules.cron import zone_named

    now = time.time()
    rows: list[tuple[str, datetime, datetime]] = []
    for job in jobs:
        schedule = job.schedule
        assert schedule is not None
        zone = zone_named(schedule.time_zone() or "UTC")
        start = now
        if args.start is not None:
            start = (
                args.start.replace(tzinfo=zone) if args.start.tzinfo is None else args.start
            ).timestamp()
        spread = first_run_offset(job, first_run_window(job, checks))
        due = schedule.first_after(start) + spread
        for _ in range(args.count):
            if due == float("inf"):  # a line that matches no later date
                break
            shown = round(due, 3)  # to the millisecond, as printed
            rows.append(
                (job.name, datetime.fromtimestamp(shown, zone), datetime.fromtimestamp(shown, UTC))
            )
            due = schedule.next_after(due)
    if args.json or not sys.stdout.isatty():
        for name, local, utc in rows:
            line = {"job": name, "due": _iso(local), "due_utc": _iso(utc)}
            print(json.dumps(line))
    else:
        from runner.report import print_next

        print_next([(name, _iso(local), _iso(utc)) for name, local, utc in rows])
    return EXIT_OK


def _iso(when: datetime) -> str:
    """An ISO 8601 time with its offset, to the millisecond when it has a fraction."""
    return when.isoformat(timespec="milliseconds" if when.microsecond else "seconds")


def cmd_schema(args: argparse.Namespace) -> int:
    from runner.schema import schema_json

    text, problems = schema_json()
    for problem in problems:
        print(f"warning: left out of the schema: {problem}", file=sys.stderr)
    print(text)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    registries = [Registry.discover(PLUGINS), Registry.discover(NOTIFIERS)]
    broken = 0
    entries = [entry for registry in registries for entry in registry]
    if args.name:
        entries = [e for e in entries if e.name == args.name]
        if not entries:
            names = sorted(name for registry in registries for name in registry.names())
            print(f"error: {UnknownPluginError(args.name, names)}", file=sys.stderr)
            return EXIT_USAGE
        args.verbose = True
    conflicts = [c for registry in registries for c in registry.conflicts()]
    for conflict in conflicts:
        if args.name and conflict.name != args.name:
            continue
        broken += 1
        print(f"error: {conflict}")
    for entry in entries:
        try:
            cls = entry.load()
        except PluginError as exc:
            broken += 1
            print(f"{entry.name}  ({entry.distribution_label})  BROKEN")
            print(f"    {exc}")
            continue
        print(f"{entry.name}  ({entry.distribution_label})  {cls.kind}")
        if cls.summary():
            print(f"    {cls.summary()}")
        options = _describe_options(cls.Options)
        if not options:
            print("    options: none")
        elif args.verbose:
            print("    options:")
            for name, type_, default, doc in options:
                line = f"      {name}: {type_}"
                line += " (required)" if default is None else f" = {default}"
                print(line + (f"\n          {doc}" if doc else ""))
        else:
            names = [n + ("" if d is None else f"={d}") for n, _, d, _ in options]
            print(f"    options: {', '.join(names)}")
    return EXIT_FAILED if broken else EXIT_OK


def _describe_options(model: type[BaseModel]) -> list[tuple[str, str, str | None, str]]:
    """(name, type, default or None when required, description) for each option."""
    out = []
    for name, info in model.model_fields.items():
        if info.is_required():
            default = None
        elif info.default_factory is not None:
            default = repr(info.default_factory())  # type: ignore[call-arg]
        else:
            default = repr(info.default) if info.default is not PydanticUndefined else None
        out.append((name, _type_name(info.annotation), default, info.description or ""))
    return out


def _type_name(annotation: Any) -> str:
    """A short readable type: ``list[int] | None`` rather than typing's repr."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


if __name__ == "__main__":
    sys.exit(main())
