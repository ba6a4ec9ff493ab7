"""Several daemons, one monitor: members of a cluster share one PostgreSQL
and run each check on exactly one of them (``cluster:`` in the config).

- :mod:`~runner.cluster.store`: the cluster's tables and statements (leases,
  owners), in the database the members share for history;
- :mod:`~runner.cluster.ownership`: which live member should run each check
  (rendezvous hashing over the members that hold its definition);
- :mod:`~runner.cluster.member`: this daemon's membership, renewing its lease
  and starting and stopping its share of the checks.

Nothing is imported here: a daemon without ``cluster:`` loads none of it
(the daemon imports :class:`ClusterRefused` at start-up).
"""

__all__ = ["ClusterRefused"]


class ClusterRefused(Exception):
    """The daemon cannot join its cluster (exit 2, nothing started)."""
