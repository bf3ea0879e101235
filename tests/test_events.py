"""Every Bitrix24 bot event shape, built by the fake exactly as it goes over the wire, parsed."""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.events import EVENT_NAMES, EventError, parse_fetched, parse_webhook
from gateway.model import ChatEvent, FileRef
from tenants.bitrix24.phpform import decode
from tests.fakes.bitrix24 import (
    Bot,
    Chat,
    FakeBitrix24,
    FakeClock,
    FormPairs,
    IncomingFile,
    Portal,
    User,
    V2Event,
    bot_delete,
    bot_delete_v2,
    command_add,
    command_add_v2,
    enqueue_v2,
    join_chat,
    join_chat_v2,
    message_add,
    message_add_v2,
    message_update_v2,
    webhook_v2,
)
from tests.fakes.bitrix24_methods_v2 import event_get
from tests.fakes.bitrix24_params import Caller

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
ENDPOINT = "http://bitrix24.invalid/acme.bitrix24.com/rest/"
SCOPE = "imbot,imopenlines,im,user,disk"
HANDLER = "https://bitbot.example.com/b24/events"
SESSION = "Y|LEAD|1205|N|N|321|1767225600|1|0|0"
CRM = "LEAD|1205|COMPANY|0|CONTACT|0|DEAL|0"
PHOTO = IncomingFile(5249, "photo.jpg", "image", 48_213, 800, 600)


def form(pairs: FormPairs) -> dict[str, Any]:
    """What the gateway sees: the urlencoded body decoded by the product's own decoder."""
    return decode(urlencode(pairs).encode())


def value(pairs: FormPairs, key: str) -> str:
    return dict(pairs)[key]


def tokens_in(pairs: FormPairs) -> list[str]:
    return [v for k, v in pairs if k.endswith(("_token]", "[client_id]"))]


@pytest.fixture
def portal() -> Portal:
    return FakeBitrix24(clock=FakeClock()).add_portal("acme.bitrix24.com", member_id=MEMBER)


@pytest.fixture
def v1_bot(portal: Portal) -> Bot:
    return portal.add_v1_bot("support", HANDLER, bot_type="O")  # user id 2


@pytest.fixture
def customer(portal: Portal, v1_bot: Bot) -> User:
    return portal.add_customer("Ann", "Lee")  # user id 3


@pytest.fixture
def line_chat(portal: Portal, customer: User) -> Chat:
    return portal.open_line_chat(customer)  # chat 101, "chat101"


@pytest.fixture
def v2_bot(portal: Portal, customer: User) -> Bot:
    return portal.add_v2_bot("helper", webhook_url=HANDLER, bot_type="openline")  # user id 4


def open_channel(**fields: Any) -> dict[str, Any]:
    """The chat part every event in the reference Open Channel chat shares."""
    chat = {
        "dialog_id": "chat101",
        "chat_id": "101",
        "author_id": "3",
        "first_name": "Ann",
        "last_name": "Lee",
        "chat_title": "Ann Lee - Open Channel",
        "chat_type": "L",
        "language": "en",
        "chat_entity_type": "LINES",
        "chat_entity_id": "telegrambot|1|1101|3",
        "chat_entity_data_1": SESSION,
        "chat_entity_data_2": CRM,
        "client_endpoint": ENDPOINT,
        "scope": SCOPE,
    }
    return {**chat, **fields}


# -- v1 ---------------------------------------------------------------------------------------


def test_v1_private_message(portal: Portal, v1_bot: Bot) -> None:
    pairs = message_add(portal, v1_bot, portal.private_chat(portal.admin), portal.admin, "Hi")

    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="message",
            origin="v1",
            event_name="ONIMBOTMESSAGEADD",
            member_id=MEMBER,
            bot_id=2,
            bot_code="support",
            dialog_id="1",
            chat_id="101",  # TO_CHAT_ID: private dialogs carry no CHAT_ID
            message_id="5001",
            text="Hi",
            author_id="1",
            first_name="Alex",
            last_name="Admin",
            chat_type="P",
            language="en",
            client_endpoint=ENDPOINT,
            scope=SCOPE,
            access_token=value(pairs, "auth[access_token]"),
            bot_access_token=value(pairs, "data[BOT][2][access_token]"),
        )
    ]


