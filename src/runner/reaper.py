"""Reaping orphans when runner is PID 1 (a container, ``unshare --pid --fork``).

Every ``browser.close()`` of Debian's Chromium orphans a few processes that
have already exited (FIELD-NOTES: two ``chrome_crashpad_handler``, two
``chromium``). The kernel hands orphans to the nearest subreaper, else to
PID 1, which must ``wait`` for them; a PID 1 that does not keeps them as
zombies for the container's whole life, four more per browser restart.

An in-process reaper cannot tell an adopted orphan from a child that asyncio's
child watcher, Playwright or a plugin's ``subprocess.run`` is about to wait
for: ``waitpid(-1)`` would steal their exit status, and nothing records who a
process's first parent was. So, as ``tini`` and ``docker run --init`` do, PID
1 splits in two before anything else starts: the parent stays PID 1, forwards
signals to the child and reaps every process that comes to it; the child
(PID 2) runs the daemon as it would anywhere, its own children waited by
their owners as usual. The parent exits with the child's exit code (128 + N
when the child was killed by signal N), and the namespace ends with it.

Set ``RUNNER_NO_INIT=1`` to run the daemon itself as PID 1 anyway (when an
init that reaps already runs elsewhere in the namespace, or to see the zombies).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

__all__ = ["FORWARDED_SIGNALS", "run_as_init_if_pid1"]

#: Signals PID 1 passes on to the daemon: stop (TERM, INT, QUIT), reload (HUP)
#: and whatever else a user might send to the container.
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def run_as_init_if_pid1() -> None:
    """When this process is PID 1, fork: the child returns and runs runner; the
    parent never returns (it reaps and forwards signals until the child exits).

    Call it before any thread or event loop exists. A no-op unless this is
    PID 1, and with ``RUNNER_NO_INIT=1`` set.
    """
    if os.getpid() != 1 or os.environ.get("RUNNER_NO_INIT", "") not in ("", "0"):
        return
    forwarded = set(FORWARDED_SIGNALS)
    sys.stdout.flush()
    sys.stderr.flush()
    # Blocked across the fork, so a signal that arrives before the parent's
    # handlers exist is delivered once they do, not dropped (PID 1 ignores
    # signals it has no handler for).
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
    child = os.fork()
    if child == 0:
        _own_foreground_group()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return
    os._exit(_init(child, forwarded, previous))


def _own_foreground_group() -> None:
    """Put the daemon in a process group of its own, in the terminal's foreground.

    Ctrl-C on a terminal signals the foreground process group: were PID 1 in
    it too, the daemon would get SIGINT twice (once forwarded), and a second
    SIGINT skips the shutdown's grace period. tini does the same.
    """
    os.setpgid(0, 0)
    try:
        if os.isatty(0):
            # A background group changing the foreground would be stopped by SIGTTOU.
            previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(0, os.getpgrp())
            finally:
                signal.signal(signal.SIGTTOU, previous)
    except OSError:
        pass


def _init(child: int, forwarded: set[signal.Signals], mask: set[int | signal.Signals]) -> int:
    """PID 1's loop: forward signals to ``child``, reap everyone, return child's exit code."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in forwarded:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    while True:
        try:
            # Python retries after EINTR (PEP 475), once the handler forwarded.
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # no child at all: the daemon is gone
            return 1
        if pid == child:
            break
    _reap_remaining()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _reap_remaining() -> None:
    """Collect zombies already there; the rest are killed when PID 1 exits."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
