"""Handing the chat to a human when the flow fails, end to end through the gateway and a worker.

With the bot's ``handoff_on_failure`` on, a turn that ends in the fallback text in an Open
Channel chat is followed by ``imopenlines.bot.session.operator`` (the same call for v1 and v2
bots); other chats, quota refusals and failed deliveries get no handoff, and Bitrix24 refusing it
ends the turn like any other failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from billing import PlanSpec, Subscriptions, build_billing, create_plan
from tenants.queue import DeadLetter, Queue
from tests.conftest import Backend
from tests.fakes.bitrix24 import (
    Bot,
    Chat,
    Portal,
    RestCall,
    User,
    enqueue_v2,
    message_add,
    message_add_v2,
    send_event,
    webhook_v2,
)
from tests.fakes.dify import DifyApp, HttpError
from tests.pipeline_stack import Stack, pipeline_stack, replies, until

HANDOFF = "imopenlines.bot.session.operator"
FALLBACK = "One moment, please."
VARIANTS = ["v1", "v2_webhook", "v2_fetch"]


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


@dataclass(frozen=True)
class Talk:
    portal: Portal
    bot: Bot
    chat: Chat
    customer: User
    variant: str
    tenant_id: int

    @property
    def message_method(self) -> str:
        return "imbot.message.add" if self.variant == "v1" else "imbot.v2.Chat.Message.send"


async def a_bot(stack: Stack, variant: str, chat_kind: str = "open_line", **options: Any) -> Talk:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=variant != "v1")
    if variant == "v1":
        bot = portal.add_v1_bot("support", stack.events_url, bot_type="O")
    elif variant == "v2_webhook":
        bot = portal.add_v2_bot("support", webhook_url=stack.events_url, bot_type="openline")
    else:
        bot = portal.add_v2_bot("support", bot_type="openline")
        options["event_mode"] = "fetch"
    tenant = await stack.install(portal)
    await stack.add_bot(tenant, bot, fallback_text=FALLBACK, **options)
    customer = portal.add_customer("Ann")
    if chat_kind == "open_line":
        chat = portal.open_line_chat(customer)
    elif chat_kind == "private":
        chat = portal.private_chat(customer)
    else:
        chat = portal.group_chat("Support team", owner=customer)
    return Talk(portal, bot, chat, customer, variant, tenant.id)


async def say(stack: Stack, talk: Talk, text: str) -> None:
    portal, bot, chat, customer = talk.portal, talk.bot, talk.chat, talk.customer
    if talk.variant == "v1":
        pairs = message_add(portal, bot, chat, customer, text)
        assert (await send_event(stack.events_url, pairs)).status_code == 200
    elif talk.variant == "v2_webhook":
        event = message_add_v2(portal, bot, chat, customer, text)
        assert (await send_event(stack.events_url, webhook_v2(portal, event))).status_code == 200
    else:
        enqueue_v2(portal, message_add_v2(portal, bot, chat, customer, text))


async def dead_letters(stack: Stack, count: int = 1) -> list[DeadLetter]:
    queue = Queue(stack.runtime.redis, stack.runtime.vault, 4)
    deadline = time.monotonic() + 10
    while len(letters := await queue.dead_letters()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {count} dead letters")
        await asyncio.sleep(0.02)
    return letters


async def settled(stack: Stack) -> None:
    await until(lambda: not any(w.in_flight for w, _, _ in stack.workers), what="idle worker")


def handoffs_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("bitbot_handoffs_total", {"outcome": outcome}) or 0.0


def top_level(calls: list[RestCall], method: str) -> list[int]:
    """Positions of ``method`` calls in the portal's record (batched ones included)."""
    return [index for index, call in enumerate(calls) if call.method == method]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_a_failed_turn_in_an_open_channel_is_handed_to_an_operator(
    stack: Stack, variant: str
) -> None:
    stack.dify.add_app(DifyApp("app-key-1")).fault = HttpError(500)
    talk = await a_bot(stack, variant, handoff_on_failure=True)
    before = handoffs_counted("ok")
    stack.start_worker()

    await say(stack, talk, "Where is my order?")

    (fallback,) = await replies(talk.portal, talk.chat.dialog_id)
    await until(lambda: bool(talk.portal.handoffs), what="the handoff")
    assert fallback.text == FALLBACK
    # The fallback text reaches the chat first, then the chat goes to the line's queue.
    calls = talk.portal.calls
    (sent,) = top_level(calls, talk.message_method)
    (handed,) = top_level(calls, HANDOFF)
    assert sent < handed
    call = calls[handed]
    assert call.ok
    assert call.params == {"CHAT_ID": talk.chat.id}  # the numeric chat id, not "chat123"
    assert call.user_id == talk.portal.admin.id  # the application's OAuth token
    assert [h.chat_id for h in talk.portal.handoffs] == [talk.chat.id]
    assert talk.portal.session_holder(talk.chat) == "operator"
    (letter,) = await dead_letters(stack)
    assert "handoff=ok" in letter.summary.split()
    assert handoffs_counted("ok") == before + 1


