"""Fetch mode: Chatbots 2.0 bots that poll ``imbot.v2.Event.get`` instead of receiving webhooks.

A bot is polled by the worker that holds its tenant's queue shard, so exactly one process polls
it and its events land in the shard that worker reads. Each fetched event is enqueued first and
only then is the offset committed (``bots.fetch_offset``); a crash in between fetches the same
events again, and the pipeline's done markers keep them from being answered twice. Polling goes
through the portal's shared limiter: every 2 s at most while Bitrix24 says ``hasMore``, backing
off from 5 to 30 s while the bot is idle, so polling never eats the portal's request budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.portals import PortalClients
from tenants.bitrix24 import Bitrix24Error
from tenants.queue import Queue, shard_of
from tenants.schema import bots, tenants
from tenants.store import TenantStore

log = logging.getLogger("bitbot.fetch")

BUSY_INTERVAL_S = 2.0
IDLE_INTERVALS_S = (5.0, 10.0, 20.0, 30.0)
ERROR_INTERVAL_S = 30.0
RESCAN_S = 15.0
PAGE = 100
FETCH_SOURCE = "fetch"


@dataclass(frozen=True)
class FetchBot:
    bot_id: int
    b24_bot_id: int
    tenant_id: int
    member_id: str


def fetched_payload(item: dict[str, object]) -> str:
    return json.dumps({"source": FETCH_SOURCE, "item": item}, ensure_ascii=False)


class Fetcher:
    def __init__(
        self,
        engine: AsyncEngine,
        store: TenantStore,
        queue: Queue,
        portals: PortalClients,
        held_shards: Callable[[], set[int]],
    ) -> None:
        self._engine = engine
        self._store = store
        self._queue = queue
        self._portals = portals
        self._held_shards = held_shards
        self._polls: dict[int, asyncio.Task[None]] = {}
        self._nudged = asyncio.Event()

    def nudge(self) -> None:
        """Look for bots to poll now (the worker's shards changed, a bot was added)."""
        self._nudged.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self._nudged.clear()
                try:
                    await self._rescan()
                except Exception:  # the next rescan retries; polling must not stop for good
                    log.exception("looking for fetch-mode bots failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), RESCAN_S)
        finally:
            for task in self._polls.values():
                task.cancel()
            await asyncio.gather(*self._polls.values(), return_exceptions=True)

    async def _rescan(self) -> None:
        held = self._held_shards()
        wanted = {
            bot.bot_id: bot
            for bot in await self._fetch_bots()
            if shard_of(bot.member_id, self._queue.shards) in held
        }
        for bot_id in set(self._polls) - set(wanted):
            self._polls.pop(bot_id).cancel()
        for bot_id, bot in wanted.items():
            task = self._polls.get(bot_id)
            if task is None or task.done():
                self._polls[bot_id] = asyncio.create_task(self._poll(bot))

    async def _fetch_bots(self) -> list[FetchBot]:
        query = (
            sa.select(bots.c.id, bots.c.b24_bot_id, bots.c.tenant_id, tenants.c.member_id)
            .select_from(bots.join(tenants))
            .where(
                bots.c.event_mode == "fetch",
                bots.c.api_version == 2,
                bots.c.b24_bot_id.is_not(None),
                tenants.c.status == "active",
            )
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [FetchBot(*row) for row in rows]

    async def _poll(self, bot: FetchBot) -> None:
        idle = 0
        while True:
            try:
                more, got = await self.poll_once(bot)
            except Bitrix24Error as error:
                log.warning("fetching events of bot %s failed: %s", bot.bot_id, error.code)
                await asyncio.sleep(ERROR_INTERVAL_S)
                continue
            idle = 0 if got else min(idle + 1, len(IDLE_INTERVALS_S))
            await asyncio.sleep(BUSY_INTERVAL_S if more or got else IDLE_INTERVALS_S[idle - 1])

    async def poll_once(self, bot: FetchBot) -> tuple[bool, int]:
        """One ``Event.get``: enqueue what came, then commit the offset. (hasMore, events)."""
        tenant = await self._store.get(bot.tenant_id)
        if tenant is None:
            return False, 0
        offset = await self._offset(bot.bot_id)
        params: dict[str, object] = {"botId": bot.b24_bot_id, "limit": PAGE}
        if offset is not None:
            params["offset"] = offset
        result = await self._portals.client(tenant).call("imbot.v2.Event.get", params)
        events = result.get("events") or []
        received_at = time.time()
        for item in events:
            payload = fetched_payload(item)
            await self._queue.enqueue("b24", tenant.id, tenant.member_id, payload, received_at)
        next_offset = result.get("nextOffset")
        if next_offset is not None:
            await self._commit(bot.bot_id, int(next_offset))
        return bool(result.get("hasMore")), len(events)

    async def _offset(self, bot_id: int) -> int | None:
        async with self._engine.connect() as connection:
            value = await connection.scalar(
                sa.select(bots.c.fetch_offset).where(bots.c.id == bot_id)
            )
        return None if value is None else int(value)

    async def _commit(self, bot_id: int, offset: int) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(bots).where(bots.c.id == bot_id).values(fetch_offset=offset)
            )
