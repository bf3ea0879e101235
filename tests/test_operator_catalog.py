"""Plans and providers in the console: edits that keep the invariants, refusals in words."""

from __future__ import annotations

import html

import httpx2
import sqlalchemy as sa

from billing import Subscriptions, list_plans, plan_by_code
from tenants.runtime import Runtime
from tenants.schema import providers
from tests.conftest import SteppedClock
from tests.operator_kit import a_bot, a_provider, a_tenant, audit_rows, signed_in

NEW_PLAN = {
    "code": "pro",
    "name": "Pro",
    "monthly_messages": "10 000",
    "max_bots": "",
    "events_per_minute_tenant": "600",
    "events_per_minute_dialog": "30",
    "trial_days": "0",
    "features": "priority_support = on\nanalytics=off",
    "over_quota_text.en": "We are out of answers this month.",
    "over_quota_text.ru": "",
    "active": "on",
}


def text_of(response: httpx2.Response) -> str:
    return html.unescape(response.text)


async def test_a_plan_is_created_listed_and_edited(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        created = await operator.post("/operator/plans", NEW_PLAN)
        assert created.status_code == 303
        plan = await plan_by_code(migrated.engine, "pro")
        assert created.headers["location"] == f"/operator/plans/{plan.id}?done=plan_created"
        assert (plan.monthly_messages, plan.max_bots) == (10_000, None)
        assert plan.features == {"priority_support": True, "analytics": False}
        assert plan.over_quota_text == {"en": "We are out of answers this month."}
        listing = text_of(await operator.get("/operator/plans"))
        assert "Pro" in listing
        assert "10,000" in listing
        assert "unlimited" in listing

        form = text_of(await operator.get(f"/operator/plans/{plan.id}"))
        assert 'value="10000"' in form
        assert "priority_support = on" in form
        edited = await operator.post(f"/operator/plans/{plan.id}", {**NEW_PLAN, "max_bots": "5"})
        assert edited.status_code == 303
        assert (await plan_by_code(migrated.engine, "pro")).max_bots == 5
    (update,) = await audit_rows(migrated, "plan.update")
    assert update["target"] == "pro"
    assert update["details"]["max_bots"] == [None, 5]
    assert len(await audit_rows(migrated, "plan.create")) == 1


async def test_a_negative_quota_is_refused_with_the_reason(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    starter = await plan_by_code(migrated.engine, "starter")
    async with signed_in(migrated, http, clock) as operator:
        form = text_of(await operator.get(f"/operator/plans/{starter.id}"))
        assert 'value="3000"' in form
        values = {
            "code": "starter",
            "name": "Starter",
            "monthly_messages": "-5",
            "max_bots": "3",
            "events_per_minute_tenant": "300",
            "events_per_minute_dialog": "30",
            "trial_days": "0",
            "over_quota_text.en": "Sorry.",
            "active": "on",
        }
        refused = await operator.post(f"/operator/plans/{starter.id}", values)
        assert refused.status_code == 422
        page = text_of(refused)
        assert "the monthly message quota cannot be negative (got -5)" in page
        assert 'id="monthly_messages-error"' in page
        assert 'value="-5"' in page  # the operator's input is kept for correction
        rates = await operator.post(
            f"/operator/plans/{starter.id}",
            {**values, "monthly_messages": "", "events_per_minute_dialog": "0"},
        )
        assert "events per minute per dialog must be at least 1" in text_of(rates)
        words = await operator.post(f"/operator/plans/{starter.id}", {**values, "max_bots": "many"})
        assert words.status_code == 400
        assert "a whole number, or empty for unlimited" in text_of(words)
        flags = await operator.post("/operator/plans", {**NEW_PLAN, "features": "fast = maybe"})
        assert "one flag per line" in text_of(flags)
        no_text = await operator.post("/operator/plans", {**NEW_PLAN, "over_quota_text.en": ""})
        assert "over-quota text in at least one language" in text_of(no_text)
        taken = await operator.post("/operator/plans", {**NEW_PLAN, "code": "business"})
        assert "already has the code 'business'" in text_of(taken)
    assert (await plan_by_code(migrated.engine, "starter")).monthly_messages == 3000
    assert await audit_rows(migrated, "plan.update") == []


async def test_plans_in_use_or_the_default_trial_are_not_deleted(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    subs = Subscriptions(migrated.engine, clock)
    await subs.start_trial(tenant_id)
    await subs.change_plan(tenant_id, "starter")
    plans = {plan.code: plan.id for plan in await list_plans(migrated.engine)}
    async with signed_in(migrated, http, clock) as operator:
        in_use = await operator.post(f"/operator/plans/{plans['starter']}/delete")
        assert in_use.status_code == 409
        assert "plan 'starter' is used by 1 subscription(s)" in text_of(in_use)
        trial = await operator.post(f"/operator/plans/{plans['trial']}/delete")
        assert "is the default trial plan" in text_of(trial)
        free = await operator.post(f"/operator/plans/{plans['business']}/delete")
        assert free.headers["location"] == "/operator/plans?done=plan_deleted"
        assert (await operator.get(f"/operator/plans/{plans['business']}")).status_code == 404
    assert [p.code for p in await list_plans(migrated.engine)] == ["trial", "starter"]
    (deleted,) = await audit_rows(migrated, "plan.delete")
    assert deleted["target"] == "business"


async def test_providers_are_created_edited_and_deleted(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        form = {"name": "Typebot cloud", "type": "typebot", "base_url": "https://typebot.io/"}
        created = await operator.post("/operator/providers", form)
        assert created.headers["location"] == "/operator/providers?done=provider_created"
        listing = text_of(await operator.get("/operator/providers"))
        assert "Typebot cloud" in listing
        assert "(Typebot)" in listing
        async with migrated.engine.connect() as connection:
            row = (await connection.execute(sa.select(providers))).one()
        assert row.base_url == "https://typebot.io"
        edited = await operator.post(
            f"/operator/providers/{row.id}", {**form, "type": "dify_workflow"}
        )
        assert edited.status_code == 303
        deleted = await operator.post(f"/operator/providers/{row.id}/delete")
        assert deleted.headers["location"] == "/operator/providers?done=provider_deleted"
        assert (await operator.get(f"/operator/providers/{row.id}")).status_code == 404
    assert [r["action"] for r in await audit_rows(migrated)][1:] == [
        "provider.create",
        "provider.update",
        "provider.delete",
    ]


async def test_bad_providers_are_refused_field_by_field(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    await a_provider(migrated, "Dify cloud")
    async with signed_in(migrated, http, clock) as operator:
        bad = await operator.post(
            "/operator/providers", {"name": "", "type": "openai", "base_url": "ftp://x"}
        )
        assert bad.status_code == 400
        page = text_of(bad)
        assert 'id="name-error"' in page
        assert 'id="type-error"' in page
        assert "an http(s) URL of at most 512 characters" in page
        secret = await operator.post(
            "/operator/providers",
            {"name": "X", "type": "typebot", "base_url": "https://user:pw@typebot.io"},
        )
        assert "without credentials" in text_of(secret)
        taken = await operator.post(
            "/operator/providers",
            {"name": "dify CLOUD", "type": "typebot", "base_url": "https://typebot.io"},
        )
        assert taken.status_code == 409
        assert "another provider is already named 'dify CLOUD'" in text_of(taken)


async def test_a_provider_in_use_is_not_deleted_nor_retyped(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    provider_id = await a_provider(migrated, "Dify cloud")
    await a_bot(migrated, await a_tenant(migrated, "acme"), provider_id)
    async with signed_in(migrated, http, clock) as operator:
        listing = text_of(await operator.get("/operator/providers"))
        assert "in 1 portal" in listing
        refused = await operator.post(f"/operator/providers/{provider_id}/delete")
        assert refused.status_code == 409
        assert (
            "provider 'Dify cloud' is used by 1 connector(s) in 1 portal(s); it can be deleted"
            " once no connector uses it"
        ) in text_of(refused)
        retyped = await operator.post(
            f"/operator/providers/{provider_id}",
            {"name": "Dify cloud", "type": "typebot", "base_url": "https://api.dify.ai/v1"},
        )
        assert retyped.status_code == 409
        assert "its type cannot change under them" in text_of(retyped)
        renamed = await operator.post(
            f"/operator/providers/{provider_id}",
            {"name": "Dify", "type": "dify_chatflow", "base_url": "https://dify.example.com/v1"},
        )
        assert renamed.status_code == 303
    async with migrated.engine.connect() as connection:
        row = (await connection.execute(sa.select(providers))).one()
    assert (row.name, row.type) == ("Dify", "dify_chatflow")


async def test_an_oversized_form_is_refused_in_words(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        huge = {"name": "x" * 70_000, "type": "typebot", "base_url": "https://typebot.io"}
        response = await operator.post("/operator/providers", huge)
    assert response.status_code == 400
    assert "the form is larger than 64 KiB" in response.text
    assert await audit_rows(migrated, "provider.create") == []
