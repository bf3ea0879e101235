"""End to end: a Bitrix24 event in, the flow's answer back in the chat, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from billing import RateLimits, UnlimitedPlan
from tests.conftest import Backend, SteppedClock
from tests.fakes.bitrix24 import (
    Portal,
    command_add,
    command_add_v2,
    enqueue_v2,
    join_chat,
    message_add,
    message_add_v2,
    send_event,
    webhook_v2,
)
from tests.fakes.clock import FakeClock
from tests.fakes.dify import DifyApp, HttpError, InputVariable
from tests.fakes.provider_wire import RecordedRequest
from tests.fakes.typebot import Choice, ChoiceInput, Step, TextBubble, Typebot
from tests.pipeline_stack import Stack, pipeline_stack, replies, until


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


async def test_open_channel_message_is_answered_by_dify(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="**Hi** there"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    tenant = await stack.install(portal)
    await stack.add_bot(tenant, bot)
    customer = portal.add_customer("Ann", "Lee")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    response = await send_event(stack.events_url, message_add(portal, bot, chat, customer, "Hello"))

    assert response.status_code == 200
    (reply,) = await replies(portal, chat.dialog_id)
    assert (reply.method, reply.bot_id, reply.text) == (
        "imbot.message.add",
        bot.id,
        "[b]Hi[/b] there",
    )
    (request,) = runs(app)
    body = request.json or {}
    assert body["query"] == "Hello"
    assert body["user"] == f"{portal.member_id}:{chat.dialog_id}"
    assert body["response_mode"] == "streaming"


async def test_follow_up_continues_the_conversation(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "one"))
    await replies(portal, chat.dialog_id, 1)
    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "two"))
    await replies(portal, chat.dialog_id, 2)

    first, second = (r.json or {} for r in runs(app))
    assert "conversation_id" not in first or not first["conversation_id"]
    assert second["conversation_id"] == next(iter(app.conversations))
    stored = await stack.runtime.redis.get(f"bitbot:{portal.member_id}:{bot.id}:{chat.dialog_id}")
    assert stored is not None


async def test_input_variables_reach_the_flow(stack: Stack) -> None:
    names = ["MESSAGE", "CHAT_ENTITY_ID", "CHAT_ENTITY_DATA_1", "FIRST_NAME", "BOT_ID", "DIALOG_ID"]
    form = [InputVariable(name, max_length=256) for name in names]
    app = stack.dify.add_app(DifyApp("app-key-1", form=form))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann", "Lee")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "Hello"))
    await replies(portal, chat.dialog_id)

    inputs = (runs(app)[-1].json or {})["inputs"]
    assert inputs["MESSAGE"] == "Hello"
    assert inputs["CHAT_ENTITY_ID"] == chat.entity_id
    assert inputs["CHAT_ENTITY_DATA_1"] == chat.entity_data_1
    assert inputs["FIRST_NAME"] == "Ann"
    assert inputs["BOT_ID"] == str(bot.id)
    assert inputs["DIALOG_ID"] == chat.dialog_id


async def test_chatbots_2_message_is_answered_in_v2(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1", answer="v2 answer"))
    portal = stack.cloud.add_portal("new.bitrix24.com", v2=True)
    bot = portal.add_v2_bot("support", webhook_url=stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    event = message_add_v2(portal, bot, chat, customer, "Hello")
    response = await send_event(stack.events_url, webhook_v2(portal, event))

    assert response.status_code == 200
    (reply,) = await replies(portal, chat.dialog_id)
    assert (reply.method, reply.text) == ("imbot.v2.Chat.Message.send", "v2 answer")


async def test_command_is_answered_as_a_command(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="Here is help"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    command = portal.add_command(bot, "help", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    user = portal.add_user("Max")
    chat = portal.private_chat(user)
    stack.start_worker()

    await send_event(
        stack.events_url, command_add(portal, command, chat, user, command_params="billing")
    )

    (reply,) = await replies(portal, chat.dialog_id)
    assert (reply.method, reply.command_id, reply.text) == (
        "imbot.command.answer",
        command.id,
        "Here is help",
    )
    body = runs(app)[-1].json or {}
    assert body["query"] == "/help billing"


async def test_chatbots_2_command_in_an_open_channel_is_answered_in_v2(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="Opening hours: 9-18"))
    portal = stack.cloud.add_portal("new.bitrix24.com", v2=True)
    bot = portal.add_v2_bot("support", webhook_url=stack.events_url)
    command = portal.add_command(bot, "hours", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    event = command_add_v2(portal, command, chat, customer, command_params="today")
    assert (await send_event(stack.events_url, webhook_v2(portal, event))).status_code == 200

    (reply,) = await replies(portal, chat.dialog_id)
    assert (reply.method, reply.command_id, reply.text) == (
        "imbot.v2.Command.answer",
        command.id,
        "Opening hours: 9-18",
    )
    assert (runs(app)[-1].json or {})["query"] == "/hours today"


async def test_provider_429_is_retried_and_the_turn_answered(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="Back now"))
    app.fail_next(HttpError.too_many_requests(), times=2)
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot, fallback_text="Please hold on.")
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "Hello"))

    (reply,) = await replies(portal, chat.dialog_id)
    assert reply.text == "Back now"
    assert len(runs(app)) == 3


async def test_join_passes_the_event_name_so_the_flow_can_greet(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="Welcome!"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    user = portal.add_user("Max")
    chat = portal.group_chat("Sales")
    stack.start_worker()

    await send_event(stack.events_url, join_chat(portal, bot, chat, user))

    (reply,) = await replies(portal, chat.dialog_id)
    assert reply.text == "Welcome!"
    assert (runs(app)[-1].json or {})["query"] == "ONIMBOTJOINCHAT"


async def test_a_redelivered_event_is_answered_once(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()
    pairs = message_add(portal, bot, chat, customer, "Hello")

    await send_event(stack.events_url, pairs)
    await replies(portal, chat.dialog_id)
    await send_event(stack.events_url, pairs)
    await send_event(stack.events_url, pairs)
    await until(lambda: not _pending(stack), what="queue drained")

    assert len(portal.messages_to(chat.dialog_id)) == 1
    assert len(runs(app)) == 1


def runs(app: DifyApp) -> list[RecordedRequest]:
    return [r for r in app.requests if r.path.endswith(("/chat-messages", "/workflows/run"))]


def _pending(stack: Stack) -> bool:
    return any(worker.in_flight for worker, _, _ in stack.workers)


async def test_quick_messages_are_merged_into_one_turn(stack: Stack) -> None:
    app = stack.dify.add_app(
        DifyApp(
            "app-key-1",
            form=[
                InputVariable("MESSAGE_BATCH", max_length=2000),
                InputVariable("MESSAGE_BATCH_SIZE"),
            ],
        )
    )
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot, batch_delay_ms=400)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    for text in ("Hi", "I need", "a refund"):
        await send_event(stack.events_url, message_add(portal, bot, chat, customer, text))

    await replies(portal, chat.dialog_id)
    (request,) = runs(app)
    inputs = (request.json or {})["inputs"]
    assert inputs["MESSAGE_BATCH_SIZE"] == "3"
    assert [m["message"] for m in json.loads(inputs["MESSAGE_BATCH"])] == [
        "Hi",
        "I need",
        "a refund",
    ]
    assert (request.json or {})["query"] == "Hi\nI need\na refund"


async def test_provider_failure_sends_the_fallback_and_keeps_a_dead_letter(stack: Stack) -> None:
    app = stack.dify.add_app(DifyApp("app-key-1"))
    app.fault = HttpError(500)
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(
        await stack.install(portal), bot, fallback_text="An operator will reply soon."
    )
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "secret words"))

    (reply,) = await replies(portal, chat.dialog_id)
    assert reply.text == "An operator will reply soon."
    assert len(runs(app)) == 3  # retried while the provider was unavailable
    from tenants.queue import Queue

    queue = Queue(stack.runtime.redis, stack.runtime.vault, 4)
    await until(lambda: not _pending(stack), what="turn finished")
    letters = await queue.dead_letters()
    assert len(letters) == 1
    assert "provider" in letters[0].reason
    assert "secret words" not in letters[0].summary + letters[0].reason


async def test_forged_token_enqueues_nothing(stack: Stack) -> None:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    forged = [
        (key, "forged" if key == "auth[application_token]" else value)
        for key, value in message_add(portal, bot, chat, customer, "Hello")
    ]
    response = await send_event(stack.events_url, forged)
    assert response.status_code == 401
    from tenants.queue import Queue

    assert sum((await Queue(stack.runtime.redis, stack.runtime.vault, 4).lag()).values()) == 0


async def test_typebot_choices_become_buttons_and_a_numbered_list(stack: Stack) -> None:
    stack.typebot.add_typebot(
        Typebot(
            "support-bot",
            steps=[
                Step(
                    bubbles=[TextBubble("How can I help, {{FIRST_NAME}}?")],
                    input=ChoiceInput([Choice("Billing"), Choice("Delivery")], variable="choice"),
                ),
                Step(bubbles=[TextBubble("You chose {{choice}}")]),
            ],
        )
    )
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    start_url = f"{stack.typebot_url}/api/v1/typebots/support-bot/startChat"
    await stack.add_bot(
        await stack.install(portal),
        bot,
        provider_type="typebot",
        api_key=None,
        typebot_start_url=start_url,
    )
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "Hi"))
    (first,) = await replies(portal, chat.dialog_id)
    assert "How can I help, Ann?" in first.text
    assert "1. Billing" in first.text
    assert "2. Delivery" in first.text
    keyboard = first.fields.get("KEYBOARD") or {}
    assert [b.get("TEXT") for b in keyboard.get("BUTTONS", [])] == ["Billing", "Delivery"]

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "2"))
    _, second = await replies(portal, chat.dialog_id, 2)
    assert "Delivery" in second.text


async def test_fetch_mode_bot_is_polled_and_answered(stack: Stack) -> None:
    stack.dify.add_app(DifyApp("app-key-1", answer="fetched and answered"))
    portal = stack.cloud.add_portal("new.bitrix24.com", v2=True)
    bot = portal.add_v2_bot("support")  # no webhook URL: fetch mode
    await stack.add_bot(await stack.install(portal), bot, event_mode="fetch")
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    enqueue_v2(portal, message_add_v2(portal, bot, chat, customer, "Hello from fetch"))
    stack.start_worker()

    (reply,) = await replies(portal, chat.dialog_id)

    assert (reply.method, reply.text) == ("imbot.v2.Chat.Message.send", "fetched and answered")
    polls = portal.calls_of("imbot.v2.Event.get")
    assert polls[0].params.get("botId") == bot.id
    await until(lambda: len(portal.calls_of("imbot.v2.Event.get")) >= 2, what="second poll")
    # The offset committed after enqueueing acknowledges the event: it is not fetched again.
    assert portal.v2_events == []


async def test_metrics_count_the_turn(stack: Stack) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    accepted = sample("bitbot_events_accepted_total")
    provider_ok = sample("bitbot_provider_seconds_count", provider="dify_chatflow", outcome="ok")
    sent = sample("bitbot_bitrix24_calls_total", method="imbot.message.add", error="")
    stack.dify.add_app(DifyApp("app-key-1"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.start_worker()

    await send_event(stack.events_url, message_add(portal, bot, chat, customer, "Hello"))
    await replies(portal, chat.dialog_id)
    # The portal records the reply before its answer reaches BitBot, which counts the call then.
    await until(lambda: not any(w.in_flight for w, _, _ in stack.workers), what="turn finished")

    assert sample("bitbot_events_accepted_total") == accepted + 1
    assert (
        sample("bitbot_provider_seconds_count", provider="dify_chatflow", outcome="ok")
        == provider_ok + 1
    )
    assert sample("bitbot_bitrix24_calls_total", method="imbot.message.add", error="") == sent + 1
    scraped = (await stack.http.get(f"{stack.gateway_url}/metrics")).text
    assert "bitbot_events_accepted_total" in scraped


async def test_same_entry_id_in_two_shards_is_two_events(stack: Stack) -> None:
    # Redis numbers entries per stream: shards appended in the same millisecond share ids.
    from urllib.parse import urlencode

    from tenants.queue import NewEntry, Queue, shard_of, stream_name

    stack.dify.add_app(DifyApp("app-key-1"))
    queue = Queue(stack.runtime.redis, stack.runtime.vault, 4)
    chats: list[tuple[Portal, str]] = []
    number = 0
    while len(chats) < 2:
        portal = stack.cloud.add_portal(f"p{number}.bitrix24.com", v2=False)
        number += 1
        if chats and shard_of(portal.member_id, 4) == shard_of(chats[0][0].member_id, 4):
            continue
        bot = portal.add_v1_bot("support", stack.events_url)
        tenant = await stack.install(portal)
        await stack.add_bot(tenant, bot)
        customer = portal.add_customer("Ann")
        chat = portal.open_line_chat(customer)
        body = urlencode(message_add(portal, bot, chat, customer, "Hello"))
        entry = NewEntry("b24", tenant.id, portal.member_id, body, 1.0)
        stream = stream_name(shard_of(portal.member_id, 4))
        await queue.ensure_groups()
        await stack.runtime.redis.xadd(stream, queue.fields(entry), id="1000-0")  # type: ignore[arg-type]
        chats.append((portal, chat.dialog_id))
    stack.start_worker()

    for portal, dialog_id in chats:
        await replies(portal, dialog_id)


class TightLimits(UnlimitedPlan):
    async def limits(self, tenant_id: int) -> RateLimits:
        return RateLimits(events_per_minute_per_tenant=1200, events_per_minute_per_dialog=2)


async def test_over_the_dialog_rate_events_wait_and_are_all_answered(stack: Stack) -> None:
    from prometheus_client import REGISTRY

    def waits() -> float:
        return (
            REGISTRY.get_sample_value("bitbot_limiter_wait_seconds_count", {"scope": "events"})
            or 0.0
        )

    stack.dify.add_app(DifyApp("app-key-1"))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    stack.billing = TightLimits()
    clock = SteppedClock(FakeClock(time.time()))
    before = waits()
    stack.start_worker(clock=clock)

    for text in ("one", "two", "three"):
        await send_event(stack.events_url, message_add(portal, bot, chat, customer, text))
        await replies(portal, chat.dialog_id, count=["one", "two", "three"].index(text) + 1)

    assert len(portal.messages_to(chat.dialog_id)) == 3
    assert waits() == before + 1  # the third message waited for the dialog's budget
    assert clock.slept >= 29


async def test_a_batch_of_cold_tenants_is_loaded_at_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries are accepted in stream order; the tenants they need are looked up together, so
    one portal's cold lookup does not hold up the next portal's message."""
    from tenants.store import TenantStore

    stack.dify.add_app(DifyApp("app-key-1", answer="ok"))
    talks = []
    for n in range(3):
        portal = stack.cloud.add_portal(f"p{n}.bitrix24.com", v2=False)
        bot = portal.add_v1_bot("support", stack.events_url)
        await stack.add_bot(await stack.install(portal), bot)
        customer = portal.add_customer("Ann")
        talks.append((portal, bot, portal.open_line_chat(customer), customer))
    for portal, bot, chat, customer in talks:  # queued before any worker reads
        await send_event(stack.events_url, message_add(portal, bot, chat, customer, "Hi"))
    running, most = 0, 0
    load = TenantStore.get

    async def slow_load(self: TenantStore, tenant_id: int) -> object:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.2)
            return await load(self, tenant_id)
        finally:
            running -= 1

    monkeypatch.setattr(TenantStore, "get", slow_load)
    stack.start_worker()

    for portal, _, chat, _ in talks:
        await replies(portal, chat.dialog_id)
    assert most == 3
