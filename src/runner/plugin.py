"""The public plugin API: everything a plugin author imports comes from here.

A plugin is a class registered under an entry point in the ``runner.plugins``
group. The daemon creates one instance per job, passing the job's options
already validated by the plugin's ``Options`` model. There are two kinds:

* a :class:`Check` runs on a schedule; each run returns a :class:`Result`.
* a :class:`Service` starts once and runs until the daemon stops it (a TCP
  listener, say). It calls :meth:`ServiceContext.ready` once it is up.

A minimal check::

    from runner.plugin import Check, Options, Result, RunContext

    class DiskFreeOptions(Options):
        path: str = "/"
        min_free_gb: float = 1.0

    class DiskFree(Check[DiskFreeOptions]):
        \"\"\"Fails when a filesystem has less free space than asked.\"\"\"
        Options = DiskFreeOptions

        async def run(self, ctx: RunContext) -> Result:
            free = shutil.disk_usage(self.options.path).free / 1e9
            if free < self.options.min_free_gb:
                return Result.fail(f"{free:.1f} GB free", free_gb=free)
            return Result.ok(free_gb=free)
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict

from runner.durations import Duration
from runner.errors import describe_error
from runner.resources import Resources
from runner.secrets import SecretMasker, mask_secrets

__all__ = [
    "RESERVED_FIELDS",
    "UNRESOLVED_HOST",
    "Check",
    "Duration",
    "NoOptions",
    "Options",
    "Plugin",
    "Resources",
    "Result",
    "ResultMetric",
    "RunContext",
    "SecretMasker",
    "Service",
    "ServiceContext",
    "Slots",
    "Status",
    "describe_error",
    "mask_secrets",
]


class Status(enum.StrEnum):
    """How a run ended.

    ``fail`` means the target answered wrongly (status 500, wrong title);
    ``error`` means it could not be checked at all (connection refused, DNS);
    ``timeout`` means the run did not finish within the job's timeout.
    """

    OK = "ok"
    FAIL = "fail"
    ERROR = "error"
    TIMEOUT = "timeout"


#: Keys the daemon writes into every result event; a plugin's fields may not use them.
RESERVED_FIELDS = frozenset(
    {"timestamp", "level", "event", "job", "plugin", "status", "duration_ms", "message"}
    # History's result objects (runner status --json, runner history --json) add these.
    | {"started_at", "finished_at", "attempts", "attempt_errors"}
    # The maintenance window a run started in (runner.model.maintenance).
    | {"maintenance"}
)


#: The result field by which a check says that a host name did not resolve;
#: its value is that name: ``Result.error("cannot resolve db.lan", unresolved_host="db.lan")``.
#: The offline hint reads it (see :meth:`Check.target_host`).
UNRESOLVED_HOST = "unresolved_host"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one run of a check.

    Prefer the constructors :meth:`ok`, :meth:`fail` and :meth:`error`. Extra
    keyword fields (``status_code=200``) are logged with the result; keep them
    JSON-serialisable and never put secrets in them. One field means
    something to the daemon: ``unresolved_host`` (:data:`UNRESOLVED_HOST`),
    set when the name of the host to reach did not resolve.
    """

    status: Status
    message: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = RESERVED_FIELDS.intersection(self.fields)
        if clash:
            raise ValueError(
                f"result fields {sorted(clash)} are reserved for the daemon; rename them"
            )

    @classmethod
    def ok(cls, message: str | None = None, **fields: Any) -> Result:
        """The target answered as expected."""
        return cls(Status.OK, message, fields)

    @classmethod
    def fail(cls, message: str, **fields: Any) -> Result:
        """The target answered, but wrongly."""
        return cls(Status.FAIL, message, fields)

    @classmethod
    def error(cls, message: str, **fields: Any) -> Result:
        """The target could not be checked."""
        return cls(Status.ERROR, message, fields)


