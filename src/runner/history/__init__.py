"""History: every finished run stored, so state survives restarts and can be read back.

* :class:`HistorySink` is the result sink the daemon starts: it queues each
  record and writes batches off the event loop.
* :class:`HistoryStore` is where they go: :class:`SQLiteStore` (the default,
  a file) or :class:`PostgresStore` (``history.url``, shared by several
  daemons). ``runner status`` and ``runner history`` read the same stores.

Where the SQLite file is, unless ``history.path`` says: in the state folder
(:func:`runner.paths.state_dir`), named
after the config (``site-checks.yaml`` -> ``site-checks.sqlite3``), so two
daemons with different configs never share a file by accident. A relative
``history.path`` is relative to the config file's folder.
"""

from __future__ import annotations

from runner.history.opening import open_store
from runner.history.sink import HistorySink
from runner.history.sqlite import SQLiteStore
from runner.history.store import (
    SCHEMA_VERSION,
    HistoryError,
    HistoryStore,
    SchemaTooNewError,
)

__all__ = [
    "SCHEMA_VERSION",
    "HistoryError",
    "HistorySink",
    "HistoryStore",
    "SQLiteStore",
    "SchemaTooNewError",
    "open_store",
]
