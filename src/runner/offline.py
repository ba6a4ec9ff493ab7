"""The offline hint: said once when every check that reaches a host failed to
resolve its name, which on a first try means "no network", not "every site
is down".

The Quick start's first config checks public sites; on a machine without a
network every one of those checks fails with a name-resolution error, and a
new user reads that as runner being broken. One line tells them what
happened and which config works without a network.

Plugins say both halves; the core reads neither options nor messages: a
check's ``target_host(options)`` names the host a job reaches (checks that
reach none are left out), and its result's ``unresolved_host`` field says
that the name did not resolve.

A check whose host needs no name resolution (an address such as 127.0.0.1,
or ``localhost``) counts neither way: it passes on a machine without a
network, so it proves nothing about the network. (configs/site-checks.yaml
has one, and before this rule its users offline never got the hint.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack

from runner.log import get_logger
from runner.model import Job, JobState, RunRecord
from runner.plugin import UNRESOLVED_HOST, Check, Status

__all__ = ["HINT", "OfflineHint", "network_checks", "offline_hint"]

HINT = (
    "this machine seems to be offline: every check that reaches a host failed to resolve "
    "its name. configs/local.yaml in runner's repository shows every plugin working without "
    "a network: runner serve configs/local.yaml"
)

#: Fewer checks than this prove nothing: one failing name is more likely a typo.
_MIN_CHECKS = 2


def network_checks(jobs: Iterable[Job]) -> list[str]:
    """The checks among ``jobs`` that reach a host by its name, as their plugins
    declare (:meth:`runner.plugin.Check.target_host`)."""
    return [job.name for job in jobs if _needs_a_name_server(_target_host(job))]


def _needs_a_name_server(host: str | None) -> bool:
    """Whether reaching ``host`` needs its name resolved (not an address, not localhost)."""
    if host is None:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return False  # RFC 6761: answered locally, network or not
    try:
        ipaddress.ip_address(host.partition("%")[0])  # an IPv6 zone (fe80::1%eth0) too
    except ValueError:
        return True
    return False


def _target_host(job: Job) -> str | None:
    if not issubclass(job.plugin, Check):
        return None
    try:
        return job.plugin.target_host(job.options)
    except Exception:  # a plugin's bug must not stop the daemon for a hint
        return None


def _name_not_resolved(record: RunRecord) -> bool:
    """Whether the run says, as its plugin declares, that its host's name did not resolve."""
    return record.status is not Status.OK and bool(record.fields.get(UNRESOLVED_HOST))


def offline_hint(jobs: Iterable[Job], records: Sequence[RunRecord]) -> str | None:
    """:data:`HINT` when every network check in ``records`` failed to resolve
    its host (and there are at least two); else None."""
    network = set(network_checks(jobs))
    ran = [r for r in records if r.job in network]
    if len(ran) >= _MIN_CHECKS and all(_name_not_resolved(r) for r in ran):
        return HINT
    return None


class OfflineHint:
    """A result sink that logs ``network.offline`` once, when the first
    result of every network check of the config is a name-resolution failure.

    It decides on those first results only: once any of them is something
    else (a pass, a 500, a timeout), it stays quiet for the daemon's life.
    """

    def __init__(self, jobs: Iterable[Job]) -> None:
        self._network = set(network_checks(jobs))
        self._first: dict[str, RunRecord] = {}
        self._done = len(self._network) < _MIN_CHECKS
        self._log = get_logger()

    async def start(self, exit_stack: AsyncExitStack) -> None:
        pass

    def submit(self, record: RunRecord, state: JobState) -> None:
        if self._done or record.job not in self._network or record.job in self._first:
            return
        if not _name_not_resolved(record):
            self._done = True
            return
        self._first[record.job] = record
        if len(self._first) == len(self._network):
            self._done = True
            self._log.warning("network.offline", checks=len(self._first), hint=HINT)
