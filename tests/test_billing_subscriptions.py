"""The subscription state machine: trial, plans, operator holds, licence lapse and periods."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from billing import (
    NoSubscription,
    PlanError,
    PlanSpec,
    SubscriptionError,
    Subscriptions,
    UnknownPlan,
    create_plan,
    plan_by_code,
    update_plan,
)
from billing.states import month_after, rolled
from tenants.runtime import Runtime
from tenants.schema import tenants
from tests.conftest import SteppedClock
from tests.test_billing_plans import a_tenant

DAY = 86_400.0
START = datetime(2026, 1, 1, tzinfo=UTC)  # the fake clock's start


@pytest.fixture
def subs(migrated: Runtime, clock: SteppedClock) -> Subscriptions:
    return Subscriptions(migrated.engine, clock, grace=timedelta(days=7))


async def test_install_starts_one_trial(migrated: Runtime, subs: Subscriptions) -> None:
    tenant_id = await a_tenant(migrated)
    clock_start = subs.now()
    sub = await subs.start_trial(tenant_id)
    trial = await plan_by_code(migrated.engine, "trial")

    assert (sub.state, sub.plan_id, sub.suspend_reason) == ("trial", trial.id, None)
    assert sub.trial_end == clock_start + timedelta(days=14)
    assert (sub.period_start, sub.period_end, sub.billing_day) == (
        START,
        datetime(2026, 2, 1, tzinfo=UTC),
        1,
    )
    assert await subs.start_trial(tenant_id) == sub  # idempotent
    assert await subs.installed(tenant_id) == sub


async def test_unknown_tenant_has_no_subscription(subs: Subscriptions) -> None:
    with pytest.raises(NoSubscription, match="tenant 999 does not exist"):
        await subs.start_trial(999)
    with pytest.raises(NoSubscription):
        await subs.suspend(999)
    assert await subs.payment_required(999) is None


async def test_trial_ends_then_is_extended_or_upgraded(
    migrated: Runtime, subs: Subscriptions, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated)
    await subs.start_trial(tenant_id)

    clock.fake.advance(13 * DAY)
    assert await subs.tick() == []
    clock.fake.advance(1 * DAY)
    (ended,) = await subs.tick()
    assert (ended.state, ended.suspend_reason) == ("suspended", "trial_ended")
    with pytest.raises(SubscriptionError, match="trial is over"):
        await subs.resume(tenant_id)

    extended = await subs.extend_trial(tenant_id, 5)
    assert extended.state == "trial"
    assert extended.trial_end == subs.now() + timedelta(days=5)

    paid = await subs.change_plan(tenant_id, "starter")
    starter = await plan_by_code(migrated.engine, "starter")
    assert (paid.state, paid.plan_id, paid.trial_end) == ("active", starter.id, None)
    assert (paid.period_start, paid.billing_day) == (datetime(2026, 1, 15, tzinfo=UTC), 15)
    with pytest.raises(SubscriptionError, match="not on a trial"):
        await subs.extend_trial(tenant_id, 5)

    business = await subs.change_plan(tenant_id, "business")
    assert business.period_start == paid.period_start  # a plan change keeps the period


async def test_plan_changes_that_make_no_sense_are_refused(
    migrated: Runtime, subs: Subscriptions
) -> None:
    tenant_id = await a_tenant(migrated)
    await subs.start_trial(tenant_id)
    with pytest.raises(UnknownPlan):
        await subs.change_plan(tenant_id, "platinum")
    with pytest.raises(SubscriptionError, match="extend the trial instead"):
        await subs.change_plan(tenant_id, "trial")
    with pytest.raises(SubscriptionError, match="at least one day"):
        await subs.extend_trial(tenant_id, 0)
    starter = await plan_by_code(migrated.engine, "starter")
    await update_plan(migrated.engine, starter.id, replace(starter.spec, active=False))
    with pytest.raises(PlanError, match="not offered any more"):
        await subs.change_plan(tenant_id, "starter")


async def test_licence_lapse_goes_past_due_then_suspended_then_back_on_payment(
    migrated: Runtime, subs: Subscriptions, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated)
    await subs.start_trial(tenant_id)
    await subs.change_plan(tenant_id, "starter")

    lapsed = await subs.payment_required(tenant_id)
    assert lapsed is not None
    assert (lapsed.state, lapsed.licence_lapsed_at) == ("past_due", subs.now())
    assert lapsed.grace_until == subs.now() + timedelta(days=7)
    clock.fake.advance(DAY)
    again = await subs.payment_required(tenant_id)  # a second signal does not extend the grace
    assert again is not None
    assert again.grace_until == lapsed.grace_until

    clock.fake.advance(5 * DAY)
    assert await subs.tick() == []
    clock.fake.advance(1 * DAY)
    (suspended,) = await subs.tick()
    assert (suspended.state, suspended.suspend_reason) == ("suspended", "licence_lapsed")
    with pytest.raises(SubscriptionError, match="licence"):
        await subs.resume(tenant_id)

    paid = await subs.payment_ok(tenant_id)
    assert paid is not None
    assert (paid.state, paid.suspend_reason, paid.licence_lapsed_at, paid.grace_until) == (
        "active",
        None,
        None,
        None,
    )


async def test_operator_hold_outlasts_licence_changes(
    migrated: Runtime, subs: Subscriptions
) -> None:
    tenant_id = await a_tenant(migrated)
    await subs.start_trial(tenant_id)
    held = await subs.suspend(tenant_id)
    assert (held.state, held.suspend_reason) == ("suspended", "operator")

    await subs.payment_required(tenant_id)
    after_payment = await subs.payment_ok(tenant_id)
    assert after_payment is not None
    assert after_payment.state == "suspended"

    resumed = await subs.resume(tenant_id)
    assert (resumed.state, resumed.suspend_reason) == ("trial", None)
    assert await subs.resume(tenant_id) == resumed  # nothing to lift


async def test_uninstall_cancels_and_reinstall_reopens_without_a_new_trial(
    migrated: Runtime, subs: Subscriptions, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated)
    first = await subs.start_trial(tenant_id)
    cancelled = await subs.cancel(tenant_id)
    assert cancelled is not None
    assert (cancelled.state, cancelled.cancelled_at) == ("cancelled", subs.now())
    with pytest.raises(SubscriptionError, match="cancelled"):
        await subs.change_plan(tenant_id, "starter")
    assert await subs.tick() == []

    clock.fake.advance(3 * DAY)
    reopened = await subs.start_trial(tenant_id)
    assert (reopened.state, reopened.trial_end, reopened.cancelled_at) == (
        "trial",
        first.trial_end,
        None,
    )
    assert reopened.period_start == datetime(2026, 1, 4, tzinfo=UTC)

    await subs.cancel(tenant_id)
    clock.fake.advance(30 * DAY)
    late = await subs.start_trial(tenant_id)
    assert (late.state, late.suspend_reason) == ("suspended", "trial_ended")


async def test_periods_roll_over_on_the_billing_day(
    migrated: Runtime, subs: Subscriptions, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated)
    await subs.start_trial(tenant_id)
    clock.fake.advance(30 * DAY)  # Jan 31
    paid = await subs.change_plan(tenant_id, "starter")
    assert (paid.period_start, paid.period_end) == (
        datetime(2026, 1, 31, tzinfo=UTC),
        datetime(2026, 2, 28, tzinfo=UTC),
    )

    clock.fake.advance(28 * DAY)  # Feb 28
    (rolled_once,) = await subs.tick()
    assert (rolled_once.period_start, rolled_once.period_end) == (
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 31, tzinfo=UTC),
    )
    assert await subs.tick() == []

    # A tick that was not run for months catches up in one go.
    (caught_up,) = await subs.tick(datetime(2026, 6, 5, tzinfo=UTC))
    assert (caught_up.period_start, caught_up.period_end) == (
        datetime(2026, 5, 31, tzinfo=UTC),
        datetime(2026, 6, 30, tzinfo=UTC),
    )


def test_month_arithmetic_clamps_and_returns_to_the_anchor() -> None:
    assert month_after(datetime(2026, 12, 15, tzinfo=UTC), 15) == datetime(2027, 1, 15, tzinfo=UTC)
    assert month_after(datetime(2028, 1, 31, tzinfo=UTC), 31) == datetime(2028, 2, 29, tzinfo=UTC)
    assert month_after(datetime(2028, 2, 29, tzinfo=UTC), 31) == datetime(2028, 3, 31, tzinfo=UTC)


async def test_tick_picks_up_a_lapse_the_bitrix24_client_marked(
    migrated: Runtime, subs: Subscriptions
) -> None:
    tenant_id = await a_tenant(migrated)
    other_id = await a_tenant(migrated, "other")
    await subs.start_trial(tenant_id)
    await subs.start_trial(other_id)
    async with migrated.engine.begin() as connection:
        await connection.execute(
            sa.update(tenants)
            .where(tenants.c.id == tenant_id)
            .values(status="needs_attention", attention_reason="payment_required")
        )

    (lapsed,) = await subs.tick()
    assert (lapsed.tenant_id, lapsed.state) == (tenant_id, "past_due")
    assert await subs.tick() == []  # picked up once


async def test_a_new_default_trial_plan_applies_to_new_installs(
    migrated: Runtime, subs: Subscriptions
) -> None:
    spec = PlanSpec(
        code="trial7",
        name="Short trial",
        monthly_messages=50,
        max_bots=1,
        events_per_minute_tenant=30,
        events_per_minute_dialog=10,
        over_quota_text={"en": "No more."},
        is_default_trial=True,
        trial_days=7,
    )
    short = await create_plan(migrated.engine, spec)
    sub = await subs.start_trial(await a_tenant(migrated))
    assert sub.plan_id == short.id
    assert sub.trial_end == subs.now() + timedelta(days=7)


def test_rolled_leaves_a_cancelled_period_alone() -> None:
    from billing.states import Subscription

    sub = Subscription(
        id=1,
        tenant_id=1,
        plan_id=1,
        state="cancelled",
        suspend_reason=None,
        billing_day=1,
        period_start=START,
        period_end=START + timedelta(days=31),
        trial_end=None,
        grace_until=None,
        licence_lapsed_at=None,
        cancelled_at=START,
        created_at=START,
        updated_at=START,
    )
    assert rolled(sub, START + timedelta(days=100)) is sub
