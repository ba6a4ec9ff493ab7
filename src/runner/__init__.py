"""runner: a pluggable task-runner daemon.

Plugin authors import from :mod:`runner.plugin` (also re-exported here).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# First, before anything here imports structlog: structlog without rich.
from runner import _structlog  # noqa: F401
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

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

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
