"""The whole event path for end-to-end tests: fake Bitrix24, Dify and Typebot over loopback HTTP,
the real gateway app served by uvicorn, and a real worker consuming the queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa

from billing import Billing
from gateway import build_worker, create_gateway_app
from gateway.providers import ProviderHttp
from gateway.turns import RetryPolicy
from gateway.worker import Worker
from tenants.bitrix24 import PooledTransport
from tenants.clock import Clock
from tenants.migrate import upgrade
from tenants.netguard import HostGuard
from tenants.runtime import Runtime, build_runtime
from tenants.schema import bots, connectors, providers, utcnow
from tenants.settings import load_settings
from tenants.store import Tenant, TenantStore
from tenants.vault import tenant_context
from tests.conftest import B24_CLIENT_ID, B24_SECRET, PUBLIC_URL, Backend
from tests.fakes.bitrix24 import Bot, FakeBitrix24, Portal, SentMessage
from tests.fakes.dify import DifyApp, FakeDify
from tests.fakes.server import serve
from tests.fakes.typebot import FakeTypebot, Typebot
from tests.installs import install_portal

FAST_RETRY = RetryPolicy(attempts=3, first_delay_s=0.01, factor=2.0)


@dataclass
class Stack:
    runtime: Runtime
    cloud: FakeBitrix24
    dify: FakeDify
    dify_url: str
    typebot: FakeTypebot
    typebot_url: str
    gateway_url: str
    http: httpx2.AsyncClient
    providers: ProviderHttp
    portals: PooledTransport = field(default_factory=PooledTransport)
    workers: list[tuple[Worker, asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)
    billing: Billing | None = None

    @property
    def events_url(self) -> str:
        return f"{self.gateway_url}/b24/events"

    def start_worker(self, grace_s: float = 5.0, clock: Clock | None = None) -> Worker:
        worker = build_worker(
            self.runtime,
            self.http,
            clock=clock,
            providers=self.providers,
            portal_transport=self.portals,
            billing=self.billing,
            retry=FAST_RETRY,
            grace_s=grace_s,
            read_block_ms=20,
        )
        stop = asyncio.Event()
        self.workers.append((worker, stop, asyncio.create_task(worker.run(stop))))
        return worker

    async def stop_workers(self) -> None:
        for _, stop, _ in self.workers:
            stop.set()
        await asyncio.gather(*(task for _, _, task in self.workers))
        self.workers.clear()

    async def install(self, portal: Portal) -> Tenant:
        store = TenantStore(self.runtime.engine, self.runtime.vault, self.runtime.hasher)
        tenant = await install_portal(store, portal, time.time())
        async with self.runtime.engine.begin() as connection:
            await connection.execute(
                sa.update(sa.table("tenants", sa.column("id"), sa.column("bot_api_version")))
                .where(sa.column("id") == tenant.id)
                .values(bot_api_version=2 if portal.v2 else 1)
            )
        return tenant

    async def add_bot(
        self,
        tenant: Tenant,
        bot: Bot,
        *,
        provider_type: str = "dify_chatflow",
        api_key: str | None = "app-key-1",
        typebot_start_url: str | None = None,
        **options: Any,
    ) -> int:
        now = utcnow()
        stamps = {"created_at": now, "updated_at": now}
        base_url = self.typebot_url if provider_type == "typebot" else f"{self.dify_url}/v1"
        async with self.runtime.engine.begin() as connection:
            provider_id = await connection.scalar(
                sa.select(providers.c.id).where(providers.c.type == provider_type)
            )
            if provider_id is None:
                provider_id = await connection.scalar(
                    sa.insert(providers)
                    .values(name=provider_type, type=provider_type, base_url=base_url, **stamps)
                    .returning(providers.c.id)
                )
            sealed = (
                None
                if api_key is None
                else self.runtime.vault.seal(
                    api_key, tenant_context(tenant.id, "connectors", "api_key")
                )
            )
            connector_id = await connection.scalar(
                sa.insert(connectors)
                .values(
                    tenant_id=tenant.id,
                    provider_id=provider_id,
                    name=f"{provider_type}-{bot.id}",
                    api_key=sealed,
                    typebot_start_url=typebot_start_url,
                    **stamps,
                )
                .returning(connectors.c.id)
            )
            bot_row: int = await connection.scalar(
                sa.insert(bots)
                .values(
                    tenant_id=tenant.id,
                    connector_id=connector_id,
                    name=bot.name,
                    code=bot.code,
                    b24_bot_id=bot.id,
                    type="openline",
                    api_version=bot.api,
                    registration_state="registered",
                    **stamps,
                    **options,
                )
                .returning(bots.c.id)
            )
        return bot_row


async def until(
    condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def replies(portal: Portal, dialog_id: str, count: int = 1) -> list[SentMessage]:
    await until(lambda: len(portal.messages_to(dialog_id)) >= count, what=f"{count} replies")
    return portal.messages_to(dialog_id)


@asynccontextmanager
async def pipeline_stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    cloud = FakeBitrix24(client_id=B24_CLIENT_ID, client_secret=B24_SECRET)
    dify = FakeDify()
    typebot = FakeTypebot()
    async with AsyncExitStack() as exits:
        await exits.enter_async_context(cloud.serve())
        dify_url = await exits.enter_async_context(serve(dify.asgi))
        typebot_url = await exits.enter_async_context(serve(typebot.asgi))
        env = backend.env(
            tmp_path,
            BITBOT_B24_OAUTH_URL=cloud.base_url,
            BITBOT_B24_CLIENT_ID=B24_CLIENT_ID,
            BITBOT_B24_CLIENT_SECRET=B24_SECRET,
            BITBOT_PUBLIC_URL=PUBLIC_URL,
            BITBOT_ALLOW_PRIVATE_HOSTS="127.0.0.1",
            BITBOT_QUEUE_SHARDS="4",
            BITBOT_WORKER_LEASE_S="2",  # a dead worker's shards move on within seconds
        )
        runtime = build_runtime(load_settings(env))
        exits.push_async_callback(runtime.close)
        await upgrade(runtime.engine)
        http = await exits.enter_async_context(httpx2.AsyncClient())
        gateway_url = await exits.enter_async_context(serve(create_gateway_app(runtime)))
        providers = ProviderHttp(HostGuard(runtime.settings.allow_private_hosts))
        exits.push_async_callback(providers.aclose)
        stack = Stack(
            runtime, cloud, dify, dify_url, typebot, typebot_url, gateway_url, http, providers
        )
        try:
            yield stack
        finally:
            await stack.stop_workers()
            await stack.portals.aclose()


__all__ = ["DifyApp", "Stack", "Typebot", "pipeline_stack", "replies", "until"]
