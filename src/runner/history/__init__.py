"""History: every finished run stored, so state survives restarts and can be read back.

* :class:`HistorySink` is the result sink the daemon starts: it queues each
  record and writes batches off the event loop.
* :class:`HistoryStore` is where they go: :class:`SQLiteStore` (the default,
  a file) or :class:`PostgresStore` (``history.url``, shared by several
  daemons). ``runner status`` and ``runner history`` read the same stores.

Where the SQLite file is, unless ``history.path`` says: under systemd
``$STATE_DIRECTORY`` (``StateDirectory=runner`` in the shipped units), else
``$XDG_STATE_HOME/runner`` or ``~/.local/state/runner``; the file is named
after the config (``site-checks.yaml`` -> ``site-checks.sqlite3``), so two
daemons with different configs never share a file by accident. A relative
``history.path`` is relative to the config file's folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runner.history.sink import HistorySink
from runner.history.sqlite import SQLiteStore
from runner.history.store import (
    SCHEMA_VERSION,
    HistoryError,
    HistoryStore,
    JobSummary,
    SchemaTooNewError,
)

if TYPE_CHECKING:
    from runner.config import HistorySpec

__all__ = [
    "SCHEMA_VERSION",
    "HistoryError",
    "HistorySink",
    "HistoryStore",
    "JobSummary",
    "SQLiteStore",
    "SchemaTooNewError",
    "default_path",
    "open_store",
]


def default_path(config_path: str | os.PathLike[str], environ: Mapping[str, str]) -> Path:
    """Where a config's SQLite history goes when ``history.path`` is not set."""
    state_directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        base = Path(state_directory)
    else:
        xdg = environ.get("XDG_STATE_HOME", "")
        # The XDG spec: a relative value is invalid and must be ignored.
        home_state = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
        base = home_state / "runner"
    return base / f"{Path(config_path).stem}.sqlite3"


def open_store(
    spec: HistorySpec,
    config_path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
) -> HistoryStore:
    """The store a config's ``history:`` names (not yet opened)."""
    if spec.url is not None:
        from runner.history.postgres import PostgresStore

        return PostgresStore(spec.url)
    if spec.path is not None:
        path = Path(spec.path).expanduser()
        if not path.is_absolute():
            path = Path(config_path).resolve().parent / path
        return SQLiteStore(path)
    return SQLiteStore(default_path(config_path, os.environ if environ is None else environ))
