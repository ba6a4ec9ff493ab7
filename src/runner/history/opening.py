"""Which store a config's ``history:`` names: SQLite (a file) or PostgreSQL (a URL)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runner.history.sqlite import SQLiteStore
from runner.history.store import HistoryStore
from runner.paths import default_history_path

if TYPE_CHECKING:
    from runner.config import HistorySpec

__all__ = ["open_store"]


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
    return SQLiteStore(default_history_path(config_path, environ))
