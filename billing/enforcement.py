"""The billing seam (DESIGN §9) backed by plans, subscriptions and metering.

- ``check_turn``: suspended or cancelled → ``Deny("")``: the event is acknowledged and not
  processed, and the pipeline must send nothing (an empty text is "say nothing"). Period quota
  used up → ``Deny(plan's over-quota text in the tenant's language)``. Otherwise ``Allow``
  (a past-due tenant is served during its grace).
- ``limits``: the plan's events per minute, per tenant and per dialog.
- ``record``: meters the turn; when the period's messages cross 80 % / 100 % of the quota the
  portal's admins are notified, once per period (``billing.notices``).

Quota counts customer messages (``messages_in``). The hot path reads the plan, subscription and
period usage from a per-tenant cache (``CACHE_S``, as long as the worker keeps a tenant's status),
plus this process's own messages since; a busy tenant's cache is reloaded in the background
before it runs out, all its reads on one database connection. So another worker's turns and an
operator's suspension show up within the cache time, and a monthly quota can be overshot by the
turns of those seconds. A tenant without a subscription (installed before billing) gets its trial
here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx2
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing import states
from billing.metering import Meter
from billing.notices import AdminNotifier, Bitrix24AdminNotifier, QuotaNotices, quota_notice_text
from billing.plans import Plan, get_plan
from billing.schema import QUOTA_THRESHOLDS
from billing.seam import Allow, Deny, RateLimits, TurnUsage, Verdict
from billing.states import Subscription
from billing.subscriptions import Subscriptions
from tenants.bitrix24 import Bitrix24Error, build_services
from tenants.clock import Clock, SystemClock
from tenants.runtime import Runtime
from tenants.schema import tenants
from tenants.singleflight import SingleFlight

log = logging.getLogger("bitbot.billing")

CACHE_S = 15.0


@dataclass
class _Account:
    """What the hot path knows about one tenant, loaded at ``loaded_at``."""

    plan: Plan
    subscription: Subscription
    language: str | None
    used: int  # messages in the subscription's period when loaded
    loaded_at: float
    since: int = 0  # messages this process recorded after loading
    notified: set[int] = field(default_factory=set)
    refresh_at: float = 0.0  # from then on, a turn starts a reload in the background

    @property
    def messages(self) -> int:
        return self.used + self.since


class PlanBilling:
    def __init__(
        self,
        engine: AsyncEngine,
        meter: Meter,
        notifier: AdminNotifier,
        *,
        clock: Clock | None = None,
        subscriptions: Subscriptions | None = None,
        cache_s: float = CACHE_S,
    ) -> None:
        self._engine = engine
        self._meter = meter
        self._notifier = notifier
        self._clock = clock or SystemClock()
        self._subscriptions = subscriptions or Subscriptions(engine, self._clock)
        self._notices = QuotaNotices(engine)
        self._cache_s = cache_s
        self._accounts: dict[int, _Account] = {}
        # A cold or expired cache must cost one load per tenant, not one per waiting turn.
        self._loading: SingleFlight[int, _Account] = SingleFlight()
        self._refreshing: set[asyncio.Future[_Account]] = set()

    async def check_turn(self, tenant_id: int) -> Verdict:
        account = await self._account(tenant_id)
        if not account.subscription.served:
            return Deny("")
        quota = account.plan.monthly_messages
        if quota is not None and account.messages >= quota:
            return Deny(account.plan.over_quota_text_in(account.language))
        return Allow()

    async def limits(self, tenant_id: int) -> RateLimits:
        plan = (await self._account(tenant_id)).plan
        return RateLimits(plan.events_per_minute_tenant, plan.events_per_minute_dialog)

    async def record(self, tenant_id: int, usage: TurnUsage) -> None:
        # Loaded before metering, so a fresh load does not already hold this turn.
        account = await self._account(tenant_id)
        await self._meter.add(tenant_id, usage)
        if usage.messages_in <= 0:
            return
        account.since += usage.messages_in
        try:
            await self._notify_crossed(tenant_id, account)
        except Exception:
            # The reply is out already: a failing notice must not make the worker redo the turn.
            log.exception("quota notice for tenant %s failed", tenant_id)

    async def plan_of(self, tenant_id: int) -> Plan:
        """The tenant's plan (max bots, feature flags) for the app page and the console."""
        return (await self._account(tenant_id)).plan

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Let the background reloads finish (each is a few reads), then cancel what is left,
        so none is still holding a database connection when the engine is disposed."""
        running = set(self._refreshing)
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=timeout_s)
        if pending:
            self._loading.cancel()  # the loads, not only the tasks waiting on them
            await asyncio.gather(*pending, return_exceptions=True)

    def forget(self, tenant_id: int) -> None:
        """Drop the cached view, e.g. right after an operator changed the subscription."""
        self._accounts.pop(tenant_id, None)

    async def _account(self, tenant_id: int) -> _Account:
        now = self._clock.now()
        cached = self._accounts.get(tenant_id)
        if cached is not None and now - cached.loaded_at < self._cache_s:
            current = states.effective(cached.subscription, _moment(now))
            if current.period_start == cached.subscription.period_start:
                cached.subscription = current
                if now >= cached.refresh_at:
                    self._refresh_ahead(tenant_id, now, cached)
                return cached
        return await self._loading.run(tenant_id, lambda: self._reload(tenant_id, now, cached))

    def _refresh_ahead(self, tenant_id: int, now: float, cached: _Account) -> None:
        """Reload before the cache runs out, off the turn's path: a busy tenant's turns never
        wait for a reload. Each account picks its own moment, so reloads do not bunch up."""
        cached.refresh_at = float("inf")  # one background reload per account
        task = asyncio.ensure_future(
            self._loading.run(tenant_id, lambda: self._reload(tenant_id, now, cached))
        )
        self._refreshing.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Future[_Account]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("billing reload failed: %s", type(task.exception()).__name__)

    async def _reload(self, tenant_id: int, now: float, previous: _Account | None) -> _Account:
        account = await self._load(tenant_id, now, previous)
        account.refresh_at = now + self._cache_s * random.uniform(0.5, 0.9)  # noqa: S311
        self._accounts[tenant_id] = account
        return account

    async def _load(self, tenant_id: int, now: float, previous: _Account | None) -> _Account:
        async with self._engine.connect() as connection:  # every read of a load on one checkout
            stored = await self._subscriptions.get(tenant_id, connection)
            if stored is not None:
                return await self._read(connection, tenant_id, stored, now, previous)
        stored = await self._subscriptions.start_trial(tenant_id)  # installed before billing
        async with self._engine.connect() as connection:
            return await self._read(connection, tenant_id, stored, now, previous)

    async def _read(
        self,
        connection: AsyncConnection,
        tenant_id: int,
        stored: Subscription,
        now: float,
        previous: _Account | None,
    ) -> _Account:
        subscription = states.effective(stored, _moment(now))
        plan = await get_plan(self._engine, subscription.plan_id, connection)
        language = await connection.scalar(
            sa.select(tenants.c.language).where(tenants.c.id == tenant_id)
        )
        first, last = states.days_of(subscription.period_start, subscription.period_end)
        used = (await self._meter.usage(tenant_id, first, last, connection)).messages_in
        same_period = (
            previous is not None and previous.subscription.period_start == subscription.period_start
        )
        notified = previous.notified if previous is not None and same_period else set()
        return _Account(plan, subscription, language, used, now, notified=notified)

    async def _notify_crossed(self, tenant_id: int, account: _Account) -> None:
        quota = account.plan.monthly_messages
        if not quota:
            return
        crossed = [
            threshold
            for threshold in QUOTA_THRESHOLDS
            if account.messages * 100 >= threshold * quota and threshold not in account.notified
        ]
        if not crossed:
            return
        period = account.subscription.period_start
        moment = _moment(self._clock.now())
        claimed = [t for t in crossed if await self._notices.claim(tenant_id, period, t, moment)]
        account.notified.update(crossed)
        if not claimed:
            return
        threshold = max(claimed)  # crossing both at once: the 100 % notice says it all
        message = quota_notice_text(
            threshold,
            account.language,
            used=account.messages,
            quota=quota,
            plan=account.plan.name,
            renews=account.subscription.period_end,
        )
        try:
            await self._notifier.notify_admins(tenant_id, message)
        except Exception as error:
            code = error.code if isinstance(error, Bitrix24Error) else type(error).__name__
            log.warning("quota notice to tenant %s failed (%s); tried again later", tenant_id, code)
            account.notified.difference_update(claimed)
            for t in claimed:
                await self._notices.give_back(tenant_id, period, t)


def _moment(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def build_billing(
    runtime: Runtime, http: httpx2.AsyncClient, clock: Clock | None = None
) -> PlanBilling:
    """The billing a worker passes to the pipeline: metering on the runtime's Redis, notices
    through the tenant's Bitrix24 client."""
    clock = clock or SystemClock()
    meter = Meter(runtime.redis, runtime.engine, clock)
    notifier = Bitrix24AdminNotifier(build_services(runtime, http, clock))
    return PlanBilling(runtime.engine, meter, notifier, clock=clock)
