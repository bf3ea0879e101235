"""The Bitrix24 calls that carry a reply, for both bot API versions, messages and commands."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from gateway.model import ChatEvent
from gateway.providers.base import Button, ProviderReply
from gateway.replies import fallback_calls, reply_calls, typing_call
from tenants.bitrix24.client import Call
from tests.fakes.bitrix24 import FakeBitrix24, FakeClock, Portal
from tests.fakes.bitrix24_methods import METHODS
from tests.fakes.bitrix24_methods_v2 import METHODS_V2
from tests.fakes.bitrix24_params import Caller

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
MESSAGE = ChatEvent(
    "message",
    "v1",
    "ONIMBOTMESSAGEADD",
    MEMBER,
    55,
    dialog_id="chat7",
    chat_id="7",
    message_id="456",
    text="hi",
)
COMMAND = replace(
    MESSAGE, kind="command", event_name="ONIMCOMMANDADD", command_id="12", command="help"
)
CHOICES = (Button("Yes", "yes"), Button("No", "no"))
KEYBOARD = {
    "BOT_ID": 55,
    "BUTTONS": [
        {"TEXT": "Yes", "ACTION": "SEND", "ACTION_VALUE": "yes"},
        {"TEXT": "No", "ACTION": "SEND", "ACTION_VALUE": "no"},
    ],
}


def test_v1_message() -> None:
    reply = ProviderReply("**Done**")

    assert reply_calls(MESSAGE, reply, 1) == [
        Call("imbot.message.add", {"BOT_ID": 55, "DIALOG_ID": "chat7", "MESSAGE": "[b]Done[/b]"})
    ]


def test_v1_command() -> None:
    reply = ProviderReply("Help *text*")

    assert reply_calls(COMMAND, reply, 1) == [
        Call(
            "imbot.command.answer",
            {"COMMAND_ID": 12, "MESSAGE_ID": 456, "MESSAGE": "Help [i]text[/i]"},
        )
    ]


def test_v2_message() -> None:
    reply = ProviderReply("**Done**")

    assert reply_calls(MESSAGE, reply, 2) == [
        Call(
            "imbot.v2.Chat.Message.send",
            {"botId": 55, "dialogId": "chat7", "fields": {"message": "[b]Done[/b]"}},
        )
    ]


def test_v2_command() -> None:
    reply = ProviderReply("Help *text*")

    assert reply_calls(COMMAND, reply, 2) == [
        Call(
            "imbot.v2.Command.answer",
            {
                "botId": 55,
                "commandId": 12,
                "messageId": 456,
                "dialogId": "chat7",
                "fields": {"message": "Help [i]text[/i]"},
            },
        )
    ]


def test_choices_as_numbered_text_and_keyboard() -> None:
    reply = ProviderReply("Did it help?", buttons=CHOICES)
    text = "Did it help?\n\n1. Yes\n2. No"

    assert reply_calls(MESSAGE, reply, 1) == [
        Call(
            "imbot.message.add",
            {"BOT_ID": 55, "DIALOG_ID": "chat7", "MESSAGE": text, "KEYBOARD": KEYBOARD},
        )
    ]
    assert reply_calls(COMMAND, reply, 2) == [
        Call(
            "imbot.v2.Command.answer",
            {
                "botId": 55,
                "commandId": 12,
                "messageId": 456,
                "dialogId": "chat7",
                "fields": {"message": text, "keyboard": KEYBOARD},
            },
        )
    ]


def test_choices_without_text() -> None:
    [call] = reply_calls(MESSAGE, ProviderReply("", buttons=CHOICES), 2)

    assert call.params["fields"] == {"message": "1. Yes\n2. No", "keyboard": KEYBOARD}


@pytest.mark.parametrize("api_version", [1, 2])
def test_an_empty_reply_sends_nothing(api_version: int) -> None:
    assert reply_calls(MESSAGE, ProviderReply("  \n "), api_version) == []
    assert fallback_calls(MESSAGE, "", api_version) == []


def test_a_long_reply_goes_in_parts_with_the_keyboard_last() -> None:
    paragraphs = [f"{n}" + " word" * 1_800 for n in range(3)]  # 9,001 characters each
    reply = ProviderReply("\n\n".join(paragraphs), buttons=CHOICES)

    v1 = reply_calls(COMMAND, reply, 1)
    v2 = reply_calls(MESSAGE, reply, 2)

    first, last = "\n\n".join(paragraphs[:2]), paragraphs[2] + "\n\n1. Yes\n2. No"
    assert v1 == [
        Call("imbot.command.answer", {"COMMAND_ID": 12, "MESSAGE_ID": 456, "MESSAGE": first}),
        Call(
            "imbot.command.answer",
            {"COMMAND_ID": 12, "MESSAGE_ID": 456, "MESSAGE": last, "KEYBOARD": KEYBOARD},
        ),
    ]
    assert [c.params["fields"] for c in v2] == [
        {"message": first},
        {"message": last, "keyboard": KEYBOARD},
    ]


def test_fallback_text_is_sent_as_written() -> None:
    text = "Sorry, [b]please try again[/b] or write *0*."

    assert fallback_calls(MESSAGE, text, 1) == [
        Call("imbot.message.add", {"BOT_ID": 55, "DIALOG_ID": "chat7", "MESSAGE": text})
    ]
    assert fallback_calls(COMMAND, text, 2) == [
        Call(
            "imbot.v2.Command.answer",
            {
                "botId": 55,
                "commandId": 12,
                "messageId": 456,
                "dialogId": "chat7",
                "fields": {"message": text},
            },
        )
    ]


def test_typing() -> None:
    assert typing_call(MESSAGE, 1) == Call(
        "imbot.chat.sendTyping", {"BOT_ID": 55, "DIALOG_ID": "chat7"}
    )
    assert typing_call(COMMAND, 2) == Call(
        "imbot.v2.Chat.InputAction.notify", {"botId": 55, "dialogId": "chat7"}
    )


def test_unknown_api_version() -> None:
    with pytest.raises(ValueError, match="version 3"):
        reply_calls(MESSAGE, ProviderReply("hi"), 3)
    with pytest.raises(ValueError, match="version 0"):
        typing_call(MESSAGE, 0)


# -- the calls as the fake Bitrix24 takes them ---------------------------------------------


@pytest.fixture
def portal() -> Portal:
    return FakeBitrix24(clock=FakeClock()).add_portal("acme.bitrix24.com", member_id=MEMBER)


def play(portal: Portal, calls: list[Call]) -> None:
    """Run each call through the fake's method, with the params as a JSON body carries them."""
    for call in calls:
        method = {**METHODS, **METHODS_V2}[call.method]
        params: dict[str, Any] = json.loads(json.dumps(call.params))
        method.handler(portal, params, Caller("token", portal.admin))