def test_v1_open_channel_message(
    portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat
) -> None:
    pairs = message_add(portal, v1_bot, line_chat, customer, "Where is my order?")

    assert "auth[access_token]" not in dict(pairs)  # customers write from outside Bitrix24
    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="message",
            origin="v1",
            event_name="ONIMBOTMESSAGEADD",
            member_id=MEMBER,
            bot_id=2,
            bot_code="support",
            message_id="5001",
            text="Where is my order?",
            bot_access_token=value(pairs, "data[BOT][2][access_token]"),
            **open_channel(),
        )
    ]


def test_v1_message_with_a_file_and_no_text(
    portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat
) -> None:
    pairs = message_add(portal, v1_bot, line_chat, customer, "", files=(PHOTO,))

    [event] = parse_webhook(form(pairs))

    assert (event.text, event.message_id) == ("", "5001")
    assert event.files == (FileRef(id="5249", name="photo.jpg", type="image", size=48_213),)


def test_v1_file_without_metadata_keeps_its_id(
    portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat
) -> None:
    pairs = message_add(portal, v1_bot, line_chat, customer, "", files=(PHOTO,))
    bare = [(k, v) for k, v in pairs if not k.startswith("data[PARAMS][FILES]")]

    [event] = parse_webhook(form(bare))

    assert event.files == (FileRef(id="5249", name="", type="file"),)


def test_v1_two_commands_in_one_message(portal: Portal, v1_bot: Bot, line_chat: Chat) -> None:
    other = portal.add_v1_bot("sales", HANDLER)  # user id 4
    help_command = portal.add_command(v1_bot, "help")
    price_command = portal.add_command(other, "price")
    first = command_add(portal, help_command, line_chat, portal.admin, command_params="refunds")
    second = command_add(portal, price_command, line_chat, portal.admin, message_id=5001)
    pairs = first + [(k, v) for k, v in second if k.startswith("data[COMMAND][")]

    common = open_channel(author_id="1", first_name="Alex", last_name="Admin")
    common.update(
        kind="command",
        origin="v1",
        event_name="ONIMCOMMANDADD",
        member_id=MEMBER,
        message_id="5001",
        text="/help refunds",
        command_context="TEXTAREA",
        access_token=value(pairs, "auth[access_token]"),
    )
    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            **common,
            bot_id=2,
            bot_code="support",
            command_id="1",
            command="help",
            command_params="refunds",
            bot_access_token=value(pairs, "data[COMMAND][1][access_token]"),
        ),
        ChatEvent(
            **common,
            bot_id=4,
            bot_code="sales",
            command_id="2",
            command="price",
            bot_access_token=value(pairs, "data[COMMAND][2][access_token]"),
        ),
    ]


def test_v1_keyboard_command_is_the_pressing_users(
    portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat
) -> None:
    command = portal.add_command(v1_bot, "operator")
    pressed = command_add(portal, command, line_chat, customer, context="KEYBOARD")
    # The pressed button sits on the bot's own message.
    bots_message = {"data[PARAMS][AUTHOR_ID]": "2", "data[PARAMS][FROM_USER_ID]": "2"}
    pairs = [(k, bots_message.get(k, v)) for k, v in pressed]

    [event] = parse_webhook(form(pairs))

    assert (event.author_id, event.command, event.command_context) == ("3", "operator", "KEYBOARD")


