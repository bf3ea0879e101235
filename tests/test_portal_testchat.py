"""The test chat: a message from the bot page runs through a real worker to the provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from gateway import build_worker
from gateway.providers import ProviderHttp
from gateway.turns import RetryPolicy
from tenants.runtime import Runtime
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.fakes.dify import DifyApp, FakeDify, HttpError, InputVariable
from tests.fakes.server import serve
from tests.fakes.typebot import Choice, ChoiceInput, FakeTypebot, Step, TextBubble, Typebot
from tests.portal_kit import PortalClient, add_provider, admin_app, install, signed_in


@dataclass
class World:
    client: PortalClient
    portal: Portal
    dify: DifyApp
    bot: dict[str, Any]
    typebot_connector: int


def echo(run: Any) -> str:
    return f"You said: {run.query}"


@asynccontextmanager
async def aclosing_providers(providers: ProviderHttp) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await providers.aclose()


@pytest.fixture
async def world(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[World]:
    dify, typebot = FakeDify(), FakeTypebot()
    form = [InputVariable(name, max_length=256) for name in ("FIRST_NAME", "BOT_ID", "LANGUAGE")]
    app = dify.add_app(DifyApp(api_key="app-1", answer=echo, form=form))
    question = Step([TextBubble("Tea or coffee?")], ChoiceInput([Choice("Tea"), Choice("Coffee")]))
    typebot.add_typebot(Typebot("drinks", [question, Step([TextBubble("Enjoy!")])]))
    providers = ProviderHttp()
    worker = build_worker(
        b24_runtime, http, providers=providers, retry=RetryPolicy(1, 0.01, 1.0), read_block_ms=20
    )
    stop = asyncio.Event()
    async with (
        aclosing_providers(providers),
        serve(dify.asgi) as dify_url,
        serve(typebot.asgi) as typebot_url,
        admin_app(b24_runtime, http, clock) as url,
    ):
        running = asyncio.create_task(worker.run(stop))
        try:
            portal = bitrix24.add_portal("acme.bitrix24.com")
            await install(url, portal)
            await add_provider(b24_runtime, "Dify", "dify_chatflow", f"{dify_url}/v1")
            await add_provider(b24_runtime, "Typebot", "typebot", typebot_url)
            client = await signed_in(url, portal, http)
            dify_connector = await client.post(
                "/b24/api/connectors", {"name": "Dify", "provider_id": 1, "api_key": "app-1"}
            )
            start_url = f"{typebot_url}/api/v1/typebots/drinks/startChat"
            typebot_connector = await client.post(
                "/b24/api/connectors",
                {"name": "Typebot", "provider_id": 2, "typebot_start_url": start_url},
            )
            bot = await client.post(
                "/b24/api/bots",
                {"name": "Helper", "type": "openline", "event_mode": "webhook",
                 "connector_id": dify_connector.json()["id"], "batch_delay_ms": 0,
                 "session_ttl_s": 86400, "fallback_text": "We will be right back."},
            )  # fmt: skip
            yield World(client, portal, app, bot.json(), typebot_connector.json()["id"])
        finally:
            stop.set()
            await running


async def say(world: World, text: str) -> list[dict[str, Any]]:
    url = f"/b24/api/bots/{world.bot['id']}/test-chat"
    sent = await world.client.post(url, {"text": text})
    assert sent.status_code == 202, sent.text
    replies: list[dict[str, Any]] = []
    for _ in range(5):
        got = await world.client.get(f"{url}/{sent.json()['chat_id']}", wait="5")
        replies = got.json()["replies"]
        if replies:
            break
    return replies


async def test_a_message_is_answered_by_the_flow(world: World) -> None:
    replies = await say(world, "What are your hours?")
    assert replies == [{"text": "You said: What are your hours?", "buttons": [], "fallback": False}]
    (conversation,) = world.dify.conversations.values()
    admin = world.portal.admin
    assert conversation.user == f"{world.portal.member_id}:test{admin.id}"
    assert conversation.inputs["FIRST_NAME"] == admin.first_name
    assert conversation.inputs["BOT_ID"] == str(world.bot["b24_bot_id"])
    assert conversation.inputs["LANGUAGE"] == "en"
    assert world.portal.messages == []  # nothing went to a real chat


async def test_the_conversation_continues_until_started_over(world: World) -> None:
    await say(world, "one")
    await say(world, "two")
    assert len(world.dify.conversations) == 1
    restarted = await world.client.post(f"/b24/api/bots/{world.bot['id']}/test-chat/restart")
    assert restarted.status_code == 204
    await say(world, "three")
    assert len(world.dify.conversations) == 2


async def test_a_failing_flow_shows_the_fallback_text(world: World) -> None:
    world.dify.fault = HttpError(500)
    replies = await say(world, "hello?")
    assert replies == [{"text": "We will be right back.", "buttons": [], "fallback": True}]


async def test_with_handoff_on_the_test_chat_notes_what_would_happen(world: World) -> None:
    bot_url = f"/b24/api/bots/{world.bot['id']}"
    assert (await world.client.patch(bot_url, {"handoff_on_failure": True})).status_code == 200
    world.dify.fault = HttpError(500)
    sent = await world.client.post(f"{bot_url}/test-chat", {"text": "hello?"})
    replies: list[dict[str, Any]] = []
    for _ in range(5):
        got = await world.client.get(f"{bot_url}/test-chat/{sent.json()['chat_id']}", wait="5")
        replies += got.json()["replies"]
        if len(replies) >= 2:
            break
    assert replies == [
        {"text": "We will be right back.", "buttons": [], "fallback": True},
        {"text": "(would hand the chat to an operator)", "buttons": [], "fallback": True},
    ]
    # The test chat is no Bitrix24 chat: nothing is handed to anyone.
    assert world.portal.calls_of("imopenlines.bot.session.operator") == []
    assert world.portal.messages == []


async def test_typebot_choices_come_back_as_buttons(world: World) -> None:
    bot_url = f"/b24/api/bots/{world.bot['id']}"
    switched = await world.client.patch(bot_url, {"connector_id": world.typebot_connector})
    assert switched.status_code == 200
    (reply,) = await say(world, "hi")
    assert "Tea or coffee?" in reply["text"]
    assert [button["text"] for button in reply["buttons"]] == ["Tea", "Coffee"]
    (answer,) = await say(world, reply["buttons"][1]["value"])
    assert answer["text"] == "Enjoy!"


async def test_empty_messages_and_unknown_chats_are_refused(world: World) -> None:
    url = f"/b24/api/bots/{world.bot['id']}/test-chat"
    empty = await world.client.post(url, {"text": "  "})
    assert empty.json()["error"]["fields"] == {"text": "Required."}
    unknown = await world.client.get(f"{url}/not-a-chat-id")
    assert unknown.status_code == 404
