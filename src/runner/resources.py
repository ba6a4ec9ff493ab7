"""Shared resources: things created once per daemon and used by many runs.

A browser, an HTTP client with its TLS context, a connection pool: costly to
create, cheap to share. A plugin asks for one by key with a factory that
returns an async context manager; the first caller creates it, later callers
get the same object, and the daemon closes everything in reverse order at
shutdown.

A resource found unusable (a crashed browser) is closed by a task of its own,
not in the task of the run that found it: a run cancelled at its timeout
during that close does not interrupt it (a Playwright driver half-stopped),
its successor is made only once it is done, and :meth:`Resources.aclose`
waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar

T = TypeVar("T")

#: Errors of closes at a relaunch kept for aclose(); a browser that crashes
#: and fails to close again and again does not grow the daemon's memory.
_CLOSE_ERRORS_KEPT = 10


class Resources:
    """The daemon's cache of shared resources, keyed by any hashable value."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Any, AsyncExitStack]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._creating: dict[Hashable, asyncio.Task[Any]] = {}
        #: Closes of unusable resources under way, one task each.
        self._closing: dict[Hashable, asyncio.Task[None]] = {}
        #: What those closes raised, raised again by aclose().
        self._close_errors: list[Exception] = []
        self._closed = False

    async def get(
        self,
        key: Hashable,
        factory: Callable[[], AbstractAsyncContextManager[T]],
        *,
        usable: Callable[[T], bool] | None = None,
    ) -> T:
        """Return the resource for `key`, creating it with `factory()` on first use.

        Args:
            key: identifies the resource; include every setting that makes two
                resources differ, e.g. ``("browser", "chromium", path)``.
            factory: returns an async context manager whose ``__aenter__`` yields
                the resource and whose ``__aexit__`` releases it.
            usable: called on a cached resource before handing it out; when it
                returns False (a crashed browser, say) the resource is closed
                and created anew. The close runs in a task of its own, which
                a caller cancelled meanwhile does not interrupt, and the new
                resource is created once it is done; an error it raises is
                raised by :meth:`aclose`, not to the caller.

        Raises:
            RuntimeError: the daemon is shutting down.
            Exception: whatever the factory raised; nothing is cached then, so
                the next call tries again.
        """
        if self._closed:
            raise RuntimeError("resources are closed: the daemon is shutting down")
        entry = self._entries.get(key)
        if entry is not None and (usable is None or usable(entry[0])):
            return entry[0]  # type: ignore[no-any-return]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None:
                if usable is None or usable(entry[0]):
                    return entry[0]  # type: ignore[no-any-return]
                del self._entries[key]
                self._close_in_background(key, entry[1])
            closing = self._closing.get(key)
            if closing is not None:
                # One at a time: the old one is gone before its successor is
                # made. Shielded: a caller cancelled meanwhile (a run at its
                # timeout) leaves the close to finish; the next caller waits.
                await asyncio.shield(closing)
            if self._closed:
                raise RuntimeError("resources are closed: the daemon is shutting down")
            creating = self._creating.get(key)
            if creating is None:
                creating = asyncio.create_task(self._create(key, factory), name=f"resource:{key}")
                self._creating[key] = creating
            # Shielded: a caller cancelled at its timeout does not leave a
            # half-launched browser behind; the creation finishes, is cached,
            # and the next caller gets it.
            return await asyncio.shield(creating)

    async def _create(
        self, key: Hashable, factory: Callable[[], AbstractAsyncContextManager[Any]]
    ) -> Any:
        stack = AsyncExitStack()
        try:
            value = await stack.enter_async_context(factory())
            if self._closed:  # aclose() ran while the factory was working
                raise RuntimeError("resources are closed: the daemon is shutting down")
        except BaseException:
            await stack.aclose()
            raise
        finally:
            self._creating.pop(key, None)
        self._entries[key] = (value, stack)
        return value

    def _close_in_background(self, key: Hashable, stack: AsyncExitStack) -> None:
        """Close an unusable resource in a task owned here, not by the caller."""

        async def close() -> None:
            try:
                await stack.aclose()
            except Exception as exc:  # kept for aclose(): not the caller's failure
                if len(self._close_errors) < _CLOSE_ERRORS_KEPT:
                    self._close_errors.append(exc)
            finally:
                if self._closing.get(key) is task:
                    del self._closing[key]

        task = asyncio.create_task(close(), name=f"resource-close:{key}")
        self._closing[key] = task

    def __len__(self) -> int:
        return len(self._entries)

    async def aclose(self) -> None:
        """Close every resource, newest first. Errors are collected, not swallowed."""
        self._closed = True
        # Creations still under way finish first (they close what they made),
        # and so do closes of unusable resources (a relaunch's old browser).
        await asyncio.gather(*self._creating.values(), return_exceptions=True)
        await asyncio.gather(*self._closing.values(), return_exceptions=True)
        errors: list[BaseException] = list(self._close_errors)
        self._close_errors.clear()
        for key in reversed(list(self._entries)):
            _, stack = self._entries.pop(key)
            try:
                await stack.aclose()
            except Exception as exc:  # keep closing the others
                errors.append(exc)
        if errors:
            raise ExceptionGroup("closing shared resources failed", errors)  # type: ignore[type-var]
