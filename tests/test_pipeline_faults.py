"""Faults on either side of a turn, end to end: each ends in one answer or one fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tenants.queue import Queue
from tenants.schema import providers
from tests.conftest import Backend
from tests.fakes.bitrix24 import (
    Bot,
    Chat,
    IncomingFile,
    Portal,
    User,
    message_add,
    send_event,
)
from tests.fakes.dify import DifyApp, InputVariable, StreamError
from tests.pipeline_stack import Stack, pipeline_stack, replies, until


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


@dataclass(frozen=True)
class Conversation:
    bot: Bot
    chat: Chat
    customer: User


async def one_bot(stack: Stack, **options: Any) -> tuple[Portal, int, str, Conversation]:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot, **options)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    return portal, bot.id, chat.dialog_id, Conversation(bot, chat, customer)


async def say(
    stack: Stack,
    portal: Portal,
    talk: Conversation,
    text: str,
    files: tuple[IncomingFile, ...] = (),
) -> None:
    pairs = message_add(portal, talk.bot, talk.chat, talk.customer, text, files=files)
    assert (await send_event(stack.events_url, pairs)).status_code == 200


async def settled(stack: Stack) -> None:
    await until(lambda: not any(w.in_flight for w, _, _ in stack.workers), what="idle worker")


async def test_expired_portal_token_is_refreshed_during_the_reply(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1", answer="ok"))
    portal, _, dialog, parts = await one_bot(stack)
    portal.expire_access_tokens()
    stack.start_worker()

    await say(stack, portal, parts, "Hello")

    (reply,) = await replies(portal, dialog)
    assert reply.text == "ok"
    assert portal.refresh_count == 1


async def test_portal_rate_limit_during_the_reply_delays_it_once(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1", answer="ok"))
    portal, _, dialog, parts = await one_bot(stack)
    portal.fail_next("imbot.message.add", 503, "QUERY_LIMIT_EXCEEDED")
    stack.start_worker()

    await say(stack, portal, parts, "Hello")

    (reply,) = await replies(portal, dialog)
    assert reply.text == "ok"
    await settled(stack)
    assert len(portal.messages_to(dialog)) == 1


async def test_mid_stream_error_gives_the_fallback(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="a long answer in chunks"))
    app.fault = StreamError(after_chunks=1)
    portal, _, dialog, parts = await one_bot(stack, fallback_text="Please hold on.")
    stack.start_worker()

    await say(stack, portal, parts, "Hello")

    (reply,) = await replies(portal, dialog)
    assert reply.text == "Please hold on."


async def test_too_long_input_is_named_in_the_dead_letter(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1", form=[InputVariable("MESSAGE", max_length=10)]))
    portal, _, dialog, parts = await one_bot(stack)
    stack.start_worker()

    await say(stack, portal, parts, "This message is longer than ten characters")

    (reply,) = await replies(portal, dialog)
    assert "longer than ten" not in reply.text
    await settled(stack)
    (letter,) = await Queue(stack.runtime.redis, stack.runtime.vault, 4).dead_letters()
    assert "MESSAGE" in letter.reason
    assert "10 characters" in letter.reason
    assert "code=input_too_long" in letter.summary


async def test_file_without_text_reaches_the_flow(stack: Stack) -> None:
    form = [InputVariable("file_id"), InputVariable("file_type")]
    app = stack.dify.add_app(DifyApp("app-key-1", form=form))
    portal, _, dialog, parts = await one_bot(stack)
    stack.start_worker()

    await say(stack, portal, parts, "", files=(IncomingFile(5249, "invoice.pdf", "file"),))

    await replies(portal, dialog)
    (run,) = [r for r in app.requests if r.path.endswith("/chat-messages")]
    body = run.json or {}
    assert body["query"] == "File sent: invoice.pdf"
    assert body["inputs"] == {"file_id": "5249", "file_type": "file"}


async def test_dify_workflow_outputs_become_lines(stack: Stack) -> None:
    stack.dify.add_app(
        DifyApp("app-key-1", mode="workflow", outputs={"answer": "Yes", "order": "A-17"})
    )
    portal, _, dialog, parts = await one_bot(stack, provider_type="dify_workflow")
    stack.start_worker()

    await say(stack, portal, parts, "Status?")

    (reply,) = await replies(portal, dialog)
    assert reply.text == "answer: Yes\norder: A-17"


async def test_provider_url_on_a_private_address_gives_the_fallback(stack: Stack) -> None:
    """The URL passed its check when saved; the worker checks the address again before calling."""
    portal, _, dialog, parts = await one_bot(stack, fallback_text="Please hold on.")
    async with stack.runtime.engine.begin() as connection:
        await connection.execute(sa.update(providers).values(base_url="http://10.0.0.5/v1"))
    stack.start_worker()

    await say(stack, portal, parts, "Hello")

    (reply,) = await replies(portal, dialog)
    assert reply.text == "Please hold on."
    await settled(stack)
    (letter,) = await Queue(stack.runtime.redis, stack.runtime.vault, 4).dead_letters()
    assert "code=private_address" in letter.summary
    assert "10.0.0.5" not in letter.reason + letter.summary
