"""Where browser checks keep the evidence of a failure: screenshots and traces.

Files go to ``BASE/JOB/TIMESTAMP.png`` (and ``TIMESTAMP-trace.zip``), where
BASE is the job's ``artifacts_dir`` option, else ``$STATE_DIRECTORY/artifacts``
under systemd, else ``artifacts/`` in the same state directory the history
uses by default (``$XDG_STATE_HOME/runner`` or ``~/.local/state/runner``).
File names hold only the time; the folder is the job's name with anything but
letters, digits, ``.``, ``_`` and ``-`` replaced, and any secret substituted
from the environment masked, so no secret ends up in a path.

Retention works per job, like the history's: after each save, the evidence of
all but the newest ``keep`` failures, and any older than ``keep_for``, is
deleted.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

from runner.paths import state_dir
from runner.plugin import mask_secrets

__all__ = ["artifacts_base", "job_folder", "new_stem", "prune", "write_bytes"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def artifacts_base(configured: str | None = None) -> Path:
    """The folder under which each job's artifacts go."""
    if configured:
        return Path(configured).expanduser()
    return state_dir() / "artifacts"


def job_folder(base: Path, job: str) -> Path:
    """``base/JOB`` with the job's name made safe for a path and free of secrets."""
    name = _UNSAFE.sub("_", str(mask_secrets(job)).replace("***", "_")).strip(".")
    return base / (name or "_")


def new_stem(folder: Path, now: float | None = None) -> str:
    """A name for one failure's files (``20261125T175918.123Z``), unique in ``folder``."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    stem = moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"
    candidate, n = stem, 1
    while any(folder.glob(f"{candidate}*")):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def prune(folder: Path, *, keep: int, keep_for: float, now: float | None = None) -> int:
    """Delete all but the newest ``keep`` failures' files and those older than
    ``keep_for`` seconds; return how many files were deleted."""
    try:
        files = [p for p in folder.iterdir() if p.is_file()]
    except FileNotFoundError:
        return 0
    # Files of one failure share the stem before any "-trace" suffix.
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.name.split("-trace")[0].removesuffix(".png"), []).append(path)
    cutoff = (time.time() if now is None else now) - keep_for
    newest_first = sorted(groups, reverse=True)  # stems are UTC timestamps
    deleted = 0
    for index, stem in enumerate(newest_first):
        paths = groups[stem]
        too_old = max(_mtime(p) for p in paths) < cutoff
        if index >= keep or too_old:
            for path in paths:
                try:
                    path.unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
    return deleted


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
