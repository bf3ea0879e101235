"""Appends the intake's events to the queue in shared round trips.

Requests that arrive while an append is on its way to Redis wait for the next one and go together
in a single pipeline; a lone request goes at once. Every request still answers only after its own
entry is in Redis, so acknowledging an event always means it is queued.
"""

from __future__ import annotations

import asyncio

from tenants.queue import NewEntry, Queue

MAX_PIPELINE = 256


class Appender:
    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self._waiting: list[tuple[NewEntry, asyncio.Future[str]]] = []
        self._sending: asyncio.Task[None] | None = None

    async def append(self, entry: NewEntry) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, future))
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting[:MAX_PIPELINE], self._waiting[MAX_PIPELINE:]
            try:
                entry_ids = await self._queue.enqueue_many([entry for entry, _ in taken])
            except Exception as error:  # every waiting request must hear about it
                for _, future in taken:
                    future.set_exception(error)
                continue
            for (_, future), entry_id in zip(taken, entry_ids, strict=True):
                future.set_result(entry_id)
