"""The flow's inputs and query: the seed's variable contract for real parsed events."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from gateway.events import parse_webhook
from gateway.model import ChatEvent, FileRef
from gateway.variables import INPUT_NAMES, build_inputs, build_query
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
    command_add,
    join_chat_v2,
    message_add,
    webhook_v2,
)

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
ENDPOINT = "http://bitrix24.invalid/acme.bitrix24.com/rest/"
INSTALLER_TOKEN = "installer-access-token"


def parsed(pairs: FormPairs) -> ChatEvent:
    [event] = parse_webhook(decode(urlencode(pairs).encode()))
    return event


@pytest.fixture
def portal() -> Portal:
    return FakeBitrix24(clock=FakeClock()).add_portal("acme.bitrix24.com", member_id=MEMBER)


@pytest.fixture
def bot(portal: Portal) -> Bot:
    return portal.add_v1_bot("support", "https://bitbot.example.com/b24/events", bot_type="O")


@pytest.fixture
def customer(portal: Portal, bot: Bot) -> User:
    return portal.add_customer("Ann", "Lee")


@pytest.fixture
def chat(portal: Portal, customer: User) -> Chat:
    return portal.open_line_chat(customer)


def test_inputs_for_an_open_channel_message(
    portal: Portal, bot: Bot, customer: User, chat: Chat
) -> None:
    event = parsed(message_add(portal, bot, chat, customer, "Where is my order?"))

    inputs = build_inputs(event, pass_tokens=False, installer_access_token=INSTALLER_TOKEN)

    assert inputs == {
        "BOT_ID": "2",
        "DIALOG_ID": "chat101",
        "CHAT_ID": "101",
        "MESSAGE_ID": "5001",
        "MESSAGE": "Where is my order?",
        "AUTHOR_ID": "3",
        "FIRST_NAME": "Ann",
        "LAST_NAME": "Lee",
        "COMMAND_ID": "",
        "COMMAND": "",
        "COMMAND_PARAMS": "",
        "CHAT_TITLE": "Ann Lee - Open Channel",
        "LANGUAGE": "en",
        "CHAT_ENTITY_DATA_1": "Y|LEAD|1205|N|N|321|1767225600|1|0|0",
        "CHAT_ENTITY_DATA_2": "LEAD|1205|COMPANY|0|CONTACT|0|DEAL|0",
        "CHAT_ENTITY_ID": "telegrambot|1|1101|3",
        "file_id": "",
        "file_type": "",
        "client_endpoint": ENDPOINT,
        "scope": "imbot,imopenlines,im,user,disk",
    }
    assert tuple(inputs) == INPUT_NAMES
    assert build_query(event) == "Where is my order?"


def test_token_variables_only_when_the_bot_allows_them(
    portal: Portal, bot: Bot, customer: User, chat: Chat
) -> None:
    pairs = message_add(portal, bot, chat, customer, "hi", author_tokens=True)
    event = parsed(pairs)

    inputs = build_inputs(event, pass_tokens=True, installer_access_token=INSTALLER_TOKEN)

    assert tuple(inputs) == (*INPUT_NAMES, "user_access_token", "bot_access_token", "access_token")
    assert inputs["user_access_token"] == INSTALLER_TOKEN
    assert inputs["bot_access_token"] == dict(pairs)["data[BOT][2][access_token]"]
    assert inputs["access_token"] == dict(pairs)["auth[access_token]"]


def test_merged_messages_are_one_turn(portal: Portal, bot: Bot, customer: User, chat: Chat) -> None:
    batch = [parsed(message_add(portal, bot, chat, customer, t)) for t in ("Hi", "I need", "help")]

    inputs = build_inputs(batch[-1], batch=batch, pass_tokens=False)

    assert inputs["MESSAGE_ID"] == "5003"
    assert inputs["MESSAGE"] == "Hi\nI need\nhelp"
    assert json.loads(inputs["MESSAGE_BATCH"]) == [
        {"message": "Hi", "message_id": "5001", "author_id": "3"},
        {"message": "I need", "message_id": "5002", "author_id": "3"},
        {"message": "help", "message_id": "5003", "author_id": "3"},
    ]
    assert inputs["MESSAGE_BATCH_SIZE"] == "3"
    assert build_query(batch[-1], batch) == "Hi\nI need\nhelp"


def test_a_batch_of_one_has_no_batch_variables(
    portal: Portal, bot: Bot, customer: User, chat: Chat
) -> None:
    event = parsed(message_add(portal, bot, chat, customer, "Hi"))

    inputs = build_inputs(event, batch=[event], pass_tokens=False)

    assert "MESSAGE_BATCH" not in inputs
    assert "MESSAGE_BATCH_SIZE" not in inputs


def test_the_turns_event_closes_its_batch(
    portal: Portal, bot: Bot, customer: User, chat: Chat
) -> None:
    first, second = (parsed(message_add(portal, bot, chat, customer, t)) for t in ("a", "b"))

    with pytest.raises(ValueError, match="last of its batch"):
        build_inputs(first, batch=[first, second], pass_tokens=False)


def test_a_file_without_text(portal: Portal, bot: Bot, customer: User, chat: Chat) -> None:
    photo = IncomingFile(5249, "photo.jpg", "image", 48_213, 800, 600)
    event = parsed(message_add(portal, bot, chat, customer, "", files=(photo,)))

    inputs = build_inputs(event, pass_tokens=False)

    assert (inputs["MESSAGE"], inputs["file_id"], inputs["file_type"]) == ("", "5249", "image")
    assert build_query(event) == "File sent: photo.jpg"


def test_a_file_with_text_keeps_the_text(
    portal: Portal, bot: Bot, customer: User, chat: Chat
) -> None:
    event = parsed(
        message_add(portal, bot, chat, customer, "See this", files=(IncomingFile(7, "a.pdf"),))
    )

    assert build_query(event) == "See this"
    assert build_inputs(event, pass_tokens=False)["file_id"] == "7"


def test_a_file_without_a_name_is_named_by_its_id() -> None:
    event = ChatEvent(
        "message", "v1", "ONIMBOTMESSAGEADD", MEMBER, 2, files=(FileRef("9", "", "file"),)
    )

    assert build_query(event) == "File sent: 9"


def test_join_query_is_the_v1_event_name(portal: Portal, customer: User, chat: Chat) -> None:
    v2_bot = portal.add_v2_bot("helper", webhook_url="https://bitbot.example.com/b24/events")
    event = parsed(webhook_v2(portal, join_chat_v2(portal, v2_bot, chat, customer)))

    inputs = build_inputs(event, pass_tokens=False)

    assert build_query(event) == "ONIMBOTJOINCHAT"
    assert (inputs["MESSAGE"], inputs["MESSAGE_ID"], inputs["DIALOG_ID"]) == ("", "", "chat101")


def test_command_query_is_the_command_as_typed(portal: Portal, bot: Bot, chat: Chat) -> None:
    command = portal.add_command(bot, "help")
    event = parsed(command_add(portal, command, chat, portal.admin, command_params="refunds"))

    inputs = build_inputs(event, pass_tokens=False)

    assert build_query(event) == "/help refunds"
    assert (inputs["COMMAND_ID"], inputs["COMMAND"], inputs["COMMAND_PARAMS"]) == (
        "1",
        "help",
        "refunds",
    )


def test_keyboard_command_query_ignores_the_message_text() -> None:
    # A button press carries the bot's message with the keyboard, not what the user typed.
    event = ChatEvent("command", "v1", "ONIMCOMMANDADD", MEMBER, 2, command="price", text="Pick")

    assert build_query(event) == "/price"
