"""Shared resources: things created once per daemon and used by many runs.

A browser, an HTTP client with its TLS context, a connection pool: costly to
create, cheap to share. A plugin asks for one by key with a factory that
returns an async context manager; the first caller creates it, later callers
get the same object, and the daemon closes everything in reverse order at
shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar

T = TypeVar("T")


class Resources:
    """The daemon's cache of shared resources, keyed by any hashable value."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Any, AsyncExitStack]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._creating: dict[Hashable, asyncio.Task[Any]] = {}
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
                and created anew.

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
                await entry[1].aclose()
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

    def __len__(self) -> int:
        return len(self._entries)

    async def aclose(self) -> None:
        """Close every resource, newest first. Errors are collected, not swallowed."""
        self._closed = True
        # Creations still under way finish first (they close what they made).
        await asyncio.gather(*self._creating.values(), return_exceptions=True)
        errors: list[BaseException] = []
        for key in reversed(list(self._entries)):
            _, stack = self._entries.pop(key)
            try:
                await stack.aclose()
            except Exception as exc:  # keep closing the others
                errors.append(exc)
        if errors:
            raise ExceptionGroup("closing shared resources failed", errors)  # type: ignore[type-var]
