"""Wiring of the gateway package: the intake app and the worker, from a process's runtime."""

from __future__ import annotations

import asyncio

import httpx2
from starlette.applications import Starlette

from billing import (
    Billing,
    Meter,
    Subscriptions,
    UnlimitedPlan,
    build_billing,
    run_billing_jobs,
)
from gateway.intake import EventIntake, intake_routes, intake_shortcut
from gateway.leases import ShardLeases
from gateway.portals import PortalClients
from gateway.providers.http import ProviderHttp
from gateway.providers.sessions import RedisSessions
from gateway.tenantcache import TenantCache
from gateway.turns import RetryPolicy, Turns
from gateway.worker import Worker, consumer_name
from tenants.bitrix24 import PooledTransport, Transport, build_services
from tenants.bots import BotDirectory
from tenants.buckets import Buckets
from tenants.clock import Clock, SystemClock
from tenants.health import health_routes
from tenants.netguard import HostGuard
from tenants.queue import Queue
from tenants.requestid import REQUEST_ID
from tenants.runtime import Runtime
from tenants.store import TenantStore


def queue_of(runtime: Runtime) -> Queue:
    return Queue(runtime.redis, runtime.vault, runtime.settings.queue_shards)


def create_gateway_app(runtime: Runtime) -> Starlette:
    store = TenantStore(runtime.engine, runtime.vault, runtime.hasher)
    intake = EventIntake(queue_of(runtime), TenantCache(store, runtime.hasher))
    return Starlette(
        routes=[*intake_routes(intake), *health_routes(runtime)],
        middleware=[REQUEST_ID, intake_shortcut(intake)],
    )


def build_worker(
    runtime: Runtime,
    http: httpx2.AsyncClient,
    *,
    clock: Clock | None = None,
    billing: Billing | None = None,
    retry: RetryPolicy | None = None,
    grace_s: float = 60.0,
    read_block_ms: int = 1000,
    providers: ProviderHttp,
    portal_transport: Transport | None = None,
) -> Worker:
    """Bitrix24 REST calls go through ``portal_transport`` (by default over ``http``), file
    downloads and token refreshes over ``http``; ``providers`` carries the calls to Dify and
    Typebot."""
    clock = clock or SystemClock()
    services = build_services(runtime, http, clock, portal_transport)
    bots = BotDirectory(runtime.engine, runtime.vault)
    turns = Turns(
        bots=bots,
        store=services.store,
        billing=billing or UnlimitedPlan(),
        buckets=Buckets(runtime.redis, clock),
        http=providers,
        sessions=RedisSessions(runtime.redis),
        redis=runtime.redis,
        clock=clock,
        retry=retry,
    )
    queue = queue_of(runtime)
    return Worker(
        queue=queue,
        leases=ShardLeases(
            runtime.redis,
            consumer_name(),
            queue.shards,
            ttl_ms=runtime.settings.worker_lease_s * 1000,
        ),
        turns=turns,
        bots=bots,
        store=services.store,
        portals=PortalClients(services),
        runtime=runtime,
        grace_s=grace_s,
        read_block_ms=read_block_ms,
    )


async def run_consumers(runtime: Runtime, stop: asyncio.Event) -> None:
    guard = HostGuard(runtime.settings.allow_private_hosts)
    providers, portals = ProviderHttp(guard), PooledTransport()
    try:
        async with httpx2.AsyncClient(headers={"User-Agent": "BitBot"}) as http:
            clock = SystemClock()
            jobs = asyncio.create_task(
                run_billing_jobs(
                    Meter(runtime.redis, runtime.engine, clock),
                    Subscriptions(runtime.engine, clock),
                    stop,
                )
            )
            billing = build_billing(runtime, http, clock)
            worker = build_worker(
                runtime, http, providers=providers, portal_transport=portals, billing=billing
            )
            try:
                await worker.run(stop)
            finally:
                stop.set()
                await jobs  # the last flush of metered usage
                await billing.aclose()
    finally:
        await providers.aclose()
        await portals.aclose()
