"""Import structlog without making it import rich.

structlog imports rich at its own import whenever rich is installed (and
runner installs it, for the tables of ``runner status``, ``history`` and
``run``): ``structlog.dev`` for its console renderer's tracebacks,
``structlog.tracebacks`` to render the locals in ``dict_tracebacks``. That
is rich.console, rich.traceback, rich.pretty, pygments and attrs: 30-40 ms
of every start of the daemon, a sixth of ``runner serve``'s time to its
first echo (bench/footprint.py), for output an echo-and-sleep config never
writes. Its deprecated ``structlog.threadlocal`` likewise imports greenlet
(installed with Playwright) for a context runner does not use.

So the package imports structlog here first, with ``rich`` and ``greenlet``
hidden from that one import (a ``None`` in ``sys.modules`` makes the import
raise ImportError, which structlog handles as "not installed"); afterwards
both are importable as ever: ``runner.report`` imports rich when it prints a
table, Playwright imports greenlet.
What changes, documented in README.md ("Start-up cost"):

* the console format (``--log-format console``) prints a logged exception as
  Python's plain traceback, not rich's box with every frame's locals (which
  showed values the secret masker never saw);
* in JSON lines, a traceback frame's locals (``dict_tracebacks``) are each
  ``repr()``, cut at 80 characters, instead of rich's pretty form.

If something imported structlog before runner, structlog keeps what it found
then and this does nothing.
"""

from __future__ import annotations

import sys

#: Imported by structlog when installed, and not needed by runner's use of it.
HIDDEN = ("rich", "greenlet")

if "structlog" not in sys.modules:
    hidden = [name for name in HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]
