"""End to end through the real gateway and worker: the plan's quota stops the provider calls,
the customer gets the plan's text, the admin is told; a suspended tenant gets nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from billing import PlanSpec, Subscriptions, build_billing, create_plan
from tests.conftest import Backend
from tests.fakes.bitrix24 import message_add, send_event
from tests.fakes.dify import DifyApp
from tests.pipeline_stack import Stack, pipeline_stack, replies, until

QUOTA_OF_FIVE = PlanSpec(
    code="five",
    name="Five",
    monthly_messages=5,
    max_bots=1,
    events_per_minute_tenant=600,
    events_per_minute_dialog=600,
    over_quota_text={"en": "Our assistant is resting; a colleague will reply soon."},
)


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        stack.billing = build_billing(stack.runtime, stack.http)
        yield stack


def provider_runs(app: DifyApp) -> int:
    return sum(1 for r in app.requests if r.path.endswith("/chat-messages"))


async def test_quota_reached_means_plan_text_no_provider_call_and_admin_notices(
    stack: Stack,
) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="Hello from the flow"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    tenant = await stack.install(portal)
    await stack.add_bot(tenant, bot)
    await create_plan(stack.runtime.engine, QUOTA_OF_FIVE)
    subscriptions = Subscriptions(stack.runtime.engine)
    await subscriptions.start_trial(tenant.id)
    await subscriptions.change_plan(tenant.id, "five")
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    for n in range(1, 6):
        await send_event(stack.events_url, message_add(portal, bot, chat, customer, f"q{n}"))
        await replies(portal, chat.dialog_id, n)
        if n == 4:
            await until(lambda: len(portal.notifications) == 1, what="the 80 % notice")
    await until(lambda: len(portal.notifications) == 2, what="the 100 % notice")

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "one more"))
    over = (await replies(portal, chat.dialog_id, 6))[-1]
    assert over.text == "Our assistant is resting; a colleague will reply soon."
    assert provider_runs(app) == 5
    assert [n.user_id for n in portal.notifications] == [portal.admin.id] * 2
    assert "80 %" in portal.notifications[0].message
    assert "all 5 messages" in portal.notifications[1].message


async def test_a_suspended_tenant_is_acknowledged_and_not_answered(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    tenant = await stack.install(portal)
    await stack.add_bot(tenant, bot)
    subscriptions = Subscriptions(stack.runtime.engine)
    await subscriptions.start_trial(tenant.id)
    await subscriptions.suspend(tenant.id)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    response = await send_event(stack.events_url, message_add(portal, bot, chat, customer, "hi"))

    assert response.status_code == 200
    await handled(stack, tenant.id)
    assert portal.messages_to(chat.dialog_id) == []
    assert provider_runs(app) == 0


async def handled(stack: Stack, tenant_id: int, timeout_s: float = 10.0) -> None:
    """Wait until the worker marked the tenant's event done."""
    deadline = time.monotonic() + timeout_s
    while not [k async for k in stack.runtime.redis.scan_iter(f"bitbot:done:{tenant_id}:*")]:
        assert time.monotonic() < deadline, "the event was never handled"
        await asyncio.sleep(0.02)
