"""runner: a pluggable task-runner daemon.

Plugin authors import from :mod:`runner.plugin` (also re-exported here).
"""

from __future__ import annotations

from email.parser import HeaderParser
from importlib.metadata import PackageNotFoundError, distribution

# First, before anything here imports structlog: structlog without rich (_compat).
from runner import _compat  # noqa: F401
from runner.plugin import (
    Check,
    NoOptions,
    Options,
    Result,
    RunContext,
    Service,
    ServiceContext,
    Status,
)

#: The distribution's name, for importlib.metadata and pip (the import
#: package is ``runner``; ``runner`` on the package index is another project).
DISTRIBUTION = "runner-daemon"


def _version() -> str:
    """The installed distribution's version, read from its metadata's headers.

    ``importlib.metadata.version()`` parses the whole METADATA file, long
    description (this README, 70 KB) included: 2-3 ms of every start. The
    headers end at the first blank line.
    """
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
    headers = (dist.read_text("METADATA") or "").partition("\n\n")[0]
    return HeaderParser().parsestr(headers)["Version"] or dist.version


__version__ = _version()

__all__ = [
    "Check",
    "NoOptions",
    "Options",
    "Result",
    "RunContext",
    "Service",
    "ServiceContext",
    "Status",
    "__version__",
]
