"""One subscription per tenant: trial on install, plan changes, operator holds, the Bitrix24
licence sync and the periodic ``tick``.

Each change locks the row (``FOR UPDATE`` on PostgreSQL; SQLite serializes writers), sets facts,
and stores the state ``billing.states`` derives from them. Time comes from an injectable
``tenants.clock.Clock``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing import states
from billing.errors import NoSubscription, PlanError, SubscriptionError
from billing.plans import plan_by_code
from billing.schema import plans, subscriptions
from billing.states import Subscription
from tenants.clock import Clock, SystemClock
from tenants.db import reading
from tenants.schema import tenants

DEFAULT_GRACE = timedelta(days=7)
PAYMENT_MARK = "payment_required"  # tenants.attention_reason set by the Bitrix24 client

Change = Callable[[Subscription, datetime], Subscription]


class Subscriptions:
    def __init__(
        self, engine: AsyncEngine, clock: Clock | None = None, grace: timedelta = DEFAULT_GRACE
    ) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._grace = grace

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def get(
        self, tenant_id: int, connection: AsyncConnection | None = None
    ) -> Subscription | None:
        async with reading(self._engine, connection) as reader:
            return await _select(reader, tenant_id)

    async def start_trial(self, tenant_id: int) -> Subscription:
        """Install: a trial on the default trial plan. Idempotent; a cancelled subscription is
        reopened as it was (a reinstall does not grant a second trial)."""
        now = self.now()
        try:
            async with self._engine.begin() as connection:
                current = await _select(connection, tenant_id, lock=True)
                if current is None:
                    return await self._insert_trial(connection, tenant_id, now)
                if current.state != states.CANCELLED:
                    return current
                day, start, end = states.first_period(now)
                reopened = replace(
                    current,
                    state=states.ACTIVE,
                    suspend_reason=None,
                    cancelled_at=None,
                    billing_day=day,
                    period_start=start,
                    period_end=end,
                )
                return await _save(connection, current, states.derived(reopened, now), now)
        except IntegrityError:
            # Another process created it first, or the tenant does not exist.
            found = await self.get(tenant_id)
            if found is None:
                raise NoSubscription(f"tenant {tenant_id} does not exist") from None
            return found

    async def installed(self, tenant_id: int) -> Subscription:
        """A verified install or update: the auth server accepted the token, so the licence is
        in order too."""
        await self.start_trial(tenant_id)
        return await self._change(tenant_id, _licence_in_order)

    async def change_plan(self, tenant_id: int, plan_code: str) -> Subscription:
        """Move to a paid plan; this ends a trial and starts a period today."""
        plan = await plan_by_code(self._engine, plan_code)
        if not plan.active:
            raise PlanError(f"plan {plan_code!r} is not offered any more (inactive)")
        if plan.is_default_trial:
            raise SubscriptionError("the trial plan is given on install; extend the trial instead")

        def change(sub: Subscription, now: datetime) -> Subscription:
            _refuse_cancelled(sub)
            if not sub.on_trial:
                return replace(sub, plan_id=plan.id)
            day, start, end = states.first_period(now)
            return replace(
                sub,
                plan_id=plan.id,
                trial_end=None,
                billing_day=day,
                period_start=start,
                period_end=end,
            )

        return await self._change(tenant_id, change)

    async def extend_trial(self, tenant_id: int, days: int) -> Subscription:
        if days < 1:
            raise SubscriptionError(f"a trial is extended by at least one day (got {days})")

        def extend(sub: Subscription, now: datetime) -> Subscription:
            _refuse_cancelled(sub)
            if sub.trial_end is None:
                raise SubscriptionError("the tenant is on a paid plan, not on a trial")
            return replace(sub, trial_end=max(sub.trial_end, now) + timedelta(days=days))

        return await self._change(tenant_id, extend)

    async def suspend(self, tenant_id: int) -> Subscription:
        """An operator's hold: events are acknowledged and not processed until ``resume``."""

        def hold(sub: Subscription, now: datetime) -> Subscription:
            _refuse_cancelled(sub)
            return replace(sub, state=states.SUSPENDED, suspend_reason=states.OPERATOR)

        return await self._change(tenant_id, hold)

    async def resume(self, tenant_id: int) -> Subscription:
        """Lift an operator's hold. A suspension the facts imply (trial over, licence lapsed)
        is not lifted here: extend the trial, change the plan, or wait for the payment."""

        def lift(sub: Subscription, now: datetime) -> Subscription:
            _refuse_cancelled(sub)
            if sub.suspend_reason == states.TRIAL_ENDED:
                raise SubscriptionError("the trial is over: extend it or change the plan")
            if sub.suspend_reason == states.LICENCE_LAPSED:
                raise SubscriptionError("the portal's Bitrix24 licence for the app has lapsed")
            if sub.suspend_reason != states.OPERATOR:
                return sub
            return replace(sub, state=states.ACTIVE, suspend_reason=None)

        return await self._change(tenant_id, lift)

    async def cancel(self, tenant_id: int) -> Subscription | None:
        """Uninstall with data deletion. Usage rows stay (DESIGN §7)."""

        def end(sub: Subscription, now: datetime) -> Subscription:
            if sub.state == states.CANCELLED:
                return sub
            return replace(sub, state=states.CANCELLED, suspend_reason=None, cancelled_at=now)

        return await self._change_if_any(tenant_id, end)

    async def payment_required(self, tenant_id: int) -> Subscription | None:
        """The auth server answered PAYMENT_REQUIRED: past due now, suspended after the grace."""
        return await self._change_if_any(tenant_id, self._lapse)

    async def payment_ok(self, tenant_id: int) -> Subscription | None:
        """The auth server accepts the portal again: the lapse is forgotten."""
        return await self._change_if_any(tenant_id, _licence_in_order)

    async def tick(self, now: datetime | None = None) -> list[Subscription]:
        """The periodic job: roll periods, end trials and graces, and pick up licence lapses the
        Bitrix24 client marked on the tenant. Returns the subscriptions it changed."""
        now = now or self.now()
        c = subscriptions.c
        due = sa.or_(
            c.period_end <= now,
            sa.and_(c.state == states.TRIAL, c.trial_end <= now),
            sa.and_(c.state == states.PAST_DUE, c.grace_until <= now),
        )
        marked = sa.and_(
            c.licence_lapsed_at.is_(None),
            tenants.c.attention_reason == PAYMENT_MARK,
        )
        query = (
            sa.select(c.tenant_id, marked.label("marked"))
            .join(tenants, tenants.c.id == c.tenant_id)
            .where(c.state != states.CANCELLED, sa.or_(due, marked))
            .order_by(c.tenant_id)
        )
        async with self._engine.connect() as connection:
            candidates = (await connection.execute(query)).all()
        changed: list[Subscription] = []
        for tenant_id, lapsed in candidates:
            outcome = await self._transition(tenant_id, self._lapse if lapsed else _same, now)
            if outcome is not None and outcome[1]:
                changed.append(outcome[0])
        return changed

    def _lapse(self, sub: Subscription, now: datetime) -> Subscription:
        if sub.state == states.CANCELLED or sub.licence_lapsed_at is not None:
            return sub
        return replace(sub, licence_lapsed_at=now, grace_until=now + self._grace)

    async def _insert_trial(
        self, connection: AsyncConnection, tenant_id: int, now: datetime
    ) -> Subscription:
        trial = (
            await connection.execute(
                sa.select(plans.c.id, plans.c.trial_days).where(
                    plans.c.is_default_trial, plans.c.active
                )
            )
        ).first()
        if trial is None:
            raise PlanError("no active default trial plan is set")
        day, start, end = states.first_period(now)
        await connection.execute(
            sa.insert(subscriptions).values(
                tenant_id=tenant_id,
                plan_id=trial.id,
                state=states.TRIAL,
                billing_day=day,
                period_start=start,
                period_end=end,
                trial_end=now + timedelta(days=trial.trial_days),
                created_at=now,
                updated_at=now,
            )
        )
        created = await _select(connection, tenant_id)
        assert created is not None
        return created

    async def _change(self, tenant_id: int, change: Change) -> Subscription:
        sub = await self._change_if_any(tenant_id, change)
        if sub is None:
            raise NoSubscription(f"tenant {tenant_id} has no subscription")
        return sub

    async def _change_if_any(self, tenant_id: int, change: Change) -> Subscription | None:
        outcome = await self._transition(tenant_id, change, self.now())
        return None if outcome is None else outcome[0]

    async def _transition(
        self, tenant_id: int, change: Change, now: datetime
    ) -> tuple[Subscription, bool] | None:
        """Apply ``change`` to the locked row, then roll and derive; ``(result, changed)``."""
        async with self._engine.begin() as connection:
            current = await _select(connection, tenant_id, lock=True)
            if current is None:
                return None
            wanted = states.effective(change(states.rolled(current, now), now), now)
            if wanted == current:
                return current, False
            return await _save(connection, current, wanted, now), True


def _same(sub: Subscription, now: datetime) -> Subscription:
    return sub


def _licence_in_order(sub: Subscription, now: datetime) -> Subscription:
    return replace(sub, licence_lapsed_at=None, grace_until=None)


def _refuse_cancelled(sub: Subscription) -> None:
    if sub.state == states.CANCELLED:
        raise SubscriptionError("the subscription was cancelled when the app was uninstalled")


async def _select(
    connection: AsyncConnection, tenant_id: int, lock: bool = False
) -> Subscription | None:
    query = sa.select(subscriptions).where(subscriptions.c.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update()
    row = (await connection.execute(query)).first()
    return None if row is None else Subscription(**row._mapping)


async def _save(
    connection: AsyncConnection, current: Subscription, wanted: Subscription, now: datetime
) -> Subscription:
    values: dict[str, Any] = {
        name: getattr(wanted, name)
        for name in Subscription.__dataclass_fields__
        if name not in ("id", "tenant_id", "created_at", "updated_at")
        and getattr(wanted, name) != getattr(current, name)
    }
    await connection.execute(
        sa.update(subscriptions)
        .where(subscriptions.c.id == current.id)
        .values(**values, updated_at=now)
    )
    return replace(wanted, updated_at=now)
