"""Turns a backlog of calls to one portal into ``batch`` requests.

Calls wait in order; one drain loop per portal takes the portal's budget first and only then takes
up to 50 waiting calls, so whatever piles up while the bucket is empty leaves as one batch. A quiet
portal sees plain calls with no added delay; a busy one gets up to 50 times the bucket's rate.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tenants.bitrix24.client import MAX_BATCH, Bitrix24Client, Call
from tenants.bitrix24.errors import Bitrix24Error


class Coalescer:
    def __init__(self, client: Bitrix24Client) -> None:
        self._client = client
        self._waiting: list[tuple[Call, asyncio.Future[Any]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((Call(method, params), future))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            await self._client.reserve()
            taken, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                await self._send(taken)
            except Exception as error:  # settle every waiter; none may hang on a lost task
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)

    async def _send(self, taken: list[tuple[Call, asyncio.Future[Any]]]) -> None:
        if len(taken) == 1:
            call, future = taken[0]
            future.set_result((await self._client.send_reserved(call))["result"])
            return
        results = await self._client.batch_reserved([call for call, _ in taken])
        for (_, future), result in zip(taken, results, strict=True):
            if isinstance(result, Bitrix24Error):
                future.set_exception(result)
            else:
                future.set_result(result)
