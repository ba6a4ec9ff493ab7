"""The YAML shape of a config, as pydantic models: what each key may hold.

These models are the one description of the shape: the loader validates with
them (:mod:`runner.config.loader`) and ``runner schema`` turns them into a JSON
Schema (:mod:`runner.schema`). They hold what was written; the loader resolves
plugins and defaults into :class:`runner.model.Job` and friends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from runner.durations import DURATION_JSON_SCHEMA, DURATION_PATTERN, Duration, parse_duration
from runner.model import MAX_WINDOW
from runner.model.job import LOCATION_PATTERN, check_location
from runner.schedules.cron import check_expression, zone_named

__all__ = [
    "CHECK_ONLY",
    "TOP_LEVEL",
    "AuthSpec",
    "ClusterSpec",
    "CronLine",
    "Defaults",
    "DownWhen",
    "HistorySpec",
    "HttpSpec",
    "JobSpec",
    "MaintenanceSpec",
    "NotifierSpec",
    "RetryDelay",
    "TimeZone",
    "UpWhen",
]

#: The keys a config file may have at its top level.
TOP_LEVEL = ("cluster", "defaults", "history", "http", "jobs", "maintenance", "notifiers")

#: Job keys that mean nothing for a service (it runs continuously, with no results).
CHECK_ONLY = (
    "interval",
    "timeout",
    "notify",
    "failure_threshold",
    "success_threshold",
    "down_when",
    "up_when",
    "retries",
    "retry_delay",
    "retry_delay_max",
    "cron",
    "timezone",
    "jitter",
    "locations",
    "quorum",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _StrictOptional(_Strict):
    """A section many configs leave out: its validator is built the first time a
    config has one (``runner schema`` builds them all), not at every start."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


def _retry_delay(value: object) -> float | str:
    if value == "exponential":
        return "exponential"
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{exc}, or 'exponential'") from None


#: A pause between attempts: a duration, or ``exponential`` (1s, 2s, 4s, ... up to
#: ``retry_delay_max``).
RetryDelay = Annotated[
    float | str,
    BeforeValidator(_retry_delay),
    WithJsonSchema(
        {
            **DURATION_JSON_SCHEMA,
            "pattern": f"^exponential$|{DURATION_PATTERN}",
            "patternErrorMessage": "Expected a duration above zero (1s, 500ms) or exponential.",
            "description": "A duration (fixed pause), or exponential: 1s, 2s, 4s, ...",
        }
    ),
]


def _time_zone(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError("expected an IANA time zone name such as Europe/Berlin or UTC")
    zone_named(name)
    return name


#: An IANA time zone name (``Europe/Berlin``), checked against the zone database.
TimeZone = Annotated[
    str,
    BeforeValidator(_time_zone),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "description": "An IANA time zone name: Europe/Berlin, America/New_York, UTC.",
            "examples": ["UTC", "Europe/Berlin", "America/New_York"],
        }
    ),
]


def _locations(value: object) -> object:
    """A check's ``locations:``: a list of location names, or ``all``."""
    if value == "all":
        return value
    if not isinstance(value, list) or not value:
        raise ValueError("expected a list of locations such as [eu-west, us-east], or all")
    for name in value:
        if not isinstance(name, str):
            raise ValueError(f"expected a location name such as eu-west, got {name!r}")
        check_location(name)
    if len(set(value)) != len(value):
        raise ValueError("a location is listed twice")
    return value


#: ``locations:``: where a check runs from in a cluster (the members' ``--location``).
Locations = Annotated[
    list[str] | Literal["all"],
    BeforeValidator(_locations),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": LOCATION_PATTERN},
                    "minItems": 1,
                    "uniqueItems": True,
                },
                {"const": "all"},
            ],
            "description": "The locations (members' --location) the check runs from, or all.",
            "examples": [["eu-west", "us-east", "ap-south"], "all"],
        }
    ),
]


#: A cron line as cronsim reads it: five fields, or six with seconds first.
CRON_PATTERN = r"^\s*\S+(\s+\S+){4,5}\s*$"

#: A cron line, checked by cronsim (whitespace normalised).
CronLine = Annotated[
    str,
    BeforeValidator(check_expression),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CRON_PATTERN,
            "patternErrorMessage": "Expected a cron line: 5 fields (minute hour day month "
            "weekday), or 6 with seconds first.",
            "description": "A cron line (minute hour day-of-month month day-of-week), or six "
            "fields with seconds first; L, LW and # forms as cronsim reads them.",
            "examples": ["*/5 * * * *", "0 3 * * MON-FRI", "*/10 * * * * *"],
        }
    ),
]


class DownWhen(_Strict):
    """``down_when``: down when at least ``failures`` of the last ``of`` results were not ok."""

    failures: int = Field(ge=1, le=MAX_WINDOW, description="Results not ok among the last `of`.")
    of: int = Field(ge=1, le=MAX_WINDOW, description="How many of the last results count.")

    @model_validator(mode="after")
    def _fits(self) -> DownWhen:
        if self.failures > self.of:
            raise ValueError(
                f"failures ({self.failures}) is more than of ({self.of}): "
                f"at most {self.of} of the last {self.of} can fail"
            )
        return self