async def test_with_the_option_off_only_the_fallback_goes_out(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1")).fault = HttpError(500)
    talk = await a_bot(stack, "v1")  # handoff_on_failure defaults to off
    stack.start_worker()

    await say(stack, talk, "Hello?")

    (fallback,) = await replies(talk.portal, talk.chat.dialog_id)
    assert fallback.text == FALLBACK
    (letter,) = await dead_letters(stack)
    await settled(stack)
    assert talk.portal.calls_of(HANDOFF) == []
    assert talk.portal.session_holder(talk.chat) == "bot"
    assert "handoff=" not in letter.summary


@pytest.mark.parametrize(
    ("variant", "chat_kind"), [("v1", "private"), ("v1", "group"), ("v2_webhook", "private")]
)
async def test_outside_open_channels_there_is_no_operator_to_hand_to(
    stack: Stack, variant: str, chat_kind: str
) -> None:
    stack.dify.add_app(DifyApp("app-key-1")).fault = HttpError(500)
    talk = await a_bot(stack, variant, chat_kind, handoff_on_failure=True)
    before = handoffs_counted("skipped")
    stack.start_worker()

    await say(stack, talk, "Hello?")

    (fallback,) = await replies(talk.portal, talk.chat.dialog_id)
    assert fallback.text == FALLBACK
    (letter,) = await dead_letters(stack)
    await settled(stack)
    assert talk.portal.calls_of(HANDOFF) == []
    assert "handoff=skipped handoff_code=not_open_channel" in letter.summary
    assert handoffs_counted("skipped") == before + 1


@pytest.mark.parametrize("variant", ["v1", "v2_webhook"])
async def test_a_chat_already_with_a_human_ends_the_turn_and_the_dialog_goes_on(
    stack: Stack, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="Here is your answer."))
    app.fault = HttpError(500)
    talk = await a_bot(stack, variant, handoff_on_failure=True)
    talk.portal.operator_takes_over(talk.chat)
    before = handoffs_counted("failed")
    stack.start_worker()

    with caplog.at_level(logging.INFO, logger="bitbot.handoff"):
        await say(stack, talk, "Hello?")
        (fallback,) = await replies(talk.portal, talk.chat.dialog_id)
        (letter,) = await dead_letters(stack)

    assert fallback.text == FALLBACK
    (refused,) = talk.portal.calls_of(HANDOFF)  # tried once, not again and again
    assert refused.error == "WRONG_CHAT"
    assert "handoff=failed handoff_code=WRONG_CHAT" in letter.summary
    assert handoffs_counted("failed") == before + 1
    (warning,) = [r for r in caplog.records if r.name == "bitbot.handoff"]
    assert warning.levelno == logging.WARNING
    assert "WRONG_CHAT" in warning.getMessage()

    app.heal()
    await say(stack, talk, "Are you there?")
    _, answer = await replies(talk.portal, talk.chat.dialog_id, 2)
    assert answer.text == "Here is your answer."
    await settled(stack)
    assert len(talk.portal.calls_of(HANDOFF)) == 1


async def test_no_handoff_when_the_fallback_itself_cannot_be_delivered(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1")).fault = HttpError(500)
    talk = await a_bot(stack, "v1", handoff_on_failure=True)
    talk.portal.fail_next("imbot.message.add", 500, "INTERNAL_SERVER_ERROR")
    stack.start_worker()

    await say(stack, talk, "Hello?")

    (letter,) = await dead_letters(stack)
    await settled(stack)
    assert [c.error for c in talk.portal.calls_of("imbot.message.add")] == ["INTERNAL_SERVER_ERROR"]
    assert talk.portal.calls_of(HANDOFF) == []
    assert "handoff=skipped handoff_code=fallback_failed" in letter.summary


async def test_no_handoff_when_the_answer_cannot_be_delivered(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1", answer="fine"))
    talk = await a_bot(stack, "v2_webhook", handoff_on_failure=True)
    talk.portal.fail_next("imbot.v2.Chat.Message.send", 500, "INTERNAL_SERVER_ERROR")
    stack.start_worker()

    await say(stack, talk, "Hello?")

    (letter,) = await dead_letters(stack)
    await settled(stack)
    assert letter.reason.startswith("bitrix24:")
    assert talk.portal.calls_of(HANDOFF) == []
    assert talk.portal.session_holder(talk.chat) == "bot"


async def test_no_handoff_when_the_plan_quota_refuses_the_turn(stack: Stack) -> None:
    stack.billing = build_billing(stack.runtime, stack.http)
    stack.dify.add_app(DifyApp("app-key-1", answer="fine"))
    talk = await a_bot(stack, "v1", handoff_on_failure=True)
    plan = PlanSpec(
        code="one",
        name="One",
        monthly_messages=1,
        max_bots=1,
        events_per_minute_tenant=600,
        events_per_minute_dialog=600,
        over_quota_text={"en": "The assistant is resting."},
    )
    await create_plan(stack.runtime.engine, plan)
    subscriptions = Subscriptions(stack.runtime.engine)
    await subscriptions.start_trial(talk.tenant_id)
    await subscriptions.change_plan(talk.tenant_id, "one")
    stack.start_worker()

    await say(stack, talk, "first")
    await replies(talk.portal, talk.chat.dialog_id)
    await say(stack, talk, "second")

    _, refused = await replies(talk.portal, talk.chat.dialog_id, 2)
    assert refused.text == "The assistant is resting."
    await settled(stack)
    assert talk.portal.calls_of(HANDOFF) == []
