"""The console's services, built once per admin app from the process runtime."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.operator.lockout import Accounts, AddressThrottle
from admin_ui.operator.plans import PlanDesk
from admin_ui.operator.providers import ProviderCatalog
from admin_ui.operator.session import OperatorSessions
from admin_ui.operator.tenantactions import TenantActions
from admin_ui.operator.tenants import TenantDirectory
from admin_ui.operator.tokens import ApiTokens
from billing import Meter, Subscriptions
from tenants.clock import Clock
from tenants.queue import Queue
from tenants.runtime import Runtime
from tenants.store import TenantStore


@dataclass(frozen=True)
class Console:
    engine: AsyncEngine
    accounts: Accounts
    throttle: AddressThrottle
    sessions: OperatorSessions
    tokens: ApiTokens
    directory: TenantDirectory
    actions: TenantActions
    plans: PlanDesk
    providers: ProviderCatalog
    meter: Meter
    public_url: str | None


def build_console(runtime: Runtime, clock: Clock) -> Console:
    settings = runtime.settings
    assert settings.hash_key is not None  # build_runtime refuses to start without it
    engine, redis = runtime.engine, runtime.redis
    meter = Meter(redis, engine, clock)
    queue = Queue(redis, runtime.vault, settings.queue_shards)
    return Console(
        engine=engine,
        accounts=Accounts(engine, clock),
        throttle=AddressThrottle(redis, clock),
        sessions=OperatorSessions(redis, settings.hash_key, clock),
        tokens=ApiTokens(engine, settings.hash_key, clock),
        directory=TenantDirectory(engine, TenantStore(engine, runtime.vault, runtime.hasher)),
        actions=TenantActions(engine, Subscriptions(engine, clock), meter, queue),
        plans=PlanDesk(engine),
        providers=ProviderCatalog(engine),
        meter=meter,
        public_url=settings.public_url,
    )
