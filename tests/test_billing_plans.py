"""Plans: the seeded defaults and the invariants every operator edit keeps, on both backends."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from billing import (
    PlanError,
    PlanSpec,
    Subscriptions,
    UnknownPlan,
    create_plan,
    default_trial_plan,
    delete_plan,
    get_plan,
    list_plans,
    plan_by_code,
    update_plan,
)
from billing.schema import plans
from tenants.runtime import Runtime
from tenants.schema import utcnow
from tenants.store import Portal, TenantStore, TokenPair

SPEC = PlanSpec(
    code="pro",
    name="Pro",
    monthly_messages=10_000,
    max_bots=5,
    events_per_minute_tenant=600,
    events_per_minute_dialog=30,
    features={"priority_support": True},
    over_quota_text={"en": "Out of messages.", "ru": "Сообщения закончились."},
)


async def a_tenant(runtime: Runtime, name: str = "acme") -> int:
    store = TenantStore(runtime.engine, runtime.vault, runtime.hasher)
    portal = Portal(
        member_id=f"{name}-member",
        domain=f"{name}.bitrix24.com",
        client_endpoint=f"https://{name}.bitrix24.com/rest/",
        server_endpoint="https://oauth.bitrix.info/rest/",
        scope="imbot,im",
        application_token=f"{name}-app-token",
    )
    tenant = await store.install(portal, TokenPair("access", "refresh", utcnow(), 1))
    return tenant.id


async def test_three_plans_are_seeded_with_one_default_trial(migrated: Runtime) -> None:
    seeded = await list_plans(migrated.engine)
    assert [plan.code for plan in seeded] == ["trial", "starter", "business"]
    trial = await default_trial_plan(migrated.engine)
    assert (trial.code, trial.trial_days, trial.active) == ("trial", 14, True)
    assert [plan.code for plan in seeded if plan.is_default_trial] == ["trial"]
    assert all(plan.over_quota_text_in("ru") and plan.over_quota_text_in("en") for plan in seeded)


async def test_a_plan_is_created_and_edited(migrated: Runtime) -> None:
    plan = await create_plan(migrated.engine, SPEC)
    assert plan.spec == SPEC
    assert (await plan_by_code(migrated.engine, "pro")).id == plan.id

    edited = await update_plan(migrated.engine, plan.id, replace(SPEC, monthly_messages=None))
    assert edited.monthly_messages is None  # unlimited
    assert (await get_plan(migrated.engine, plan.id)).monthly_messages is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"monthly_messages": -1}, "monthly message quota cannot be negative"),
        ({"max_bots": -3}, "maximum number of bots cannot be negative"),
        ({"events_per_minute_tenant": 0}, "events per minute per tenant must be at least 1"),
        ({"events_per_minute_dialog": -5}, "events per minute per dialog must be at least 1"),
        ({"trial_days": -1}, "trial days cannot be negative"),
        ({"code": "Has Spaces"}, "plan code 'Has Spaces' must be"),
        ({"name": " "}, "needs a name"),
        ({"over_quota_text": {}}, "over-quota text in at least one language"),
        ({"over_quota_text": {"english": "x"}}, "two-letter code"),
        ({"is_default_trial": True, "trial_days": 0}, "default trial plan must be active"),
    ],
)
async def test_edits_that_break_an_invariant_are_refused_with_the_reason(
    migrated: Runtime, change: dict[str, object], reason: str
) -> None:
    broken = replace(SPEC, **change)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match=reason):
        await create_plan(migrated.engine, broken)
    starter = await plan_by_code(migrated.engine, "starter")
    edit = broken if "code" in change else replace(broken, code="starter")
    with pytest.raises(PlanError, match=reason):
        await update_plan(migrated.engine, starter.id, edit)
    assert (await plan_by_code(migrated.engine, "starter")) == starter


async def test_a_plan_in_use_cannot_be_deleted(migrated: Runtime) -> None:
    subscriptions = Subscriptions(migrated.engine)
    tenant_id = await a_tenant(migrated)
    await subscriptions.start_trial(tenant_id)
    await subscriptions.change_plan(tenant_id, "starter")
    starter = await plan_by_code(migrated.engine, "starter")

    with pytest.raises(PlanError, match=r"'starter' is used by 1 subscription"):
        await delete_plan(migrated.engine, starter.id)
    await subscriptions.cancel(tenant_id)
    with pytest.raises(PlanError, match="cancelled ones included"):
        await delete_plan(migrated.engine, starter.id)

    unused = await create_plan(migrated.engine, SPEC)
    await delete_plan(migrated.engine, unused.id)
    with pytest.raises(UnknownPlan):
        await get_plan(migrated.engine, unused.id)


async def test_there_is_always_exactly_one_default_trial_plan(migrated: Runtime) -> None:
    trial = await default_trial_plan(migrated.engine)
    with pytest.raises(PlanError, match="mark another plan as the default trial instead"):
        await update_plan(migrated.engine, trial.id, replace(trial.spec, is_default_trial=False))
    with pytest.raises(PlanError, match="is the default trial plan"):
        await delete_plan(migrated.engine, trial.id)

    longer = await create_plan(
        migrated.engine, replace(SPEC, code="trial30", is_default_trial=True, trial_days=30)
    )
    assert (await default_trial_plan(migrated.engine)).id == longer.id
    assert not (await get_plan(migrated.engine, trial.id)).is_default_trial
    await delete_plan(migrated.engine, trial.id)  # no longer the default, never used

    assert [p.code for p in await list_plans(migrated.engine) if p.is_default_trial] == ["trial30"]


async def test_the_database_itself_refuses_a_second_default(migrated: Runtime) -> None:
    with pytest.raises(IntegrityError):
        async with migrated.engine.begin() as connection:
            await connection.execute(
                sa.update(plans).where(plans.c.code == "starter").values(is_default_trial=True)
            )


async def test_codes_are_unique(migrated: Runtime) -> None:
    with pytest.raises(PlanError, match="already has the code 'starter'"):
        await create_plan(migrated.engine, replace(SPEC, code="starter"))
    pro = await create_plan(migrated.engine, SPEC)
    with pytest.raises(PlanError, match="already has the code 'business'"):
        await update_plan(migrated.engine, pro.id, replace(SPEC, code="business"))


async def test_over_quota_text_falls_back_to_english_then_any(migrated: Runtime) -> None:
    plan = await create_plan(migrated.engine, SPEC)
    assert plan.over_quota_text_in("ru") == "Сообщения закончились."
    assert plan.over_quota_text_in("de") == "Out of messages."
    assert plan.over_quota_text_in(None) == "Out of messages."
    german = await update_plan(
        migrated.engine, plan.id, replace(SPEC, over_quota_text={"de": "Kontingent erschöpft."})
    )
    assert german.over_quota_text_in("en") == "Kontingent erschöpft."
