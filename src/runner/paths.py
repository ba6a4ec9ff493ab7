"""Where runner keeps state on disk: one folder, the same for the core and plugins.

``$STATE_DIRECTORY`` when systemd sets it (``StateDirectory=runner`` in the
shipped units; the first entry when it lists several), else
``$XDG_STATE_HOME/runner``, else ``~/.local/state/runner``. The history's
SQLite file and the browser checks' evidence both live under it; a
third-party plugin that keeps files should put them under :func:`state_dir`
too, so one folder holds everything a daemon writes.

This module is public API and part of the ground floor: it imports nothing
of runner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_history_path", "state_dir"]


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder runner keeps its state in (not created here).

    ``environ`` defaults to ``os.environ``; tests pass their own.
    """
    env = os.environ if environ is None else environ
    state_directory = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        return Path(state_directory)
    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative value is invalid and must be ignored.
    home_state = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return home_state / "runner"


def default_history_path(
    config_path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Path:
    """Where a config's SQLite history goes when ``history.path`` is not set:
    ``STATE_DIR/<config file's stem>.sqlite3``."""
    return state_dir(environ) / f"{Path(config_path).stem}.sqlite3"
