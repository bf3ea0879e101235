"""What the operator does to one tenant: change its plan, extend its trial, suspend and resume it,
replay its dead letters; and what the tenant page reads: subscription, usage, dead letters.

Workers cache a tenant's plan and subscription for up to five seconds (``PlanBilling``); the
admin service holds no handle on those caches, so a change reaches the pipeline within that time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.operator.audit import Actor, record_now
from admin_ui.operator.errors import InputError, NotFound, Refused
from billing import DailyUsage, Meter, Plan, Subscription, Subscriptions, get_plan
from billing.states import days_of
from tenants.queue import DeadLetter, Queue
from tenants.store import Tenant

DEAD_LETTER_SCAN = 2000  # the newest dead letters searched for one tenant's entries
MAX_RANGE_DAYS = 366
MAX_TRIAL_EXTENSION = 365
ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")


@dataclass(frozen=True)
class Account:
    subscription: Subscription | None
    plan: Plan | None


@dataclass(frozen=True)
class UsageRange:
    """Days ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def usage_range(first: str, last: str, default: UsageRange) -> UsageRange:
    """The range the operator asked for (ISO dates), checked; ``default`` for empty fields."""
    errors: dict[str, str] = {}
    start, end = default.first, default.last
    for name, value in (("from", first), ("to", last)):
        if not value:
            continue
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            errors[name] = "use a date such as 2026-01-31"
            continue
        start, end = (parsed, end) if name == "from" else (start, parsed)
    if not errors and end < start:
        errors["to"] = "the end comes before the start"
    if not errors and (end - start).days >= MAX_RANGE_DAYS:
        errors["to"] = f"choose at most {MAX_RANGE_DAYS} days"
    if errors:
        raise InputError("the date range is not valid", errors)
    return UsageRange(start, end)


class TenantActions:
    def __init__(
        self,
        engine: AsyncEngine,
        subscriptions: Subscriptions,
        meter: Meter,
        queue: Queue,
    ) -> None:
        self._engine = engine
        self._subscriptions = subscriptions
        self._meter = meter
        self._queue = queue

    def today(self) -> date:
        return self._subscriptions.now().date()

    async def account(self, tenant_id: int) -> Account:
        subscription = await self._subscriptions.get(tenant_id)
        plan = None if subscription is None else await get_plan(self._engine, subscription.plan_id)
        return Account(subscription, plan)

    def period(self, account: Account) -> UsageRange:
        """The subscription's current period, else the last 30 days."""
        if account.subscription is None:
            return UsageRange(self.today() - timedelta(days=29), self.today())
        sub = account.subscription
        first, end = days_of(sub.period_start, sub.period_end)
        return UsageRange(first, end - timedelta(days=1))

    async def usage(self, tenant_id: int, span: UsageRange) -> list[DailyUsage]:
        return await self._meter.daily(tenant_id, span.first, span.last + timedelta(days=1))

    async def change_plan(self, actor: Actor, tenant: Tenant, plan_code: str) -> Subscription:
        before = await self._ensured(tenant)
        after = await self._subscriptions.change_plan(tenant.id, plan_code)
        await self._audit(actor, tenant, "tenant.change_plan", before, after, plan=plan_code)
        return after

    async def extend_trial(self, actor: Actor, tenant: Tenant, days: int) -> Subscription:
        if not 1 <= days <= MAX_TRIAL_EXTENSION:
            raise InputError(
                f"extend a trial by 1 to {MAX_TRIAL_EXTENSION} days",
                {"days": f"a whole number from 1 to {MAX_TRIAL_EXTENSION}"},
            )
        before = await self._ensured(tenant)
        after = await self._subscriptions.extend_trial(tenant.id, days)
        await self._audit(actor, tenant, "tenant.extend_trial", before, after, days=days)
        return after

    async def suspend(self, actor: Actor, tenant: Tenant) -> Subscription:
        before = await self._ensured(tenant)
        after = await self._subscriptions.suspend(tenant.id)
        await self._audit(actor, tenant, "tenant.suspend", before, after)
        return after

    async def resume(self, actor: Actor, tenant: Tenant) -> Subscription:
        before = await self._ensured(tenant)
        after = await self._subscriptions.resume(tenant.id)
        await self._audit(actor, tenant, "tenant.resume", before, after)
        return after

    async def dead_letters(self, tenant_id: int) -> list[DeadLetter]:
        return await self._queue.dead_letters(DEAD_LETTER_SCAN, tenant_id)

    async def replay(self, actor: Actor, tenant: Tenant, entry_id: str) -> str:
        if not ENTRY_ID.fullmatch(entry_id):
            raise NotFound(f"no dead letter has id {entry_id[:40]}")
        if tenant.status == "uninstalled":
            raise Refused("the portal uninstalled BitBot; its events cannot be replayed")
        letters = {letter.entry_id: letter for letter in await self.dead_letters(tenant.id)}
        letter = letters.get(entry_id)
        if letter is None:
            raise NotFound(f"tenant {tenant.id} has no dead letter {entry_id}")
        queued = await self._queue.replay(entry_id, tenant.member_id)
        if queued is None:
            raise NotFound(f"dead letter {entry_id} was replayed or removed meanwhile")
        await record_now(
            self._engine,
            actor,
            "dead_letter.replay",
            entry_id,
            tenant_id=tenant.id,
            details={"kind": letter.kind, "reason": letter.reason[:200], "queued": queued},
        )
        return queued

    async def _ensured(self, tenant: Tenant) -> Subscription:
        """The subscription to change; a tenant installed before billing gets its trial now."""
        current = await self._subscriptions.get(tenant.id)
        if current is not None:
            return current
        if tenant.status == "uninstalled":
            raise Refused("the portal uninstalled BitBot and has no subscription")
        return await self._subscriptions.start_trial(tenant.id)

    async def _audit(
        self,
        actor: Actor,
        tenant: Tenant,
        action: str,
        before: Subscription,
        after: Subscription,
        **facts: object,
    ) -> None:
        details = {
            **facts,
            "state": [before.state, after.state],
            "plan_id": [before.plan_id, after.plan_id],
            "trial_end": [_iso(before.trial_end), _iso(after.trial_end)],
        }
        await record_now(
            self._engine, actor, action, tenant.domain, tenant_id=tenant.id, details=details
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()