#: A metric name as Prometheus spells one, lower case (``runner_`` is added).
_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: Names of the daemon's own families (``runner_up``, ``runner_job_up``, ...),
#: whole or as a prefix: a plugin's metric may not take them.
_DAEMON_METRICS = frozenset({"up", "jobs", "build", "build_info"})
_DAEMON_METRIC_PREFIXES = ("job_", "loop_", "notifier_", "history_")


@dataclass(frozen=True, slots=True)
class ResultMetric:
    """A numeric result field that a check wants exported on ``/metrics``.

    List it in the check's :attr:`Check.result_metrics`. The daemon exports
    the field's value in each job's last result as a gauge named
    ``runner_<name>``, labelled ``name`` (the job) and ``plugin``; a last
    result without the field, or whose value is not a number, gives no
    sample. Checks that declare the same ``name`` share the family.

    Attributes:
        field: the result field (``status_code``).
        name: the metric's name without the ``runner_`` prefix
            (``http_status_code``): lower case letters, digits and ``_``
            (not starting with ``runner_``);
            the daemon's own names (``up``, ``jobs``, ``build_info``, and
            ``job_...``, ``loop_...``, ``notifier_...``, ``history_...``)
            are refused.
        help: one line saying what the value is, for ``# HELP``.

    Raises:
        ValueError: ``name`` is not a valid metric name or is the daemon's.
    """

    field: str
    name: str
    help: str

    def __post_init__(self) -> None:
        if not _METRIC_NAME.fullmatch(self.name):
            raise ValueError(
                f"metric name {self.name!r}: use lower case letters, digits and _, "
                "starting with a letter (runner_ is added)"
            )
        if self.name.startswith("runner_"):
            raise ValueError(f"metric name {self.name!r}: leave out runner_, the daemon adds it")
        if self.name in _DAEMON_METRICS or self.name.startswith(_DAEMON_METRIC_PREFIXES):
            raise ValueError(f"metric name {self.name!r} is the daemon's own; choose another")

    @property
    def full_name(self) -> str:
        """The name on ``/metrics``: ``runner_<name>``."""
        return f"runner_{self.name}"