class UpWhen(_Strict):
    """``up_when``: a down job has recovered when at least ``successes`` of the
    last ``of`` results were ok."""

    successes: int = Field(ge=1, le=MAX_WINDOW, description="Ok results among the last `of`.")
    of: int = Field(ge=1, le=MAX_WINDOW, description="How many of the last results count.")

    @model_validator(mode="after")
    def _fits(self) -> UpWhen:
        if self.successes > self.of:
            raise ValueError(
                f"successes ({self.successes}) is more than of ({self.of}): "
                f"at most {self.of} of the last {self.of} can pass"
            )
        return self


#: Which key of a job or of defaults says the same as which (one or the other).
ALERT_RULE_KEYS = (("failure_threshold", "down_when"), ("success_threshold", "up_when"))


class Defaults(_Strict):
    interval: Duration = Field(30.0, description="How often each check runs.")
    timeout: Duration = Field(10.0, description="How long a run may take before it is cancelled.")
    retries: int = Field(
        0, ge=0, le=10, description="Attempts after a failed one, within the same run."
    )
    retry_delay: RetryDelay = Field(1.0, description="Pause before each retry.")
    retry_delay_max: Duration = Field(30.0, description="Cap of an exponential retry_delay.")
    failure_threshold: int = Field(
        3, ge=1, description="A job is down after this many non-ok results in a row."
    )
    success_threshold: int = Field(
        2, ge=1, description="A down job has recovered after this many ok results in a row."
    )
    down_when: DownWhen | None = Field(
        None,
        description="Down when at least `failures` of the last `of` results were not ok "
        "(instead of failure_threshold).",
    )
    up_when: UpWhen | None = Field(
        None,
        description="Recovered when at least `successes` of the last `of` results were ok "
        "(instead of success_threshold).",
    )
    timezone: TimeZone = Field("UTC", description="The time zone of cron: lines.")
    jitter: Duration | None = Field(
        None,
        description="Delay each due run by a stable offset in [0, jitter) from the job's name.",
    )


class NotifierSpec(_StrictOptional):
    """One entry of ``notifiers:``: who is told, and how."""

    name: str = Field(min_length=1, description="Unique name; jobs list it in notify:.")
    notifier: str = Field(min_length=1, description="Entry point name in group runner.notifiers.")
    send_on_resolved: bool = Field(True, description="Also say when the job has recovered.")
    repeat_every: Duration | None = Field(
        None, description="Remind this often while the job stays down (off by default)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Validated by the notifier's own options model."
    )


class HistorySpec(_Strict):
    """Where finished runs are stored, and for how long (``history:``)."""

    enabled: bool = Field(True, description="Store every finished run (on by default).")
    path: str | None = Field(
        None,
        description="SQLite file. Default: $STATE_DIRECTORY/<config name>.sqlite3 under "
        "systemd, else ~/.local/state/runner/<config name>.sqlite3.",
    )
    url: str | None = Field(
        None,
        description="postgresql://user@host/db: store in PostgreSQL instead of SQLite "
        "(needs the runner-daemon[postgresql] extra).",
    )
    keep: Duration = Field(30 * 86400.0, description="Delete runs older than this.")
    keep_runs: int | None = Field(
        100_000,
        ge=1,
        le=2**63 - 1,  # SQLite's largest integer
        description="Keep at most this many runs per job (null: no limit).",
    )
    flush_every: Duration = Field(
        1.0, description="Results are written in batches at least this often."
    )

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "expected a PostgreSQL URL such as postgresql://runner@db.example/runner; "
                "for SQLite use path:"
            )
        return url

    @model_validator(mode="after")
    def _one_place(self) -> HistorySpec:
        if self.path is not None and self.url is not None:
            raise ValueError("give path (SQLite) or url (PostgreSQL), not both")
        return self


class ClusterSpec(_StrictOptional):
    """Several daemons sharing one PostgreSQL history, each check run by one of
    them (``cluster:``; docs/cluster.md)."""

    name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The cluster's name: daemons with the same history.url and name share "
        "their checks. Default: the config file's name without .yaml.",
    )
    lease: Duration = Field(
        10.0,
        ge=1.0,
        le=3600.0,
        description="How long a member that stops renewing keeps its checks: a killed "
        "member's checks run elsewhere within lease + interval. At least 1s.",
    )


class AuthSpec(_StrictOptional):
    token: str = Field(
        min_length=16,
        description="Bearer token (or basic-auth password) for every path but /healthz: "
        '"${RUNNER_TOKEN}".',
    )


