"""Chatbots 2.0 events (``ONIMBOTV2*``) for webhook delivery and for the fetch queue.

One builder makes the event; ``webhook_v2`` flattens it for a webhook bot (``data[bot]`` =
``{id, code, auth}``, scalars as strings, ``null`` as ``""``), ``enqueue_v2`` puts it in the
``imbot.v2.Event.get`` queue with the full bot object and JSON types. Reference:
shared/reference/bitrix24.md §4.6, §4.8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.fakes.bitrix24_events import portal_auth, token_auth
from tests.fakes.bitrix24_methods_v2 import bot_object, user_object
from tests.fakes.bitrix24_model import Bot, Chat, Command, IncomingFile, User
from tests.fakes.bitrix24_php import FormPairs, flatten
from tests.fakes.bitrix24_portal import Portal

# Chat ``type`` for private and Open Channel chats is not in the DOCS type list; these are guesses.
_CHAT_TYPES = {"P": "private", "C": "chat", "O": "open", "L": "lines"}


@dataclass(frozen=True)
class V2Event:
    """A Chatbots 2.0 event before it is delivered; ``data`` holds everything except ``bot``."""

    type: str
    bot: Bot
    data: dict[str, Any] = field(default_factory=dict)
    user: User | None = None


def chat_object(chat: Chat) -> dict[str, Any]:
    return {
        "id": chat.id,
        "dialogId": chat.dialog_id,
        "type": _CHAT_TYPES.get(chat.message_type, "chat"),
        "messageType": chat.message_type,
        "name": chat.title,
        "entityType": chat.entity_type,
        "entityId": chat.entity_id,
        "entityData1": chat.entity_data_1,
        "entityData2": chat.entity_data_2,
        "entityData3": chat.entity_data_3,
        "owner": chat.owner_id,
        "avatar": "",
        "color": "#ab7761",
    }


def file_object(portal: Portal, file: IncomingFile, chat: Chat, author: User) -> dict[str, Any]:
    return {
        "id": file.id,
        "chatId": chat.id,
        "date": portal.iso_now(),
        "type": file.type,
        "name": file.name,
        "extension": file.extension,
        "size": file.size,
        "image": {"height": file.height, "width": file.width} if file.type == "image" else False,
        "authorId": author.id,
        "authorName": author.name,
        "isTranscribable": False,
        "isVideoNote": False,
        "isVoiceNote": False,
    }


def message_object(
    portal: Portal,
    message_id: int,
    chat: Chat,
    author: User,
    text: str,
    files: tuple[IncomingFile, ...] = (),
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if files:
        # DOCS only say files travel in ``message.params``; this key layout is unconfirmed.
        params["FILE_ID"] = [f.id for f in files]
        params["files"] = [file_object(portal, f, chat, author) for f in files]
    return {
        "id": message_id,
        "chatId": chat.id,
        "authorId": author.id,
        "date": portal.iso_now(),
        "text": text,
        "isSystem": False,
        "uuid": "",
        "forward": None,
        "params": params,
        "viewedByOthers": False,
    }


def message_add_v2(
    portal: Portal,
    bot: Bot,
    chat: Chat,
    author: User,
    text: str,
    *,
    files: tuple[IncomingFile, ...] = (),
    message_id: int | None = None,
) -> V2Event:
    message_id = portal.record_inbound(chat, author, text, message_id)
    data = {
        "message": message_object(portal, message_id, chat, author, text, files),
        "chat": chat_object(chat),
        "user": user_object(author),
        "language": portal.language,
    }
    return V2Event("ONIMBOTV2MESSAGEADD", bot, data, author)


def message_update_v2(
    portal: Portal, bot: Bot, chat: Chat, author: User, message_id: int, text: str
) -> V2Event:
    data = {
        "message": message_object(portal, message_id, chat, author, text),
        "chat": chat_object(chat),
        "user": user_object(author),
        "language": portal.language,
    }
    return V2Event("ONIMBOTV2MESSAGEUPDATE", bot, data, author)


def message_delete_v2(
    portal: Portal, bot: Bot, chat: Chat, author: User, message_id: int
) -> V2Event:
    data = {
        "messageId": message_id,
        "chat": chat_object(chat),
        "user": user_object(author),
        "language": portal.language,
    }
    return V2Event("ONIMBOTV2MESSAGEDELETE", bot, data, author)


def command_add_v2(
    portal: Portal,
    command: Command,
    chat: Chat,
    author: User,
    *,
    command_params: str = "",
    context: str = "textarea",
    message_id: int | None = None,
) -> V2Event:
    text = f"/{command.command} {command_params}".strip()
    message_id = portal.record_inbound(chat, author, text, message_id)
    data = {
        "command": {
            "id": command.id,
            "command": f"/{command.command}",
            "params": command_params,
            "context": context,
        },
        "message": message_object(portal, message_id, chat, author, text),
        "chat": chat_object(chat),
        "user": user_object(author),
        "language": portal.language,
    }
    return V2Event("ONIMBOTV2COMMANDADD", portal.bots[command.bot_id], data, author)


def join_chat_v2(portal: Portal, bot: Bot, chat: Chat, user: User) -> V2Event:
    data = {
        "dialogId": chat.dialog_id,
        "chat": chat_object(chat),
        "user": user_object(user),
        "language": portal.language,
    }
    return V2Event("ONIMBOTV2JOINCHAT", bot, data, user)


def bot_delete_v2(bot: Bot) -> V2Event:
    return V2Event("ONIMBOTV2DELETE", bot)


def webhook_v2(portal: Portal, event: V2Event) -> FormPairs:
    """The form POST a webhook-mode bot receives: one bot per POST, two ``auth`` blocks."""
    bot_auth = token_auth(portal, portal.issue_tokens(event.bot.id), refresh=True)
    data = {"bot": {"id": event.bot.id, "code": event.bot.code, "auth": bot_auth}, **event.data}
    body = {
        "event": event.type,
        "event_handler_id": portal.handler_id(event.type),
        "data": data,
        "ts": int(portal.now()),
        "auth": _top_level_auth(portal, event.user),
    }
    return flatten(body, nulls="empty")


def _top_level_auth(portal: Portal, user: User | None) -> dict[str, Any]:
    if user is None or user.is_connector:
        return portal_auth(portal)
    return token_auth(portal, portal.issue_tokens(user.id), refresh=False)


def enqueue_v2(portal: Portal, event: V2Event) -> int:
    """Queue the event for ``imbot.v2.Event.get`` (fetch mode, full bot object, no tokens)."""
    data = {"bot": bot_object(portal, event.bot), **event.data}
    return portal.queue_v2_event(event.bot.id, event.type, data)
