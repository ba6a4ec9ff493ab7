"""Which live member should run each job: rendezvous hashing over the
members that hold the job's winning definition.

Rendezvous (highest random weight) hashing gives each job to the member
with the highest ``hash(job, member)``: every member computes the same
answer from the same list, with no coordinator, and when a member joins or
leaves only the jobs it wins or held move (about 1/n of them), the rest stay
where they are. The members' lists can differ for a moment (one read the
table just before a member joined); the database, not this function, keeps
two members from running one job (runner.cluster.store: a job is taken
only from no owner or an expired one).

A check with ``locations:`` runs once per location: its unit in a
location goes to a member of that location, by the same hashing over the
members there.

When members hold different definitions of a job (a reload rolled out
host by host), the definition first seen last in the cluster wins: the
job moves to the members that already have the new version, and no member
runs the old one beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = ["owners", "weight", "winning_definitions"]


def weight(job: str, member: str) -> int:
    """The job's weight on ``member`` (BLAKE2b: the same in every process)."""
    digest = hashlib.blake2b(f"{job}\0{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def winning_definitions(
    definitions: Mapping[str, Mapping[str, str]],
    first_seen: Mapping[tuple[str, str], float],
) -> dict[str, str]:
    """For each job some member holds, the definition that runs: the one first
    seen last (ties: the greater digest, so every member picks the same)."""
    winner: dict[str, tuple[float, str]] = {}
    for held in definitions.values():
        for job, definition in held.items():
            key = (first_seen.get((job, definition), 0.0), definition)
            best = winner.get(job)
            if best is None or key > best:
                winner[job] = key
    return {job: definition for job, (_, definition) in winner.items()}


def owners(
    jobs: Iterable[str] | Mapping[str, str],
    definitions: Mapping[str, Mapping[str, str]],
    first_seen: Mapping[tuple[str, str], float],
    locations: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """The member that should run each of ``jobs``.

    ``definitions``: each live member's jobs and their definitions. ``jobs``
    may map each job to a location ('' for anywhere): the job then goes to a
    member in that location (``locations``: each member's). A job no live
    member can run (none holds its winning definition, or none is there) is
    left out.
    """
    winning = winning_definitions(definitions, first_seen)
    eligible: dict[str, list[str]] = {}
    for member, held in definitions.items():
        for job, definition in held.items():
            if winning.get(job) == definition:
                eligible.setdefault(job, []).append(member)
    where = jobs if isinstance(jobs, Mapping) else dict.fromkeys(jobs, "")
    placed = locations or {}
    result: dict[str, str] = {}
    for job, location in where.items():
        members = eligible.get(job)
        if members and location:
            members = [m for m in members if placed.get(m) == location]
        if members:
            result[job] = max(members, key=lambda m: (weight(job, m), m))
    return result
