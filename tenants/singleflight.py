"""Concurrent requests for the same thing share one fetch.

When thousands of turns start at once with a cold cache, each would load the same bot or the same
Dify form; the first caller fetches and the others wait for its result (or its error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(fetch())
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        # Shielded: one waiter giving up must not cancel the fetch the others wait for.
        return await asyncio.shield(running)

    def cancel(self) -> None:
        """Cancel the fetches still running themselves (their waiters are shielded from each
        other, so cancelling a waiter leaves the fetch going); for shutting down."""
        for running in list(self._running.values()):
            running.cancel()