def test_v1_join(portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat) -> None:
    pairs = join_chat(portal, v1_bot, line_chat, customer)

    chat = open_channel(chat_title="", chat_entity_data_1="", chat_entity_data_2="")
    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="join",
            origin="v1",
            event_name="ONIMBOTJOINCHAT",
            member_id=MEMBER,
            bot_id=2,
            bot_code="support",
            bot_access_token=value(pairs, "data[BOT][2][access_token]"),
            **chat,
        )
    ]


def test_v1_bot_delete(portal: Portal, v1_bot: Bot) -> None:
    pairs = bot_delete(portal, v1_bot)

    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="bot_delete",
            origin="v1",
            event_name="ONIMBOTDELETE",
            member_id=MEMBER,
            bot_id=2,
            bot_code="support",
            client_endpoint=ENDPOINT,
            scope=SCOPE,
            access_token=value(pairs, "auth[access_token]"),
        )
    ]


def test_v1_event_for_each_bot_listed(
    portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat
) -> None:
    other = portal.add_v1_bot("sales", HANDLER)
    pairs = message_add(portal, v1_bot, line_chat, customer, "hello")
    second = message_add(portal, other, line_chat, customer, "hello", message_id=5001)
    pairs += [(k, v) for k, v in second if k.startswith(f"data[BOT][{other.id}]")]

    events = parse_webhook(form(pairs))

    assert [(e.bot_id, e.bot_code, e.message_id) for e in events] == [
        (2, "support", "5001"),
        (other.id, "sales", "5001"),
    ]
    assert events[1].bot_access_token == value(pairs, f"data[BOT][{other.id}][access_token]")


def test_v1_system_and_own_messages_start_no_turn(
    portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat
) -> None:
    system = [
        (k, "Y" if k == "data[PARAMS][SYSTEM]" else v)
        for k, v in message_add(portal, v1_bot, line_chat, customer, "Session closed")
    ]
    own = message_add(portal, v1_bot, line_chat, portal.users[v1_bot.id], "echo")

    assert parse_webhook(form(system)) == []
    assert parse_webhook(form(own)) == []


def test_v1_message_update_is_accepted_without_a_turn(portal: Portal) -> None:
    pairs = [("event", "ONIMBOTMESSAGEUPDATE"), ("auth[member_id]", MEMBER)]

    assert parse_webhook(form(pairs)) == []


# -- v2 webhook -----------------------------------------------------------------------------


def v2_open_channel(**fields: Any) -> dict[str, Any]:
    return open_channel(chat_type="lines", **fields)


def test_v2_webhook_message(portal: Portal, v2_bot: Bot, customer: User, line_chat: Chat) -> None:
    pairs = webhook_v2(portal, message_add_v2(portal, v2_bot, line_chat, customer, "Hi"))

    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="message",
            origin="v2_webhook",
            event_name="ONIMBOTMESSAGEADD",
            member_id=MEMBER,
            bot_id=4,
            bot_code="helper",
            message_id="5001",
            text="Hi",
            bot_access_token=value(pairs, "data[bot][auth][access_token]"),
            **v2_open_channel(),
        )
    ]


def test_v2_webhook_message_with_a_file(
    portal: Portal, v2_bot: Bot, customer: User, line_chat: Chat
) -> None:
    event = message_add_v2(portal, v2_bot, line_chat, customer, "", files=(PHOTO,))

    [parsed] = parse_webhook(form(webhook_v2(portal, event)))

    assert parsed.files == (FileRef(id="5249", name="photo.jpg", type="image", size=48_213),)


def test_v2_webhook_command(portal: Portal, v2_bot: Bot, line_chat: Chat) -> None:
    command = portal.add_command(v2_bot, "help")
    event = command_add_v2(portal, command, line_chat, portal.admin, command_params="refunds")
    pairs = webhook_v2(portal, event)

    assert value(pairs, "data[command][command]") == "/help"
    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="command",
            origin="v2_webhook",
            event_name="ONIMCOMMANDADD",
            member_id=MEMBER,
            bot_id=4,
            bot_code="helper",
            message_id="5001",
            text="/help refunds",
            command_id="1",
            command="help",
            command_params="refunds",
            command_context="TEXTAREA",
            # Top-level auth is the admin who typed it; data[bot][auth] is the bot.
            access_token=value(pairs, "auth[access_token]"),
            bot_access_token=value(pairs, "data[bot][auth][access_token]"),
            **v2_open_channel(author_id="1", first_name="Alex", last_name="Admin"),
        )
    ]