class HttpSpec(_StrictOptional):
    """The HTTP endpoint (``http:``): metrics, the status page, the JSON API."""

    listen: str = Field(
        "127.0.0.1:9150", description="host:port to serve on; port 0 picks a free one."
    )
    auth: AuthSpec | None = Field(None, description="Require a token.")
    public: bool = Field(
        False, description="Serve a non-loopback listen address without auth, on purpose."
    )
    external_url: str | None = Field(
        None,
        description="Where people reach the status page (https://status.example/); alerts "
        "link to it.",
    )

    def host_and_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def is_loopback(self) -> bool:
        """Whether ``listen`` is reachable from this machine only."""
        host = self.host_and_port()[0]
        return host in ("localhost", "::1") or host.startswith("127.")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected host:port, such as 127.0.0.1:9150 or [::1]:9150")
        return listen

    @model_validator(mode="after")
    def _safe_by_default(self) -> HttpSpec:
        if not self.is_loopback() and self.auth is None and not self.public:
            raise ValueError(
                f"listen {self.listen} is reachable from other machines: set "
                "auth: {token: ${RUNNER_TOKEN}}, or public: true to serve it without one"
            )
        return self


def _no_options() -> dict[str, Any]:
    return {}


def _no_notifiers() -> list[str]:
    return []


# JobSpec's factories are functions rather than ``dict`` and ``list``: pydantic
# reads a default_factory's signature, and a builtin's is parsed from its text
# with tokenize, whose first use compiles a regular expression that costs 3 ms
# of every start.
class JobSpec(_Strict):
    name: str = Field(min_length=1, description="Unique name of the job.")
    plugin: str = Field(min_length=1, description="Entry point name in group runner.plugins.")
    interval: Duration | None = Field(None, description="Overrides defaults.interval.")
    timeout: Duration | None = Field(None, description="Overrides defaults.timeout.")
    options: dict[str, Any] = Field(
        default_factory=_no_options, description="Validated by the plugin's own options model."
    )
    notify: list[str] = Field(
        default_factory=_no_notifiers, description="Names of notifiers told when the job goes down."
    )
    failure_threshold: int | None = Field(None, ge=1, description="Overrides the default.")
    success_threshold: int | None = Field(None, ge=1, description="Overrides the default.")
    down_when: DownWhen | None = Field(
        None, description="Instead of failure_threshold; overrides the default down rule."
    )
    up_when: UpWhen | None = Field(
        None, description="Instead of success_threshold; overrides the default up rule."
    )
    retries: int | None = Field(None, ge=0, le=10, description="Overrides defaults.retries.")
    retry_delay: RetryDelay | None = Field(None, description="Overrides defaults.retry_delay.")
    retry_delay_max: Duration | None = Field(None, description="Overrides the default.")
    cron: CronLine | None = Field(
        None, description="Run at the times of this cron line instead of every interval."
    )
    timezone: TimeZone | None = Field(
        None, description="The time zone of cron: (default: defaults.timezone, else UTC)."
    )
    jitter: Duration | None = Field(None, description="Overrides defaults.jitter.")
    locations: Locations | None = Field(
        None,
        description="In a cluster: run the check from each of these locations (the members' "
        "--location), or all of them; it is down when quorum of them fail.",
    )
    quorum: int | None = Field(
        None,
        ge=1,
        description="With locations: how many must fail for the check to be down (default: "
        "more than half of them).",
    )


# -- maintenance:


def _all_jobs() -> list[str]:
    return ["*"]


class MaintenanceSpec(_StrictOptional):
    """One entry of ``maintenance:``: when the jobs it names may fail without an alert.

    Recurring (``cron`` and ``duration``) or once (``start`` and ``end``).
    """

    model_config = ConfigDict(
        extra="forbid",
        defer_build=True,
        # Editors: one form or the other, each whole (the loader says the same).
        json_schema_extra={
            "oneOf": [{"required": ["cron"]}, {"required": ["start"]}],
            "dependentRequired": {
                "cron": ["duration"],
                "duration": ["cron"],
                "start": ["end"],
                "end": ["start"],
            },
        },
    )

    name: str = Field(min_length=1, description="Unique name; results in the window carry it.")
    cron: CronLine | None = Field(
        None,
        description='Recurring: each time of this cron expression ("0 3 * * SUN"; six fields '
        "with a leading seconds field) starts the window.",
    )
    duration: Duration | None = Field(None, description="How long each recurring window lasts.")
    timezone: TimeZone | None = Field(
        None,
        description="IANA time zone of cron (and of start/end without an offset); default "
        "defaults.timezone, else UTC.",
    )
    start: datetime | None = Field(
        None, description="Once: when the window starts (ISO 8601, 2026-12-24T22:00:00+01:00)."
    )
    end: datetime | None = Field(None, description="Once: when it ends (ISO 8601), after start.")
    jobs: list[str] = Field(
        default_factory=_all_jobs,
        description="Job names or shell-style patterns (db-*, web-?); default: every job.",
    )

    def span(self, default_zone: str) -> tuple[float, float] | None:
        """A one-off window's start and end (epoch seconds), a time written
        without an offset read in ``timezone``, else ``default_zone``."""
        if self.start is None or self.end is None:
            return None
        zone = zone_named(self.timezone or default_zone)
        start, end = (t if t.tzinfo else t.replace(tzinfo=zone) for t in (self.start, self.end))
        return start.timestamp(), end.timestamp()
