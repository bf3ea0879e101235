"""The tenants table and a tenant's page: search, filters, plan changes, trial, suspension,
usage, bots, recent errors and dead-letter replay."""

from __future__ import annotations

import html
from typing import Any

import httpx2
import sqlalchemy as sa

from billing import Meter, Subscriptions, TurnUsage
from tenants.queue import DEAD_LETTERS, Queue, stream_name
from tenants.runtime import Runtime
from tenants.schema import tenants
from tests.conftest import SteppedClock
from tests.operator_kit import (
    a_bot,
    a_dead_letter,
    a_provider,
    a_tenant,
    audit_rows,
    signed_in,
)


def text_of(response: httpx2.Response) -> str:
    return html.unescape(response.text)


async def test_the_table_searches_and_filters(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    acme = await a_tenant(migrated, "acme")
    globex = await a_tenant(migrated, "globex")
    initech = await a_tenant(migrated, "initech")
    subs = Subscriptions(migrated.engine, clock)
    for tenant_id in (acme, globex):
        await subs.start_trial(tenant_id)
    await subs.change_plan(globex, "business")
    await subs.suspend(globex)
    async with migrated.engine.begin() as connection:
        await connection.execute(
            sa.update(tenants)
            .where(tenants.c.id == initech)
            .values(status="needs_attention", attention_reason="invalid_grant")
        )
    async with signed_in(migrated, http, clock) as operator:

        async def domains(**params: str) -> list[str]:
            page = text_of(await operator.get("/operator/tenants", **params))
            return [d for d in ("acme", "globex", "initech") if f">{d}.bitrix24.com</a>" in page]

        assert await domains() == ["acme", "globex", "initech"]
        assert await domains(q="GLOBEX") == ["globex"]
        assert await domains(q="initech-member") == ["initech"]
        assert await domains(q=f"#{acme}") == ["acme"]
        assert await domains(q="100%") == []
        assert await domains(status="needs_attention") == ["initech"]
        assert await domains(state="suspended") == ["globex"]
        assert await domains(plan="trial") == ["acme"]
        assert await domains(plan="-") == ["initech"]
        assert await domains(state="trial", plan="business") == []
        page = text_of(await operator.get("/operator/tenants", state="suspended"))
        assert "suspended · operator" in page


async def test_the_table_pages(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    for n in range(27):
        await a_tenant(migrated, f"portal{n:02d}")
    async with signed_in(migrated, http, clock) as operator:
        first = text_of(await operator.get("/operator/tenants"))
        second = text_of(await operator.get("/operator/tenants", page="2"))
    assert "Page 1 of 2" in first
    assert "portal26.bitrix24.com" in first
    assert "portal01.bitrix24.com" not in first
    assert "portal01.bitrix24.com" in second
    assert "portal26.bitrix24.com" not in second


async def test_the_tenant_page_shows_portal_plan_usage_bots_and_errors(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    await Subscriptions(migrated.engine, clock).start_trial(tenant_id)
    provider = await a_provider(migrated)
    await a_bot(migrated, tenant_id, provider)
    await a_bot(
        migrated,
        tenant_id,
        provider,
        name="Night shift",
        handoff_on_failure=True,
        connector="Night flow",
    )
    meter = Meter(migrated.redis, migrated.engine, clock)
    await meter.add(tenant_id, TurnUsage(messages_in=12, replies_out=11))
    await meter.flush()
    await meter.add(tenant_id, TurnUsage(messages_in=3, replies_out=2))  # not flushed yet
    await a_dead_letter(migrated, tenant_id, "acme-member")
    async with signed_in(migrated, http, clock) as operator:
        page = text_of(await operator.get(f"/operator/tenants/{tenant_id}"))
    assert "acme-member" in page
    assert "Free trial" in page
    assert "2026-01-01 \N{EN DASH} 2026-02-01" in page
    assert "15</span>" in page
    assert "of 300 this period" in page
    assert '<svg class="usage-chart"' in page
    assert "2026-01-01: 15 messages in" in page
    assert "Concierge" in page
    assert "Support flow" in page
    assert page.count("hands off to operators on failure") == 1  # Night shift only
    assert "Bitrix24 answered ACCESS_DENIED" in page
    assert "provider: timeout" in page
    assert "ONIMBOTMESSAGEADD bot 7 dialog chat12" in page
    assert "event=ONIMBOTMESSAGEADD" not in page  # the sealed payload stays sealed


async def test_the_usage_range_is_chosen_and_checked(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    async with signed_in(migrated, http, clock) as operator:
        path = f"/operator/tenants/{tenant_id}"
        week = await operator.get(path, **{"from": "2025-12-26", "to": "2026-01-01"})
        assert week.status_code == 200
        assert "UTC days 2025-12-26 \N{EN DASH} 2026-01-01" in text_of(week)
        backwards = await operator.get(path, **{"from": "2026-01-05", "to": "2026-01-01"})
        assert backwards.status_code == 400
        assert "the end comes before the start" in backwards.text
        too_long = await operator.get(path, **{"from": "2024-01-01", "to": "2026-01-01"})
        assert "choose at most 366 days" in too_long.text
        assert (await operator.get(path, **{"from": "yesterday"})).status_code == 400


async def test_change_plan_extend_trial_suspend_and_resume(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    subs = Subscriptions(migrated.engine, clock)
    await subs.start_trial(tenant_id)
    base = f"/operator/tenants/{tenant_id}"
    async with signed_in(migrated, http, clock) as operator:
        extended = await operator.post(f"{base}/trial", {"days": "10"})
        assert extended.headers["location"] == f"{base}?done=trial_extended"
        trial_end = (await subs.get(tenant_id)).trial_end  # type: ignore[union-attr]
        assert trial_end is not None
        assert trial_end.isoformat().startswith("2026-01-25")

        confirm = await operator.get(f"{base}/suspend")
        assert "Yes, suspend acme.bitrix24.com" in confirm.text
        assert (await subs.get(tenant_id)).state == "trial"  # type: ignore[union-attr]
        await operator.post(f"{base}/suspend")
        assert (await subs.get(tenant_id)).state == "suspended"  # type: ignore[union-attr]
        page = await operator.get(base, done="suspended")
        assert "The tenant is suspended" in page.text
        assert "Resume…" in page.text

        await operator.post(f"{base}/resume")
        assert (await subs.get(tenant_id)).state == "trial"  # type: ignore[union-attr]

        changed = await operator.post(f"{base}/plan", {"plan": "starter"})
        assert changed.status_code == 303
        sub = await subs.get(tenant_id)
        assert sub is not None
        assert (sub.state, sub.trial_end) == ("active", None)
    actions = [(row["action"], row["tenant_id"]) for row in await audit_rows(migrated)][1:]
    assert actions == [
        ("tenant.extend_trial", tenant_id),
        ("tenant.suspend", tenant_id),
        ("tenant.resume", tenant_id),
        ("tenant.change_plan", tenant_id),
    ]
    change = (await audit_rows(migrated, "tenant.change_plan"))[0]["details"]
    assert change["plan"] == "starter"
    assert change["state"] == ["trial", "active"]


async def test_refused_changes_say_why(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    subs = Subscriptions(migrated.engine, clock)
    await subs.start_trial(tenant_id)
    await subs.change_plan(tenant_id, "starter")
    base = f"/operator/tenants/{tenant_id}"
    async with signed_in(migrated, http, clock) as operator:
        trial = await operator.post(f"{base}/trial", {"days": "7"})
        assert trial.status_code == 409
        assert "the tenant is on a paid plan, not on a trial" in trial.text
        bad_days = await operator.post(f"{base}/trial", {"days": "-3"})
        assert bad_days.status_code == 400
        back_to_trial = await operator.post(f"{base}/plan", {"plan": "trial"})
        assert "extend the trial instead" in back_to_trial.text
        unknown = await operator.post(f"{base}/plan", {"plan": "platinum"})
        assert unknown.status_code == 404
        assert "no plan has code" in text_of(unknown)
        assert (await operator.post(f"{base}/pause")).status_code == 404
        assert (await operator.get("/operator/tenants/999")).status_code == 404
        await subs.cancel(tenant_id)
        cancelled = await operator.post(f"{base}/suspend")
        assert cancelled.status_code == 409
        assert "cancelled" in cancelled.text
    assert len(await audit_rows(migrated)) == 1  # the login only


async def test_a_tenant_from_before_billing_gets_its_trial_when_changed(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    async with signed_in(migrated, http, clock) as operator:
        page = await operator.get(f"/operator/tenants/{tenant_id}")
        assert "No subscription yet" in page.text
        await operator.post(f"/operator/tenants/{tenant_id}/plan", {"plan": "business"})
    sub = await Subscriptions(migrated.engine, clock).get(tenant_id)
    assert sub is not None
    assert sub.state == "active"


async def test_a_dead_letter_is_replayed_into_the_queue(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    acme = await a_tenant(migrated, "acme")
    globex = await a_tenant(migrated, "globex")
    letter = await a_dead_letter(migrated, acme, "acme-member")
    foreign = await a_dead_letter(migrated, globex, "globex-member", reason="bitrix24: denied")
    queue = Queue(migrated.redis, migrated.vault, migrated.settings.queue_shards)
    async with signed_in(migrated, http, clock) as operator:
        wrong_tenant = await operator.post(
            f"/operator/tenants/{acme}/dead-letters/{foreign}/replay"
        )
        assert wrong_tenant.status_code == 404
        bogus = await operator.post(f"/operator/tenants/{acme}/dead-letters/not-an-id/replay")
        assert bogus.status_code == 404
        replayed = await operator.post(f"/operator/tenants/{acme}/dead-letters/{letter}/replay")
        assert replayed.headers["location"] == f"/operator/tenants/{acme}?done=replayed"
        again = await operator.post(f"/operator/tenants/{acme}/dead-letters/{letter}/replay")
        assert again.status_code == 404
    assert [d.entry_id for d in await queue.dead_letters()] == [foreign]
    waiting = sum((await queue.lag()).values())
    assert waiting == 1
    entries: list[Any] = []
    for shard in range(queue.shards):
        entries += await migrated.redis.xrange(stream_name(shard)) or []
    (entry,) = [fields for _, fields in entries]
    assert entry[b"kind"] == b"replay"
    assert entry[b"tenant_id"] == str(acme).encode()
    assert await migrated.redis.xlen(DEAD_LETTERS) == 1
    (row,) = await audit_rows(migrated, "dead_letter.replay")
    assert (row["tenant_id"], row["target"]) == (acme, letter)


async def test_an_uninstalled_portal_is_not_replayed(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    acme = await a_tenant(migrated, "acme")
    letter = await a_dead_letter(migrated, acme, "acme-member")
    async with migrated.engine.begin() as connection:
        await connection.execute(sa.update(tenants).values(status="uninstalled"))
    async with signed_in(migrated, http, clock) as operator:
        refused = await operator.post(f"/operator/tenants/{acme}/dead-letters/{letter}/replay")
    assert refused.status_code == 409
    assert "uninstalled BitBot" in refused.text
