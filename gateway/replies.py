"""The Bitrix24 calls that deliver one turn's reply, for API version 1 (``imbot.*``) or 2.

A turn raised by a slash command is answered as a command answer, everything else as a bot
message (seed §4, DESIGN §3 step 8). A long reply goes out as several calls of the same kind,
every part answering the same command; the keyboard rides on the last part only, under the text
that lists the choices.
"""

from __future__ import annotations

from typing import Any

from gateway.model import ChatEvent
from gateway.providers.base import Button, ProviderReply
from gateway.render import API_VERSIONS, choice_text, keyboard, markdown_to_bbcode, split_message
from tenants.bitrix24.client import Call


def reply_calls(event: ChatEvent, reply: ProviderReply, api_version: int) -> list[Call]:
    """Render the provider's Markdown and choices; no calls for an empty reply without choices."""
    text = markdown_to_bbcode(reply.text)
    if reply.buttons:
        text = "\n\n".join(part for part in (text, choice_text(reply.buttons)) if part)
    return _deliver(event, text, reply.buttons, api_version)


def fallback_calls(event: ChatEvent, text: str, api_version: int) -> list[Call]:
    """The bot's configured fallback text, sent as written: the portal admin authored it."""
    return _deliver(event, text, (), api_version)


def handoff_call(event: ChatEvent) -> Call:
    """Hand an Open Channel chat to the line's queue (reference §5.1), the same for v1 and v2.

    ``CHAT_ID`` is the numeric Open-Line chat id (v1 ``data[PARAMS][CHAT_ID]``, v2
    ``data.message.chatId``), never the ``chat123`` dialog id.
    """
    if not event.chat_id.isdecimal():
        raise ValueError("an Open-Line handoff needs the numeric chat id")
    return Call("imopenlines.bot.session.operator", {"CHAT_ID": int(event.chat_id)})


def typing_call(event: ChatEvent, api_version: int) -> Call:
    _check_version(api_version)
    if api_version == 1:
        return Call("imbot.chat.sendTyping", {"BOT_ID": event.bot_id, "DIALOG_ID": event.dialog_id})
    params = {"botId": event.bot_id, "dialogId": event.dialog_id}
    return Call("imbot.v2.Chat.InputAction.notify", params)


def _deliver(
    event: ChatEvent, text: str, buttons: tuple[Button, ...], api_version: int
) -> list[Call]:
    _check_version(api_version)
    parts = split_message(text)
    if not parts:
        return []
    board = keyboard(event.bot_id, buttons, api_version) if buttons else None
    last = len(parts) - 1
    return [
        _call(event, part, board if index == last else None, api_version)
        for index, part in enumerate(parts)
    ]


def _call(event: ChatEvent, text: str, board: dict[str, Any] | None, api_version: int) -> Call:
    return _v1_call(event, text, board) if api_version == 1 else _v2_call(event, text, board)


def _v1_call(event: ChatEvent, text: str, board: dict[str, Any] | None) -> Call:
    method = "imbot.command.answer" if event.command_id else "imbot.message.add"
    params: dict[str, Any] = (
        {"COMMAND_ID": _id(event.command_id), "MESSAGE_ID": _id(event.message_id)}
        if event.command_id
        else {"BOT_ID": event.bot_id, "DIALOG_ID": event.dialog_id}
    )
    params["MESSAGE"] = text
    if board is not None:
        params["KEYBOARD"] = board
    return Call(method, params)


def _v2_call(event: ChatEvent, text: str, board: dict[str, Any] | None) -> Call:
    fields: dict[str, Any] = {"message": text}
    if board is not None:
        fields["keyboard"] = board
    target = {"botId": event.bot_id, "dialogId": event.dialog_id}
    if not event.command_id:
        return Call("imbot.v2.Chat.Message.send", {**target, "fields": fields})
    command = {"commandId": _id(event.command_id), "messageId": _id(event.message_id)}
    return Call(
        "imbot.v2.Command.answer", {"botId": event.bot_id, **command, **target, "fields": fields}
    )


def _id(value: str) -> int | str:
    # Parsed events carry numeric ids; anything else goes as is and Bitrix24 judges it.
    return int(value) if value.isdecimal() else value


def _check_version(api_version: int) -> None:
    if api_version not in API_VERSIONS:
        raise ValueError(f"unknown Bitrix24 bot API version {api_version}")