class Options(BaseModel):
    """Base class for a plugin's options: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(Options):
    """For plugins that take no options."""


OptionsT = TypeVar("OptionsT", bound=BaseModel)
T = TypeVar("T")


class _Context:
    def __init__(self, *, job: str, plugin: str, resources: Resources) -> None:
        self.job = job
        self.plugin = plugin
        self.resources = resources
        self._log: structlog.typing.FilteringBoundLogger | None = None

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        """A structlog logger bound to ``job`` and ``plugin``."""
        # Bound on first use: most runs never log, and binding costs more than the run.
        if self._log is None:
            self._log = structlog.get_logger("runner").bind(job=self.job, plugin=self.plugin)
        return self._log

    async def shared(
        self,
        key: Hashable,
        factory: Callable[[], AbstractAsyncContextManager[T]],
        *,
        usable: Callable[[T], bool] | None = None,
    ) -> T:
        """Get a resource shared by the whole daemon; see :meth:`Resources.get`."""
        return await self.resources.get(key, factory, usable=usable)


class RunContext(_Context):
    """What one run of a check receives.

    Attributes:
        job: the job's name from the config.
        plugin: the plugin's entry point name.
        timeout: the job's timeout in seconds. The daemon enforces it by
            cancelling the run; a plugin may use it to size its own timeouts.
        deadline: the ``loop.time()`` at which the run will be cancelled.
        log: a structlog logger bound to the job.
        resources: the daemon's shared resources.
    """

    def __init__(
        self, *, job: str, plugin: str, resources: Resources, timeout: float, deadline: float
    ) -> None:
        super().__init__(job=job, plugin=plugin, resources=resources)
        self.timeout = timeout
        self.deadline = deadline


class ServiceContext(_Context):
    """What a service receives when it starts."""

    def __init__(
        self,
        *,
        job: str,
        plugin: str,
        resources: Resources,
        on_ready: Callable[[dict[str, Any]], None],
    ) -> None:
        super().__init__(job=job, plugin=plugin, resources=resources)
        self._on_ready = on_ready
        self.is_ready = False

    def ready(self, **fields: Any) -> None:
        """Tell the daemon the service is up (its socket bound, say).

        The fields (``host``, ``port``, ...) are logged with the
        ``service.started`` event. Call it once.
        """
        if not self.is_ready:
            self.is_ready = True
            self._on_ready(fields)


class Plugin(ABC, Generic[OptionsT]):
    """Common base of checks and services.

    Subclasses set ``Options`` to a pydantic model (subclass :class:`Options`
    so unknown keys are rejected) and may set ``description``; otherwise the
    first line of the class docstring is used.
    """

    Options: ClassVar[type[BaseModel]] = NoOptions
    description: ClassVar[str] = ""
    #: ``check`` or ``service``: set by the base class, never by a plugin.
    kind: ClassVar[str]

    def __init__(self, options: OptionsT) -> None:
        self.options = options

    @classmethod
    def summary(cls) -> str:
        """One line describing the plugin, for ``runner plugins``."""
        if cls.description:
            return cls.description
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@dataclass(frozen=True)
class Slots:
    """A limited resource that the runs of many jobs share: at most ``size``
    runs hold one of its slots at once (a browser's pages, say).

    Set it as a check's ``slots`` and the daemon gives each run a slot before
    the run starts, first come, first served: the time spent waiting in line
    is not the target's time, so it is not part of the job's timeout. It is in
    the result as ``queued_ms``. While a run waits, the job's next runs are
    skipped (``job.skipped``, "still waiting for a ... slot"): an
    oversubscribed resource shows as skips, never as slow targets. Checks that
    give the same ``name`` share its slots (the first one started sets
    ``size``). The first runs of such jobs are spread over the time their
    slots need for one run of each (about a second a run, up to the
    interval), not one second, so that they do not all queue at start.
    """

    name: str
    size: int


class Check(Plugin[OptionsT]):
    """A plugin run on a schedule.

    ``run`` returns a :class:`Result`. Raising is allowed: the daemon turns
    the exception into an ``error`` result with its type and message. The
    daemon cancels a run that passes the job's timeout, so clean up in
    ``finally`` or ``async with``.
    """

    kind: ClassVar[str] = "check"
    #: A limited resource the runs need, given before the run's clock starts.
    slots: ClassVar[Slots | None] = None
    #: Numeric result fields exported as metrics on ``/metrics`` (see :class:`ResultMetric`).
    result_metrics: ClassVar[tuple[ResultMetric, ...]] = ()

    @classmethod
    def target_host(cls, options: Any) -> str | None:
        """The host on the network that a job of this check reaches, or None.

        ``options`` is the job's validated options (an instance of
        ``cls.Options``). The default, None, is for checks that reach no host
        (a file's age, a sleep). The daemon's offline hint counts the checks
        that name one: when the first result of every one of them says
        ``unresolved_host`` (:data:`UNRESOLVED_HOST`), the machine is more
        likely offline than every site down, and the daemon says so once.
        """
        return None

    @abstractmethod
    async def run(self, ctx: RunContext) -> Result:
        """Check the target once."""


class Service(Plugin[OptionsT]):
    """A plugin that runs for the daemon's whole life, such as a listener.

    ``serve`` sets itself up, calls ``ctx.ready(...)``, then waits until it is
    cancelled; the cancellation is how the daemon stops it, so release
    sockets in ``finally``. If ``serve`` raises or returns, the daemon logs it
    and starts the service again after a back-off.
    """

    kind: ClassVar[str] = "service"

    @abstractmethod
    async def serve(self, ctx: ServiceContext) -> None:
        """Run the service until cancelled."""
