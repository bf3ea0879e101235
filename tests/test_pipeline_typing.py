""" "Typing" in the chat while a slow flow works, none for an answer that comes at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.fakes.bitrix24 import message_add, message_add_v2, send_event, webhook_v2
from tests.fakes.dify import DifyApp
from tests.pipeline_stack import Stack, pipeline_stack, replies


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


@pytest.mark.parametrize("version", [1, 2])
async def test_a_slow_flow_shows_typing_before_its_answer(stack: Stack, version: int) -> None:
    stack.dify.add_app(DifyApp("app-key-1", answer="Found it", delay=0.8))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=version == 2)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    if version == 1:
        bot = portal.add_v1_bot("support", stack.events_url)
        body = message_add(portal, bot, chat, customer, "Where is my order?")
    else:
        bot = portal.add_v2_bot("support", webhook_url=stack.events_url)
        body = webhook_v2(portal, message_add_v2(portal, bot, chat, customer, "Where is it?"))
    await stack.add_bot(await stack.install(portal), bot)
    stack.start_worker()

    await send_event(stack.events_url, body)
    (reply,) = await replies(portal, chat.dialog_id)

    assert [(t.bot_id, t.dialog_id) for t in portal.typing] == [(bot.id, chat.dialog_id)]
    shown = [c.method for c in portal.calls if c.error is None and c.method != "batch"]
    typing = "imbot.chat.sendTyping" if version == 1 else "imbot.v2.Chat.InputAction.notify"
    assert shown.index(typing) < shown.index(reply.method)
    assert reply.text == "Found it"


async def test_an_answer_that_comes_at_once_needs_no_typing(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1", answer="Hi"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "Hello"))
    await replies(portal, chat.dialog_id)

    assert portal.typing == []
