"""The HTTP endpoint, on the daemon's own event loop (``http:`` in the config).

``GET /metrics`` (Prometheus text format), ``/healthz``, ``/api/status`` and
``/api/jobs/{name}/history`` (the JSON of ``runner status --json`` and
``runner history --json``), ``/api/recent`` (each job's last results, for the
page), ``/api/services`` (each service and its state), ``/api/maintenance``
(the maintenance windows on now and the next one), ``/`` (a self-contained
status page) and ``/badge/{job}.svg`` (:mod:`runner.badges`); and ``GET`` or
``POST`` ``/ping/...`` for heartbeats (docs/heartbeats.md).

aiohttp serves it and prometheus_client writes the exposition format: no
hand-written HTTP parsing or metric format. Metrics are computed from the
hub's per-job state at scrape time by a custom collector, so there is no
second set of counters to drift.

Off unless configured; bound to 127.0.0.1 unless ``listen`` says otherwise,
and a non-loopback ``listen`` needs ``auth: {token: ...}`` or an explicit
``public: true`` (checked when the config is loaded).

Pings authenticate themselves, not through the token: ``/ping/<ping_key>``
needs nothing else (cron wrappers use plain curl); ``/ping/<job name>`` (a
job without a key) needs the token when there is one, and without one is
taken only on a loopback ``listen``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from importlib.resources import files
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from runner.badges import badge_svg
from runner.log import get_logger
from runner.metrics import Exposition
from runner.pings import PING_BODY_LIMIT, Ping, PingKind
from runner.status import StatusView, check_word, maintenance_json, service_rows, service_word

if TYPE_CHECKING:
    from runner.config import HttpSpec

#: /healthz answers 503 while the event loop lags more than this.
HEALTHY_LAG = 1.0

#: The listen backlog: connections the kernel queues until the endpoint
#: accepts them (aiohttp's default is 128). The endpoint has no connection
#: limit, so as many as the kernel lets any listener queue by default
#: (``net.core.somaxconn``, 4096 since Linux 5.4; it caps this value): a burst
#: of scrapes or pings waits instead of overflowing into SYN retries.
BACKLOG = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The colour of each word of a badge (white text on each has a contrast
#: ratio of at least 4.5:1). ``failing`` (not ok, below the alert rule) is amber,
#: ``down`` (alerted) red: the two are told apart by word and colour.
BADGE_COLORS = {
    "up": "#1a7f37",
    "failing": "#9a5b00",
    "down": "#c62828",
    "unknown": "#6e7781",
    "maintenance": "#0969da",
    "starting": "#6e7781",
}

#: The kinds of ``/ping/<target>/<suffix>``.
_PING_SUFFIXES = {"start": PingKind.START, "fail": PingKind.FAIL}


class PingReceiver(Protocol):
    """Where the endpoint's pings go (the daemon's view)."""

    def ping_target(self, target: str) -> tuple[str, bool] | None:
        """The pinged job ``target`` names, and whether ``target`` is its
        ping_key (else its name); None for no such job or key."""
        ...

    def ping(self, job: str, ping: Ping) -> bool:
        """Hand ``ping`` to ``job``; False when the job does not run."""
        ...


class WebEndpoint:
    """Serves what ``view`` shows over HTTP, as ``spec`` (the config's ``http:``)
    says, and hands ``/ping/...`` to ``pings``; started into the daemon's lifetime."""

    def __init__(self, view: StatusView, spec: HttpSpec, pings: PingReceiver | None = None) -> None:
        self.view = view
        self.pings = pings
        self.host, self.port = spec.host_and_port()
        self.loopback = spec.is_loopback()
        self.token = spec.auth.token if spec.auth is not None else None
        self.exposition = Exposition(view)
        self._page = files("runner").joinpath("status_page.html").read_bytes()
        self._log = get_logger()

    async def start(self, exit_stack: AsyncExitStack) -> None:
        app = web.Application(middlewares=[self._auth])
        app.add_routes(
            [
                web.get("/", self.page),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.metrics),
                web.get("/api/status", self.api_status),
                web.get("/api/recent", self.api_recent),
                web.get("/api/services", self.api_services),
                web.get("/api/maintenance", self.api_maintenance),
                web.get("/api/jobs/{name:.+}/history", self.api_history),
                web.get("/badge/{name:.+}.svg", self.badge),
                web.get("/ping/{target:.+}", self.ping),
                web.post("/ping/{target:.+}", self.ping),
            ]
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        exit_stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, self.host, self.port, backlog=BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            # The checks matter more than their page: run on without it.
            self._log.error(
                "http.failed",
                host=self.host,
                port=self.port,
                error=exc.strerror or str(exc),
                hint="the checks run on without the HTTP endpoint; free the port or "
                "change http.listen, then restart",
            )
            return
        if runner.addresses:  # the port picked for "port 0"
            self.port = int(runner.addresses[0][1])
        self._log.info("http.started", host=self.host, port=self.port, auth=self.token is not None)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Pings are authenticated by their handler: a ping_key needs no token.
        if self.token is None or request.path == "/healthz" or request.path.startswith("/ping/"):
            return await handler(request)
        if self._authorized(request):
            return await handler(request)
        return _needs_token()

    def _authorized(self, request: web.Request) -> bool:
        """Whether the request carries the token (bearer, or basic auth's password)."""
        assert self.token is not None
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        given = ""
        if scheme.lower() == "bearer":
            given = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                given = base64.b64decode(credentials).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                given = ""
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    # ---------------------------------------------------------------- handlers

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def healthz(self, request: web.Request) -> web.Response:
        lag = self.view.loop_lag()
        if lag > HEALTHY_LAG:
            return web.Response(status=503, text=f"event loop lagging {lag:.2f}s\n")
        return web.Response(text="ok\n")

    async def metrics(self, request: web.Request) -> web.Response:
        # Formatting is about 5 µs a sample in prometheus_client (10,000 jobs that
        # all changed: about 0.5 s; see runner.metrics for the cache): done on a
        # thread so checks keep their schedule. It reads immutable JobState
        # snapshots, so it needs no lock.
        accept = request.headers.get("Accept", "")  # OpenMetrics when asked for
        body = await asyncio.to_thread(self.exposition.render, accept)
        return web.Response(
            body=body, headers={"Content-Type": self.exposition.content_type(accept)}
        )

    async def api_status(self, request: web.Request) -> web.Response:
        return web.json_response([row.to_json() for row in await self.view.status_rows()])

    async def api_recent(self, request: web.Request) -> web.Response:
        states = await self.view.shown_states()
        return web.json_response(
            {name: list(s.recent) for name, s in states.items() if s.kind == "check"}
        )

    async def api_services(self, request: web.Request) -> web.Response:
        return web.json_response([row.to_json() for row in service_rows(self.view.states())])

    async def api_maintenance(self, request: web.Request) -> web.Response:
        return web.json_response(maintenance_json(self.view.maintenance(), time.time()))

    async def api_history(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            limit = int(request.query.get("limit", "50"))
            since = _since(request.query.get("since"))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        status = request.query.get("status")
        runs = await self.view.runs(name, since=since, status=status, limit=limit)
        if runs is None:
            return web.json_response({"error": "history is off"}, status=404)
        return web.json_response([r.to_json() for r in runs])

    async def badge(self, request: web.Request) -> web.Response:
        """``/badge/NAME.svg``: the job's name and the word the status page shows
        (:func:`runner.status.check_word`); a service's says ``service`` and its
        state (``service up``)."""
        state = (await self.view.shown_states()).get(request.match_info["name"])
        if state is None:
            return web.Response(status=404, text="no such job\n")
        if state.kind == "service":
            word = service_word(state)
            message = f"service {word}"
        else:
            in_window = self.view.maintenance().active(state.job, time.time()) is not None
            word = check_word(state.state, down=state.down, maintenance=in_window)
            message = word
        return web.Response(
            text=badge_svg(state.job, message, BADGE_COLORS[word]),
            content_type="image/svg+xml",
            headers={"Cache-Control": "no-cache"},
        )

    async def ping(self, request: web.Request) -> web.Response:
        """``/ping/<target>[/start|/fail|/<exit status>]``: a heartbeat's ping.

        200 ``OK`` when taken; 404 for no such job or key (and for the name of
        a job that has a ping_key); 400 for an exit status past 255; 401
        without the token for a ping by name where the endpoint has one; 403
        for a ping by name on a non-loopback endpoint without a token.
        """
        at = time.time()
        target = request.match_info["target"]
        found = None if self.pings is None else _ping_route(self.pings, target)
        if found is None:
            return web.Response(status=404, text="404: no such heartbeat job or ping key\n")
        job, keyed, kind, status = found
        if status is not None and not 0 <= status <= 255:
            return web.Response(status=400, text="400: an exit status is 0-255\n")
        if not keyed:
            if self.token is not None:
                if not self._authorized(request):
                    return _needs_token()
            elif not self.loopback:
                return web.Response(
                    status=403,
                    text="403: this endpoint is not on loopback: ping /ping/<ping_key> "
                    "(set the job's ping_key option)\n",
                )
        body, truncated = await _read_body(request)
        ping = (
            Ping(kind, at, None, body, truncated)
            if status is None
            else Ping.exit(status, at, body, truncated)
        )
        assert self.pings is not None
        if not self.pings.ping(job, ping):  # stopped by a reload meanwhile
            return web.Response(status=404, text="404: no such heartbeat job or ping key\n")
        return web.Response(text="OK")


def _ping_route(pings: PingReceiver, target: str) -> tuple[str, bool, PingKind, int | None] | None:
    """The job, whether it was named by its key, the kind and exit status
    of a ping to ``/ping/<target>``; None when it names no pinged job."""
    found = pings.ping_target(target)
    if found is not None:
        return (*found, PingKind.SUCCESS, None)
    head, _, last = target.rpartition("/")
    found = pings.ping_target(head) if head else None
    if found is None:
        return None
    if last in _PING_SUFFIXES:
        return (*found, _PING_SUFFIXES[last], None)
    if last.isascii() and last.isdigit():
        return (*found, PingKind.FAIL, int(last) if len(last) <= 3 else 256)
    return None


async def _read_body(request: web.Request) -> tuple[bytes, bool]:
    """The first :data:`PING_BODY_LIMIT` bytes of the body, and whether there
    was more. No more is read here: aiohttp reads and drops the rest after
    the answer (its lingering close, bounded in time), so the sender gets
    its answer and the body is never buffered whole."""
    body = b""
    while len(body) <= PING_BODY_LIMIT:
        chunk = await request.content.read(PING_BODY_LIMIT + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return body[:PING_BODY_LIMIT], len(body) > PING_BODY_LIMIT


def _needs_token() -> web.Response:
    return web.Response(
        status=401,
        text="401: a token is needed (Authorization: Bearer TOKEN, or basic auth)\n",
        headers={"WWW-Authenticate": 'Basic realm="runner"'},
    )


def _since(text: str | None) -> float | None:
    if not text:
        return None
    from runner.durations import parse_duration

    return time.time() - parse_duration(text)