def test_v2_webhook_join(portal: Portal, v2_bot: Bot, customer: User, line_chat: Chat) -> None:
    pairs = webhook_v2(portal, join_chat_v2(portal, v2_bot, line_chat, customer))

    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="join",
            origin="v2_webhook",
            event_name="ONIMBOTJOINCHAT",
            member_id=MEMBER,
            bot_id=4,
            bot_code="helper",
            bot_access_token=value(pairs, "data[bot][auth][access_token]"),
            **v2_open_channel(),
        )
    ]


def test_v2_webhook_delete(portal: Portal, v2_bot: Bot) -> None:
    pairs = webhook_v2(portal, bot_delete_v2(v2_bot))

    assert parse_webhook(form(pairs)) == [
        ChatEvent(
            kind="bot_delete",
            origin="v2_webhook",
            event_name="ONIMBOTDELETE",
            member_id=MEMBER,
            bot_id=4,
            bot_code="helper",
            client_endpoint=ENDPOINT,
            scope=SCOPE,
            bot_access_token=value(pairs, "data[bot][auth][access_token]"),
        )
    ]


def test_v2_webhook_events_without_a_turn(
    portal: Portal, v2_bot: Bot, customer: User, line_chat: Chat
) -> None:
    edit = message_update_v2(portal, v2_bot, line_chat, customer, 5001, "edited")
    reaction = V2Event("ONIMBOTV2REACTIONCHANGE", v2_bot, {"messageId": 5001}, customer)
    own = message_add_v2(portal, v2_bot, line_chat, portal.users[v2_bot.id], "echo")

    for event in (edit, reaction, own):
        assert parse_webhook(form(webhook_v2(portal, event))) == []


# -- v2 fetch -------------------------------------------------------------------------------


def fetched(portal: Portal, bot: Bot, event: V2Event) -> dict[str, Any]:
    """The event as ``imbot.v2.Event.get`` answers it, through JSON as the client reads it."""
    enqueue_v2(portal, event)
    answer = event_get(portal, {"botId": bot.id}, Caller("token", portal.admin))
    item: dict[str, Any] = json.loads(json.dumps(answer))["events"][-1]
    return item


def test_v2_fetched_message(portal: Portal, customer: User, line_chat: Chat) -> None:
    bot = portal.add_v2_bot("poller", bot_type="openline")  # fetch mode, user id 4
    item = fetched(
        portal, bot, message_add_v2(portal, bot, line_chat, customer, "", files=(PHOTO,))
    )

    assert item["data"]["message"]["params"]["files"][0]["id"] == 5249  # JSON types
    assert parse_fetched(MEMBER, ENDPOINT, item) == ChatEvent(
        kind="message",
        origin="v2_fetch",
        event_name="ONIMBOTMESSAGEADD",
        member_id=MEMBER,
        bot_id=4,
        bot_code="poller",
        message_id="5001",
        files=(FileRef(id="5249", name="photo.jpg", type="image", size=48_213),),
        event_id=1,
        **v2_open_channel(scope=""),
    )


def test_v2_fetched_command_and_update(portal: Portal, customer: User, line_chat: Chat) -> None:
    bot = portal.add_v2_bot("poller", bot_type="openline")
    command = portal.add_command(bot, "help")
    command_item = fetched(portal, bot, command_add_v2(portal, command, line_chat, customer))
    edit_item = fetched(portal, bot, message_update_v2(portal, bot, line_chat, customer, 5001, "x"))

    event = parse_fetched(MEMBER, ENDPOINT, command_item)

    assert event is not None
    assert (event.command_id, event.command, event.text, event.event_id) == (
        "1",
        "help",
        "/help",
        1,
    )
    assert parse_fetched(MEMBER, ENDPOINT, edit_item) is None