@pytest.mark.parametrize("api_version", [1, 2])
def test_the_fake_takes_every_reply_shape(portal: Portal, api_version: int) -> None:
    bot = (
        portal.add_v1_bot("support", "https://bitbot.example.com/b24/events")
        if api_version == 1
        else portal.add_v2_bot("support", webhook_url="https://bitbot.example.com/b24/events")
    )
    command = portal.add_command(bot, "help")
    chat = portal.group_chat("Team")
    inbound = portal.record_inbound(chat, portal.admin, "/help", None)
    message = replace(MESSAGE, bot_id=bot.id, dialog_id=chat.dialog_id, message_id=str(inbound))
    answer = replace(message, kind="command", command_id=str(command.id), command="help")
    reply = ProviderReply("**Pick**", buttons=CHOICES)

    play(portal, [typing_call(message, api_version), *reply_calls(message, reply, api_version)])
    play(portal, reply_calls(answer, reply, api_version))

    assert [(m.text, m.dialog_id, m.command_id) for m in portal.messages] == [
        ("[b]Pick[/b]\n\n1. Yes\n2. No", chat.dialog_id, None),
        ("[b]Pick[/b]\n\n1. Yes\n2. No", chat.dialog_id, command.id),
    ]
    keyboards = [m.fields.get("KEYBOARD") or m.fields.get("keyboard") for m in portal.messages]
    assert keyboards == [{**KEYBOARD, "BOT_ID": bot.id}] * 2
    assert [(t.bot_id, t.dialog_id) for t in portal.typing] == [(bot.id, chat.dialog_id)]
