"""Turns a backlog of calls to one portal into ``batch`` requests.

Calls wait in order; one drain loop per portal takes the portal's budget first and only then takes
up to 50 waiting calls, so whatever piles up while the bucket is empty leaves as one batch. A quiet
portal sees plain calls with no added delay; a busy one gets up to 50 times the bucket's rate.

Notifications (typing indicators) ride along best effort: ``notify`` returns at once, the call
leaves in the next batch, and nobody waits for its answer. They never make the loop wait for the
budget: when only notifications are waiting and the bucket is empty, they are dropped, and one
that waited longer than ``STALE_S`` behind other calls is dropped too, since it would show "typing"
after the moment has passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from tenants.bitrix24.client import MAX_BATCH, Bitrix24Client, Call
from tenants.bitrix24.errors import Bitrix24Error
from tenants.metrics import TYPING_DROPPED

log = logging.getLogger("bitbot.bitrix24")

STALE_S = 3.0


@dataclass
class _Waiting:
    call: Call
    future: asyncio.Future[Any] | None  # None: a notification nobody waits for
    since: float


class Coalescer:
    def __init__(self, client: Bitrix24Client) -> None:
        self._client = client
        self._waiting: list[_Waiting] = []
        self._drain: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._drain is not None and not self._drain.done()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Waiting(Call(method, params), future, time.monotonic()))
        return await future

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send best effort, without waiting; see the module's docstring."""
        self._enqueue(_Waiting(Call(method, params), None, time.monotonic()))

    def _enqueue(self, item: _Waiting) -> None:
        self._waiting.append(item)
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._waiting:
            if all(item.future is None for item in self._waiting):
                if not await self._client.try_reserve():
                    _drop(len(self._waiting))
                    self._waiting = []
                    return
            else:
                await self._client.reserve()
            taken = self._take()
            try:
                await self._send(taken)
            except Exception as error:  # settle every waiter; none may hang on a lost task
                for item in taken:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(error)

    def _take(self) -> list[_Waiting]:
        taken: list[_Waiting] = []
        stale_before = time.monotonic() - STALE_S
        while self._waiting and len(taken) < MAX_BATCH:
            item = self._waiting.pop(0)
            if item.future is None and item.since < stale_before:
                _drop(1)
                continue
            taken.append(item)
        return taken

    async def _send(self, taken: list[_Waiting]) -> None:
        if not taken:
            return
        if len(taken) == 1:
            item = taken[0]
            try:
                result = (await self._client.send_reserved(item.call))["result"]
            except Bitrix24Error:
                if item.future is None:
                    return  # a notification that failed changes nothing
                raise
            if item.future is not None:
                item.future.set_result(result)
            return
        results = await self._client.batch_reserved([item.call for item in taken])
        for item, result in zip(taken, results, strict=True):
            if item.future is None:
                continue
            if isinstance(result, Bitrix24Error):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)


def _drop(count: int) -> None:
    TYPING_DROPPED.inc(count)
    log.debug("dropped %d notifications to save the portal's budget", count)