# -- what the gateway accepts and rejects ------------------------------------------------------


def test_event_names() -> None:
    assert {"ONIMBOTMESSAGEADD", "ONIMCOMMANDADD", "ONIMBOTV2JOINCHAT"} <= EVENT_NAMES
    assert {"ONIMBOTV2CONTEXTGET", "ONIMBOTMESSAGEDELETE"} <= EVENT_NAMES
    assert "ONAPPINSTALL" not in EVENT_NAMES


def _drop(path: tuple[str, ...]) -> Any:
    def change(payload: dict[str, Any]) -> None:
        node = payload
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


def _set(path: tuple[str, ...], new: object) -> Any:
    def change(payload: dict[str, Any]) -> None:
        node = payload
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = new

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop(("event",)), "event is missing"),
        (_set(("event",), "ONTASKADD"), "event 'ONTASKADD' is not a bot event"),
        (_drop(("auth", "member_id")), "auth[member_id] is missing"),
        (_drop(("data",)), "data is missing"),
        (_set(("data", "PARAMS"), "text"), "data[PARAMS] must be a group of fields"),
        (
            _set(("data", "PARAMS", "MESSAGE_ID"), "12a"),
            "data[PARAMS][MESSAGE_ID] must be a numeric",
        ),
        (_drop(("data", "PARAMS", "DIALOG_ID")), "data[PARAMS][DIALOG_ID] is missing"),
        (_drop(("data", "BOT", "2", "BOT_ID")), "data[BOT][2][BOT_ID] is missing"),
        (_set(("data", "BOT"), {}), "data[BOT] lists nothing"),
    ],
)
def test_bad_v1_forms_name_the_field(
    portal: Portal, v1_bot: Bot, customer: User, line_chat: Chat, change: Any, message: str
) -> None:
    pairs = message_add(portal, v1_bot, line_chat, customer, "hi")
    payload = form(pairs)
    change(payload)

    with pytest.raises(EventError, match=re.escape(message)) as caught:
        parse_webhook(payload)

    assert not any(token in str(caught.value) for token in tokens_in(pairs))


def test_bad_v2_form_names_the_field(
    portal: Portal, v2_bot: Bot, customer: User, line_chat: Chat
) -> None:
    payload = form(webhook_v2(portal, message_add_v2(portal, v2_bot, line_chat, customer, "x")))
    del payload["data"]["message"]["id"]

    with pytest.raises(EventError, match=re.escape("data[message][id] is missing")):
        parse_webhook(payload)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop(("eventId",)), "eventId is missing"),
        (_set(("type",), "ONIMBOTV3MESSAGEADD"), "is not a Chatbots 2.0 bot event"),
        (_set(("data", "message", "id"), [5001]), "data[message][id] must be a single value"),
        (_set(("data", "bot", "id"), "four"), "data[bot][id] must be a numeric id"),
    ],
)
def test_bad_fetched_events_name_the_field(
    portal: Portal, customer: User, line_chat: Chat, change: Any, message: str
) -> None:
    bot = portal.add_v2_bot("poller")
    item = copy.deepcopy(
        fetched(portal, bot, message_add_v2(portal, bot, line_chat, customer, "x"))
    )
    change(item)

    with pytest.raises(EventError, match=re.escape(message)):
        parse_fetched(MEMBER, ENDPOINT, item)


def test_a_form_that_is_not_a_group_is_rejected() -> None:
    with pytest.raises(EventError, match="not a set of fields"):
        parse_webhook([("event", "ONIMBOTMESSAGEADD")])  # type: ignore[arg-type]
