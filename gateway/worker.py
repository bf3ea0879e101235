"""The worker: reads the shards it holds, hands events to their dialogs, acknowledges when done.

An entry stays unacknowledged until every event in it has been answered (or given up on), so a
worker that dies mid-turn loses nothing: its leases expire, another worker takes the shard and
the entries with it. A delivered event is marked done after its reply, so taking an entry over
never answers twice what was already answered. On SIGTERM the worker stops reading, lets running
turns finish within the grace period and hands the rest back by releasing its leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from starlette.applications import Starlette

from gateway.dialogs import Dialogs, Work
from gateway.events import EventError, parse_fetched, parse_webhook
from gateway.fetcher import FETCH_SOURCE, Fetcher
from gateway.leases import ShardLeases
from gateway.model import ChatEvent
from gateway.portals import PortalClients
from gateway.sinks import ChatSink, ReplySink, TestChatSink
from gateway.turns import Turns
from tenants.bitrix24.phpform import FormError, decode
from tenants.bots import BotDirectory, BotProfile
from tenants.health import health_routes
from tenants.logs import bind_context
from tenants.metrics import QUEUE_LAG, QUEUE_LENGTH
from tenants.queue import Delivery, Queue
from tenants.runtime import Runtime
from tenants.store import Tenant, TenantStore

log = logging.getLogger("bitbot.worker")

MAX_DELIVERIES = 5
TENANT_CACHE_TTL_S = 15.0
TENANT_CACHE_SIZE = 50_000
REDIS_RETRY_S = 1.0


def create_worker_health_app(runtime: Runtime) -> Starlette:
    return Starlette(routes=health_routes(runtime))


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class _Entry:
    """An entry being worked on: acknowledged once all its events are finished."""

    queue: Queue
    delivery: Delivery
    remaining: int
    failure: str | None = None
    summary: str = ""

    async def finish(self, failure: str | None, summary: str) -> None:
        if failure and not self.failure:
            self.failure, self.summary = failure, summary
        self.remaining -= 1
        if self.remaining > 0:
            return
        if self.failure:
            await self.queue.dead_letter(self.delivery, self.failure, self.summary)
        else:
            await self.queue.ack(self.delivery)


class Worker:
    def __init__(
        self,
        *,
        queue: Queue,
        leases: ShardLeases,
        turns: Turns,
        bots: BotDirectory,
        store: TenantStore,
        portals: PortalClients,
        runtime: Runtime,
        read_block_ms: int = 1000,
        read_count: int = 200,
        grace_s: float = 60.0,
    ) -> None:
        self._queue = queue
        self._leases = leases
        self._turns = turns
        self._bots = bots
        self._store = store
        self._portals = portals
        self._runtime = runtime
        self._block_ms = read_block_ms
        self._count = read_count
        self._grace_s = grace_s
        self._dialogs = Dialogs(self._run_turn, self._batch_delay)
        self._fetcher = Fetcher(
            runtime.engine, store, queue, portals, lambda: set(self._leases.held)
        )
        self._in_flight: dict[tuple[str, str], int] = {}  # (stream, entry id) -> shard
        self._tenants: dict[int, tuple[float, Tenant | None]] = {}

    @property
    def in_flight(self) -> int:
        return self._dialogs.in_flight

    async def run(self, stop: asyncio.Event) -> None:
        await self._queue.ensure_groups()
        keeper = asyncio.create_task(self._keep_leases(stop))
        fetcher = asyncio.create_task(self._fetcher.run(stop))
        try:
            while not stop.is_set():
                shards = sorted(self._leases.held)
                if not shards:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.2)
                    continue
                deliveries = await self._read(shards)
                await self._load_tenants(deliveries)
                for delivery in deliveries:
                    await self._accept(delivery)
        finally:
            if not await self._dialogs.drain(self._grace_s):
                log.warning("grace period over; unfinished turns go back to the queue")
                await self._dialogs.cancel()
            for task in (keeper, fetcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._leases.release_all()

    async def _read(self, shards: list[int]) -> list[Delivery]:
        try:
            return await self._queue.read(self._leases.owner, shards, self._count, self._block_ms)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # Redis lost the streams (a restart without persistence): recreate and go on.
            log.warning("queue consumer groups were missing; recreating them")
            await self._queue.ensure_groups()
        except RedisConnectionError:
            log.warning("Redis is unreachable; retrying in %s s", REDIS_RETRY_S)
            await asyncio.sleep(REDIS_RETRY_S)
        return []

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                gained, lost = await self._leases.refresh(busy=self._busy_shards())
            except RedisConnectionError:
                log.warning("Redis is unreachable; leases not renewed")
                gained, lost = set(), set()
            if lost:
                log.warning("lost the leases of shards %s", sorted(lost))
            for shard in sorted(gained):
                await self._take_over(shard)
            if gained or lost:
                self._fetcher.nudge()
            await self._report_queue()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._leases.ttl_ms / 3000)

    async def _report_queue(self) -> None:
        now = time.time()
        for shard in self._leases.held:
            length, oldest = await self._queue.backlog(shard)
            QUEUE_LENGTH.labels(str(shard)).set(length)
            QUEUE_LAG.labels(str(shard)).set(max(0.0, now - oldest) if oldest else 0.0)

    def _busy_shards(self) -> set[int]:
        return set(self._in_flight.values())

    async def _load_tenants(self, deliveries: list[Delivery]) -> None:
        """Load the tenants a batch needs and the cache lacks, all at once: entries are accepted
        one by one in stream order, and a cold tenant would otherwise hold up the rest."""
        now = time.monotonic()
        wanted = {d.envelope.tenant_id for d in deliveries if not d.broken}
        missing = [
            t for t in wanted if (cached := self._tenants.get(t)) is None or cached[0] <= now
        ]
        if len(missing) > 1:
            await asyncio.gather(*(self._tenant(tenant_id) for tenant_id in missing))

    async def _tenant(self, tenant_id: int) -> Tenant | None:
        cached = self._tenants.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        tenant = await self._store.get(tenant_id)
        if len(self._tenants) > TENANT_CACHE_SIZE:
            self._tenants.clear()
        self._tenants[tenant_id] = (time.monotonic() + TENANT_CACHE_TTL_S, tenant)
        return tenant

    async def _take_over(self, shard: int) -> None:
        """Entries the shard's previous owner read but did not finish are ours now."""
        while claimed := await self._queue.claim(self._leases.owner, shard, 0, self._count):
            await self._load_tenants(claimed)
            for delivery in claimed:
                await self._accept(delivery)
            if len(claimed) < self._count:
                return

    async def _accept(self, delivery: Delivery) -> None:
        # Entry ids are unique per stream only: two shards can hand out the same id.
        key = (delivery.stream, delivery.entry_id)
        if key in self._in_flight:
            return
        if delivery.broken:
            await self._queue.dead_letter(delivery, delivery.broken, "")
            return
        if delivery.deliveries > MAX_DELIVERIES:
            reason = f"handed out {delivery.deliveries} times without finishing"
            await self._queue.dead_letter(delivery, reason, "")
            return
        tenant = await self._tenant(delivery.envelope.tenant_id)
        if tenant is None or tenant.status != "active":
            await self._queue.ack(delivery)  # the portal left or must reinstall: nothing to answer
            return
        try:
            works = self._works(delivery, tenant)
        except (EventError, FormError, ValueError) as error:
            await self._queue.dead_letter(delivery, f"unreadable event: {error}", "")
            return
        if not works:
            await self._queue.ack(delivery)
            return
        self._in_flight[key] = int(delivery.stream.rsplit(":", 1)[1])
        entry = _Entry(self._queue, delivery, len(works))

        async def finish(failure: str | None, summary: str) -> None:
            await entry.finish(failure, summary)
            if entry.remaining == 0:
                self._in_flight.pop(key, None)

        for work in works:
            work.finish = finish
            work.received_at = delivery.envelope.received_at
            self._dialogs.submit(work)

    def _works(self, delivery: Delivery, tenant: Tenant) -> list[Work]:
        envelope = delivery.envelope
        if envelope.kind == "test":
            return [_test_work(json.loads(envelope.payload), tenant)]
        if envelope.payload.startswith("{"):
            return self._fetched_work(json.loads(envelope.payload), tenant)
        events = parse_webhook(decode(envelope.payload.encode()))
        return [Work(event, tenant, _unset) for event in events]

    def _fetched_work(self, payload: dict[str, Any], tenant: Tenant) -> list[Work]:
        if payload.get("source") != FETCH_SOURCE or not isinstance(payload.get("item"), dict):
            raise ValueError("a JSON entry must be a fetched event")
        event = parse_fetched(tenant.member_id, tenant.client_endpoint, payload["item"])
        if event is None:
            return []
        return [Work(replace(event, scope=tenant.scope), tenant, _unset)]

    async def _batch_delay(self, work: Work) -> float:
        profile = await self._profile(work)
        return profile.batch_delay_ms / 1000 if profile else 0.0

    async def _profile(self, work: Work) -> BotProfile | None:
        if work.bot_profile_id is not None:
            return await self._bots.by_id(work.tenant.id, work.bot_profile_id)
        return await self._bots.by_bitrix24_id(work.tenant.id, work.event.bot_id)

    async def _run_turn(self, works: list[Work]) -> None:
        last = works[-1]
        # Each dialog's turns run in a task of its own (Dialogs): the ids stay with this dialog.
        bind_context(
            tenant_id=last.tenant.id, bot_id=last.event.bot_id, dialog_id=last.event.dialog_id
        )
        profile = await self._profile(last)
        failure: str | None = None
        summary = ""
        try:
            if last.event.kind == "bot_delete":
                await self._forget_bot(last)
            else:
                outcome = await self._turns.run(works, self._sink(last, profile), profile)
                failure, summary = outcome.failure, outcome.summary
        except Exception as error:
            log.exception("turn crashed")
            failure, summary = f"crashed: {type(error).__name__}", last.event.event_name
        for work in works:
            await work.finish(failure, summary)

    def _sink(self, work: Work, profile: BotProfile | None) -> ReplySink:
        if work.test_sink:
            return TestChatSink(self._runtime.redis, work.test_sink)
        version = profile.api_version if profile else 1
        return ChatSink(
            self._portals.client(work.tenant), self._portals.coalescer(work.tenant), version
        )

    async def _forget_bot(self, work: Work) -> None:
        await self._store.forget_bitrix24_bot(work.tenant.id, work.event.bot_id)
        self._bots.forget(work.tenant.id)


async def _unset(failure: str | None, summary: str) -> None:
    raise AssertionError("the worker sets every work's finish before submitting it")


def _test_work(payload: dict[str, object], tenant: Tenant) -> Work:
    """A message typed in the admin's test chat, shaped like a private message to the bot."""
    text = str(payload.get("text", ""))
    user_id = str(payload.get("user_id", "0"))
    event = ChatEvent(
        kind="message",
        origin="test",
        event_name="ONIMBOTMESSAGEADD",
        member_id=tenant.member_id,
        bot_id=int(str(payload.get("b24_bot_id", 0) or 0)),
        dialog_id=str(payload.get("dialog_id", f"test{user_id}")),
        message_id=str(payload.get("message_id", "")),
        text=text,
        author_id=user_id,
        first_name=str(payload.get("first_name", "")),
        last_name=str(payload.get("last_name", "")),
        language=str(payload.get("language", "")),
        client_endpoint=tenant.client_endpoint,
        scope=tenant.scope,
    )
    return Work(
        event,
        tenant,
        _unset,
        test_sink=str(payload["sink"]),
        bot_profile_id=int(str(payload["bot_id"])),
    )
