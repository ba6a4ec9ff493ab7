"""The alert ledger's record: what was last sent for a job through a notifier."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Sent"]


@dataclass(frozen=True)
class Sent:
    """The last alert a notifier delivered for a job: its event, the episode
    (when the job went down) and when it was sent."""

    event: str
    episode: float | None
    sent_at: float
