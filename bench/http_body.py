"""CPU per http-status check: reading a 10 KiB body against not reading it.

Usage::

    .venv/bin/python bench/http_body.py [--checks 1000] [--rounds 5] [--size 10240]
        [--server auto|nginx|aiohttp] [--before COMMIT]

The target is nginx (Debian's ``nginx-light``: ``apt-get install nginx-light``)
started here on a free port of 127.0.0.1 with a throw-away config, serving
one static file; without nginx, an aiohttp server in a child process (so its
CPU is not the checker's). The checks run one at a time through
``run_in_task`` with one shared ``Resources``, as the daemon runs them:
one client, a fresh connection per check. The variants run in alternating
rounds in one process, so the machine's noise hits them alike; CPU is this
process's (``time.process_time``), the server's is not in it.

Variants:
  not-read   max_body_bytes: 0, the behaviour before issue 9
  read       the default: the body read and dropped (1 MiB window)
  read+kept  expect_body: the body held and searched
  before     with ``--before COMMIT``: http_status.py as it was at COMMIT (no
             phase timings, body never read), to see what the timings cost
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import free_port, wait_for_port  # bench/harness.py, beside this script

from runner.builtins.http.status import HttpStatus
from runner.execution import AbandonedRuns, run_in_task
from runner.plugin import Check, Status
from runner.resources import Resources

VARIANTS: dict[str, dict[str, Any]] = {
    "not-read": {"max_body_bytes": 0},
    "read": {},
    "read+kept": {"expect_body": {"contains": "runner"}},
}


@contextmanager
def nginx(size: int) -> Iterator[tuple[str, str]]:
    """nginx serving ``/body`` of ``size`` bytes; yields (url, server description)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    folder = Path(tempfile.mkdtemp(prefix="runner-bench-nginx-"))
    folder.chmod(0o755)  # nginx's workers run as nobody
    (folder / "www").mkdir(mode=0o755)
    (folder / "www" / "body").write_bytes(_body(size))
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            daemon off;
            worker_processes 1;
            pid {folder}/nginx.pid;
            error_log {folder}/error.log;
            events {{ worker_connections 1024; }}
            http {{
                access_log off;
                client_body_temp_path {folder}/tmp;
                server {{
                    listen 127.0.0.1:{port};
                    root {folder}/www;
                }}
            }}
            """
        )
    )
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(folder)])
    try:
        wait_for_port(port, 10)
        yield f"http://127.0.0.1:{port}/body", version.removeprefix("nginx version: ")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def aiohttp_server(size: int) -> Iterator[tuple[str, str]]:
    """An aiohttp server in a child process serving ``/body``."""
    port = free_port()
    code = textwrap.dedent(
        f"""\
        from aiohttp import web
        body = {_body(size)!r}
        async def handle(request):
            return web.Response(body=body, content_type="text/plain")
        app = web.Application()
        app.router.add_get("/body", handle)
        web.run_app(app, host="127.0.0.1", port={port}, print=None, access_log=None)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_for_port(port, 20)
        import aiohttp

        yield f"http://127.0.0.1:{port}/body", f"aiohttp {aiohttp.__version__}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _body(size: int) -> bytes:
    line = b"runner http-status benchmark body\n"
    return (line * (size // len(line) + 1))[:size]


def _load_before(commit: str) -> type[Check[Any]]:
    """The HttpStatus class at ``commit`` (``builtins/http/status.py``, or
    ``builtins/http_status.py`` before the built-ins were grouped)."""
    for path in ("src/runner/builtins/http/status.py", "src/runner/builtins/http_status.py"):
        shown = subprocess.run(
            ["git", "show", f"{commit}:{path}"],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
        )
        if shown.returncode == 0:
            source = shown.stdout
            break
    else:
        raise SystemExit(f"no http-status source at {commit}")
    spec = importlib.util.spec_from_loader("http_status_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves annotations through it
    exec(compile(source, f"{commit}:http_status.py", "exec"), module.__dict__)
    plugin: type[Check[Any]] = module.HttpStatus
    return plugin


async def _round(
    url: str,
    options: dict[str, Any],
    checks: int,
    resources: Resources,
    plugin: type[Check[Any]] = HttpStatus,
) -> float:
    """CPU seconds for ``checks`` checks one after another."""
    check = plugin(plugin.Options.model_validate({"url": url, **options}))
    abandoned = AbandonedRuns()
    started = time.process_time()
    for _ in range(checks):
        record = await run_in_task(
            check,
            job="bench",
            plugin="http-status",
            timeout=10,
            resources=resources,
            abandoned=abandoned,
        )
        if record.result.status is not Status.OK:
            raise RuntimeError(f"check failed: {record.result}")
    return time.process_time() - started


async def bench(
    url: str, checks: int, rounds: int, before: type[Check[Any]] | None
) -> dict[str, list[float]]:
    variants = {name: (options, HttpStatus) for name, options in VARIANTS.items()}
    if before is not None:
        variants["before"] = ({}, before)
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    resources = Resources()
    try:
        for options, plugin in variants.values():  # warm-up: client, imports, caches
            await _round(url, options, 50, resources, plugin)
        for index in range(rounds):
            order = list(variants) if index % 2 == 0 else list(reversed(variants))
            for name in order:
                options, plugin = variants[name]
                cpu[name].append(await _round(url, options, checks, resources, plugin))
    finally:
        await resources.aclose()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="checks per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=10 * 1024, help="body size in bytes")
    parser.add_argument("--server", choices=["auto", "nginx", "aiohttp"], default="auto")
    parser.add_argument("--before", metavar="COMMIT", help="also run http_status.py of COMMIT")
    args = parser.parse_args()

    use_nginx = args.server == "nginx" or (
        args.server == "auto" and (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))
    )
    server = nginx if use_nginx else aiohttp_server
    with server(args.size) as (url, description):
        before = _load_before(args.before) if args.before else None
        cpu = asyncio.run(bench(url, args.checks, args.rounds, before))

    print(
        f"target: {description}, body {args.size} bytes, "
        f"{args.checks} checks x {args.rounds} rounds"
    )
    base = statistics.median(cpu["not-read"])
    print(
        f"{'variant':<10} {'CPU s / 1,000 checks (median)':>30} {'min':>7} {'max':>7} {'ratio':>6}"
    )
    for name, values in cpu.items():
        per_1000 = [v * 1000 / args.checks for v in values]
        median = statistics.median(values)
        print(
            f"{name:<10} {statistics.median(per_1000):>30.3f} {min(per_1000):>7.3f} "
            f"{max(per_1000):>7.3f} {median / base:>6.3f}"
        )


if __name__ == "__main__":
    main()
