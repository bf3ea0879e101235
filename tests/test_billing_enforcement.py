"""Quota enforcement through the seam, with admin notices delivered to the Bitrix24 fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx2
import pytest
import sqlalchemy as sa

from billing import (
    Allow,
    Bitrix24AdminNotifier,
    Deny,
    Meter,
    PlanBilling,
    PlanSpec,
    RateLimits,
    Subscriptions,
    TurnUsage,
    create_plan,
)
from billing.enforcement import CACHE_S
from tenants.bitrix24 import build_services
from tenants.runtime import Runtime
from tenants.store import Portal as Install
from tenants.store import TenantStore, TokenPair
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal

TINY = PlanSpec(
    code="tiny",
    name="Tiny",
    monthly_messages=10,
    max_bots=1,
    events_per_minute_tenant=100,
    events_per_minute_dialog=7,
    over_quota_text={"en": "We are out of answers this month.", "ru": "Лимит ответов исчерпан."},
)
ONE = TurnUsage(messages_in=1, replies_out=1, prompt_tokens=12, completion_tokens=5)
DAY = 86_400.0


@dataclass
class World:
    runtime: Runtime
    portal: Portal
    tenant_id: int
    subscriptions: Subscriptions
    clock: SteppedClock
    http: httpx2.AsyncClient
    made: list[PlanBilling] = field(default_factory=list)

    def billing(self) -> PlanBilling:
        """The billing of one worker process (closed when the test ends, as a worker's is)."""
        runtime, clock = self.runtime, self.clock
        notifier = Bitrix24AdminNotifier(build_services(runtime, self.http, clock))
        meter = Meter(runtime.redis, runtime.engine, clock)
        self.made.append(PlanBilling(runtime.engine, meter, notifier, clock=clock))
        return self.made[-1]

    def notices(self) -> list[str]:
        assert all(n.user_id == self.portal.admin.id for n in self.portal.notifications)
        return [n.message for n in self.portal.notifications]

    def later(self, seconds: float) -> None:
        self.clock.fake.advance(seconds)


async def install(
    runtime: Runtime, portal: Portal, clock: SteppedClock, language: str | None
) -> int:
    store = TenantStore(runtime.engine, runtime.vault, runtime.hasher)
    tenant = await store.install(
        Install(
            member_id=portal.member_id,
            domain=portal.domain,
            client_endpoint=portal.client_endpoint,
            server_endpoint=portal.server_endpoint,
            scope=portal.scope,
            application_token=portal.application_token,
            language=language,
        ),
        TokenPair(
            portal.auth.access_token,
            portal.auth.refresh_token,
            datetime.fromtimestamp(clock.now() + 3600, UTC),
            portal.admin.id,
        ),
    )
    return tenant.id


@pytest.fixture
async def world(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, clock: SteppedClock, http: httpx2.AsyncClient
) -> AsyncIterator[World]:
    portal = bitrix24.add_portal("acme.bitrix24.com", language="ru")
    tenant_id = await install(b24_runtime, portal, clock, "ru")
    subscriptions = Subscriptions(b24_runtime.engine, clock)
    await create_plan(b24_runtime.engine, TINY)
    await subscriptions.start_trial(tenant_id)
    await subscriptions.change_plan(tenant_id, "tiny")
    world = World(b24_runtime, portal, tenant_id, subscriptions, clock, http)
    yield world
    for billing in world.made:
        await billing.aclose()


async def test_admins_hear_once_at_80_and_once_at_100_percent(world: World) -> None:
    worker, other_worker = world.billing(), world.billing()
    for _ in range(7):
        assert await worker.check_turn(world.tenant_id) == Allow()
        await worker.record(world.tenant_id, ONE)
    assert world.notices() == []

    await worker.record(world.tenant_id, ONE)  # 8 of 10
    (at_80,) = world.notices()
    assert "израсходовали 8 из 10" in at_80
    assert "80 %" in at_80
    await worker.record(world.tenant_id, ONE)  # 9 of 10
    assert len(world.notices()) == 1

    await other_worker.record(world.tenant_id, ONE)  # 10 of 10, seen by another process
    assert len(world.notices()) == 2
    assert "все 10 сообщений" in world.notices()[1]

    world.later(CACHE_S + 1)  # past the cache: the first worker now sees the other's turns too
    assert await worker.check_turn(world.tenant_id) == Deny("Лимит ответов исчерпан.")
    await worker.record(world.tenant_id, ONE)  # a turn that was already in flight
    assert len(world.notices()) == 2


async def test_over_quota_text_follows_the_portal_language(
    world: World, bitrix24: FakeBitrix24
) -> None:
    portal = bitrix24.add_portal("globex.bitrix24.com", language="de")
    tenant_id = await install(world.runtime, portal, world.clock, "de")
    await world.subscriptions.start_trial(tenant_id)
    await world.subscriptions.change_plan(tenant_id, "tiny")
    billing = world.billing()
    await billing.record(tenant_id, TurnUsage(messages_in=10, replies_out=1))  # one merged turn
    assert await billing.check_turn(tenant_id) == Deny("We are out of answers this month.")
    (at_100,) = [n.message for n in portal.notifications]  # 80 % and 100 % crossed together
    assert at_100.startswith("BitBot: your bots have used all 10 messages")


async def test_a_suspended_or_cancelled_tenant_is_acknowledged_and_not_answered(
    world: World,
) -> None:
    billing = world.billing()
    await world.subscriptions.suspend(world.tenant_id)
    billing.forget(world.tenant_id)
    assert await billing.check_turn(world.tenant_id) == Deny("")

    await world.subscriptions.resume(world.tenant_id)
    billing.forget(world.tenant_id)
    assert await billing.check_turn(world.tenant_id) == Allow()

    await world.subscriptions.cancel(world.tenant_id)
    world.later(CACHE_S + 1)
    assert await billing.check_turn(world.tenant_id) == Deny("")


async def test_past_due_is_served_until_the_grace_ends_even_before_the_tick(
    world: World,
) -> None:
    billing = world.billing()
    await world.subscriptions.payment_required(world.tenant_id)
    assert await billing.check_turn(world.tenant_id) == Allow()
    world.later(7 * DAY + 1)
    assert await billing.check_turn(world.tenant_id) == Deny("")


async def test_rate_limits_come_from_the_plan(world: World) -> None:
    billing = world.billing()
    assert await billing.limits(world.tenant_id) == RateLimits(100, 7)
    assert (await billing.plan_of(world.tenant_id)).max_bots == 1
    await world.subscriptions.change_plan(world.tenant_id, "business")
    billing.forget(world.tenant_id)
    assert await billing.limits(world.tenant_id) == RateLimits(1200, 30)


async def test_a_new_period_restores_the_quota_and_the_notices(world: World) -> None:
    billing = world.billing()
    for _ in range(10):
        await billing.record(world.tenant_id, ONE)
    assert isinstance(await billing.check_turn(world.tenant_id), Deny)
    assert len(world.notices()) == 2

    world.later(31 * DAY)  # Feb 1: the next period, before any tick ran
    assert await billing.check_turn(world.tenant_id) == Allow()
    for _ in range(8):
        await billing.record(world.tenant_id, ONE)
    assert len(world.notices()) == 3
    assert "израсходовали 8 из 10" in world.notices()[2]
    assert "до 2026-03-01" in world.notices()[2]


async def test_a_notice_that_could_not_be_sent_is_tried_again(world: World) -> None:
    billing = world.billing()
    world.portal.fail_next("im.notify.system.add", 400, "USER_ID_EMPTY")
    for _ in range(8):
        await billing.record(world.tenant_id, ONE)
    assert world.notices() == []
    await billing.record(world.tenant_id, ONE)
    assert len(world.notices()) == 1


async def test_a_tenant_installed_before_billing_gets_its_trial_on_first_use(
    world: World, bitrix24: FakeBitrix24
) -> None:
    portal = bitrix24.add_portal("initech.bitrix24.com")
    tenant_id = await install(world.runtime, portal, world.clock, None)
    assert await world.subscriptions.get(tenant_id) is None
    assert await world.billing().check_turn(tenant_id) == Allow()
    sub = await world.subscriptions.get(tenant_id)
    assert sub is not None
    assert sub.state == "trial"


async def test_a_busy_tenant_is_reloaded_ahead_of_time_off_the_turns_path(world: World) -> None:
    worker, other_worker = world.billing(), world.billing()
    assert await worker.check_turn(world.tenant_id) == Allow()  # loaded
    for _ in range(10):
        await other_worker.record(world.tenant_id, ONE)  # the quota used up elsewhere

    world.later(CACHE_S * 0.92)  # still cached, but past the moment to reload ahead
    assert await worker.check_turn(world.tenant_id) == Allow()  # served from the cache
    # The reload it started in the background finishes without another turn waiting for it
    # (the fake clock stands still: the cache has not run out meanwhile).
    verdicts = [await worker.check_turn(world.tenant_id)]
    for _ in range(200):
        if verdicts[-1] != Allow():
            break
        await asyncio.sleep(0.025)
        verdicts.append(await worker.check_turn(world.tenant_id))
    assert verdicts[-1] == Deny("Лимит ответов исчерпан.")


async def reload_in_background(world: World) -> tuple[PlanBilling, set[asyncio.Task[object]]]:
    """A worker's billing with a reload running in the background that will find the quota used
    up elsewhere; the tasks that ran before it started."""
    worker, other_worker = world.billing(), world.billing()
    assert await worker.check_turn(world.tenant_id) == Allow()
    for _ in range(10):
        await other_worker.record(world.tenant_id, ONE)
    world.later(CACHE_S * 0.92)
    running_before = asyncio.all_tasks()
    assert await worker.check_turn(world.tenant_id) == Allow()  # starts the reload
    assert asyncio.all_tasks() > running_before
    return worker, running_before


async def test_closing_waits_for_the_reloads_running_in_the_background(world: World) -> None:
    worker, running_before = await reload_in_background(world)

    await worker.aclose()  # as a worker does at shutdown, before the engine goes

    assert asyncio.all_tasks() <= running_before  # the reload is no longer running
    # It finished rather than being dropped: its result is what the cache holds now.
    assert await worker.check_turn(world.tenant_id) == Deny("Лимит ответов исчерпан.")
    await worker.aclose()  # nothing left to wait for


async def test_closing_cancels_a_reload_that_outlasts_the_grace(world: World) -> None:
    worker, running_before = await reload_in_background(world)

    await worker.aclose(timeout_s=0)  # no time to finish: the load itself is cancelled

    assert asyncio.all_tasks() <= running_before  # neither the load nor its waiter is left
    assert await worker.check_turn(world.tenant_id) == Allow()  # the old view, never replaced


async def test_a_load_reads_everything_on_one_database_connection(world: World) -> None:
    for _ in range(3):
        await world.billing().record(world.tenant_id, ONE)  # usage to read back
    checkouts: list[object] = []
    pool = world.runtime.engine.sync_engine
    listener = lambda *_: checkouts.append(1)  # noqa: E731
    sa.event.listen(pool, "checkout", listener)
    try:
        billing = world.billing()
        assert await billing.check_turn(world.tenant_id) == Allow()
        assert await billing.limits(world.tenant_id) == RateLimits(100, 7)
    finally:
        sa.event.remove(pool, "checkout", listener)
    assert len(checkouts) == 1
    world.later(CACHE_S + 1)
    for _ in range(7):
        await world.billing().record(world.tenant_id, ONE)  # 10 of 10, by other workers
    assert await billing.check_turn(world.tenant_id) == Deny("Лимит ответов исчерпан.")
