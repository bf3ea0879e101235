"""Chatbots 2.0 methods (``imbot.v2.*``), shapes per shared/reference/bitrix24.md §3.2 and §4.8.

Where the reference is silent the shapes come from the official REST docs pages of the same methods
(``api-reference/chat-bots/chat-bots-v2/imbot.v2/**``), cut down to what a client reads.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.bitrix24_files import file_download_v2
from tests.fakes.bitrix24_model import Bot, Command, RestError, SentMessage, TypingNotice, User
from tests.fakes.bitrix24_params import (
    Caller,
    Method,
    Params,
    param_bool,
    param_dict,
    param_int,
    param_str,
    truncate,
)
from tests.fakes.bitrix24_portal import V2_BOTS_PER_APP, Portal

BOT_TYPES = ("bot", "network", "openline", "supervisor", "personal")
EVENT_MODES = ("fetch", "webhook")


def v2_error(error: str, description: str, status: int = 400) -> RestError:
    return RestError(status, error, description)


def bot_object(portal: Portal, bot: Bot) -> dict[str, Any]:
    """The extended Bot object an owner sees (entities.md#bot)."""
    return {
        "id": bot.id,
        "code": bot.code,
        "type": bot.type,
        "isHidden": bot.is_hidden,
        "isSupportOpenline": bot.openline,
        "isReactionsEnabled": bot.is_reactions_enabled,
        "backgroundId": bot.background_id,
        "language": bot.language,
        "moduleId": "rest",
        "appId": portal.client_id,
        "eventMode": bot.event_mode,
        "countMessage": sum(1 for m in portal.messages if m.bot_id == bot.id),
        "countCommand": sum(1 for c in portal.commands.values() if c.bot_id == bot.id),
        "countChat": 0,
        "countUser": 0,
    }


def user_object(user: User) -> dict[str, Any]:
    """The User object of Chatbots 2.0 (entities.md#user), trimmed to stable fields."""
    return {
        "id": user.id,
        "active": True,
        "name": user.name,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "workPosition": user.work_position,
        "color": "#df532d",
        "avatar": "",
        "gender": user.gender,
        "birthday": "",
        "extranet": user.is_extranet,
        "bot": user.is_bot,
        "connector": user.is_connector,
        "externalAuthId": _external_auth_id(user),
        "status": "online",
        "idle": False,
        "lastActivityDate": False,
        "absent": False,
        "departments": [] if user.is_connector else [1],
        "phones": False,
        "type": "bot" if user.is_bot else ("extranet" if user.is_extranet else "employee"),
    }


def _external_auth_id(user: User) -> str:
    if user.is_bot:
        return "bot"
    return "imconnector" if user.is_connector else "default"


def _bot_and_users(portal: Portal, bot: Bot) -> dict[str, Any]:
    return {"bot": bot_object(portal, bot), "users": [user_object(portal.users[bot.id])]}


def _bot(portal: Portal, params: Params) -> Bot:
    bot_id = param_int(params, "botId")
    if bot_id is None:
        raise v2_error("BOT_ID_REQUIRED", "Bot ID is required")
    bot = portal.bots.get(bot_id)
    if bot is None or bot.api != 2:
        raise v2_error("BOT_NOT_FOUND", "Bot not found")
    return bot


def _dialog_id(params: Params) -> str:
    dialog_id = param_str(params, "dialogId")
    if not dialog_id:
        # Not listed on the method pages; the generic v2 validation code for a missing argument.
        raise v2_error("DIALOG_ID_REQUIRED", "Dialog ID is required")
    return dialog_id


# -- bots -----------------------------------------------------------------------------------


def bot_register(portal: Portal, params: Params, caller: Caller) -> Any:
    fields = param_dict(params, "fields")
    code = param_str(fields, "code").strip()
    if not code:
        raise v2_error("BOT_CODE_REQUIRED", "Bot code is required")
    existing = portal.bot_by_code(code, api=2)
    if existing is not None:
        return _bot_and_users(portal, existing)  # idempotent per code, data not updated
    properties = param_dict(fields, "properties")
    name = param_str(properties, "name")
    if not name:
        raise v2_error("BOT_PROPERTIES_REQUIRED", "Bot properties are required")
    bot = Bot(portal.next_user_id(), code, 2, _bot_type(fields), name, language=portal.language)
    _apply_delivery(bot, fields, default_mode="fetch")
    if sum(1 for b in portal.bots.values() if b.api == 2) >= V2_BOTS_PER_APP:
        raise v2_error("BOT_LIMIT_EXCEEDED", "Bot limit exceeded")
    bot.properties = properties
    bot.openline = bot.type == "openline" or param_bool(fields, "isSupportOpenline")
    bot.is_hidden = param_bool(fields, "isHidden")
    bot.is_reactions_enabled = param_bool(fields, "isReactionsEnabled", True)
    bot.background_id = param_str(fields, "backgroundId") or None
    portal.add_bot(bot)
    portal.users[bot.id].last_name = param_str(properties, "lastName")
    return _bot_and_users(portal, bot)


def _bot_type(fields: Params) -> str:
    bot_type = param_str(fields, "type") or "bot"
    if bot_type not in BOT_TYPES:
        raise v2_error("BOT_INVALID_TYPE", "Invalid bot type")
    return bot_type


def _apply_delivery(bot: Bot, fields: Params, *, default_mode: str) -> None:
    mode = param_str(fields, "eventMode") or default_mode
    if mode not in EVENT_MODES:
        raise v2_error("BOT_INVALID_EVENT_MODE", "Invalid event mode")
    url = param_str(fields, "webhookUrl") or (bot.webhook_url if mode == "webhook" else "")
    if mode == "webhook" and not url:
        raise v2_error("BOT_WEBHOOK_URL_REQUIRED", "Webhook URL is required")
    if url and not url.startswith(("http://", "https://")):
        raise v2_error("BOT_INVALID_CALLBACK", "Invalid callback URL")
    bot.event_mode = mode
    bot.webhook_url = url


def bot_update(portal: Portal, params: Params, caller: Caller) -> Any:
    bot = _bot(portal, params)
    fields = param_dict(params, "fields")
    _apply_delivery(bot, fields, default_mode=bot.event_mode)
    properties = param_dict(fields, "properties")
    bot.properties.update(properties)
    bot.name = param_str(properties, "name") or bot.name
    portal.users[bot.id].first_name = bot.name
    bot.openline = param_bool(fields, "isSupportOpenline", bot.openline)
    bot.is_hidden = param_bool(fields, "isHidden", bot.is_hidden)
    return _bot_and_users(portal, bot)


def bot_unregister(portal: Portal, params: Params, caller: Caller) -> Any:
    portal.remove_bot(_bot(portal, params).id)
    return True


def bot_list(portal: Portal, params: Params, caller: Caller) -> Any:
    bots = [b for b in portal.bots.values() if b.api == 2]
    return {
        "bots": [bot_object(portal, b) for b in bots],
        "users": [user_object(portal.users[b.id]) for b in bots],
        "hasNextPage": False,
    }


def revision_get(portal: Portal, params: Params, caller: Caller) -> Any:
    return dict(portal.revision)


# -- commands -------------------------------------------------------------------------------


def command_object(command: Command) -> dict[str, Any]:
    return {
        "id": command.id,
        "botId": command.bot_id,
        "command": f"/{command.command}",
        "common": command.common,
        "hidden": command.hidden,
        "extranetSupport": command.extranet_support,
    }


def command_register(portal: Portal, params: Params, caller: Caller) -> Any:
    bot = _bot(portal, params)
    fields = param_dict(params, "fields")
    name = param_str(fields, "command").strip().lstrip("/")
    if not name:
        raise v2_error("COMMAND_REQUIRED", "Command is required")
    hidden = param_bool(fields, "hidden")
    titles = {k: str(v) for k, v in param_dict(fields, "title").items()}
    if not hidden and not titles:
        raise v2_error("COMMAND_TITLE_REQUIRED", "Command title is required")
    for command in portal.commands.values():
        if command.bot_id == bot.id and command.command == name:
            return {"command": command_object(command)}  # idempotent per bot and name
    command = Command(portal.next_command_id(), bot.id, name, 2, hidden=hidden, titles=titles)
    command.common = param_bool(fields, "common")
    command.extranet_support = param_bool(fields, "extranetSupport")
    command.params = {k: str(v) for k, v in param_dict(fields, "params").items()}
    portal.commands[command.id] = command
    return {"command": command_object(command)}


def _command(portal: Portal, params: Params, bot: Bot) -> Command:
    command = portal.commands.get(param_int(params, "commandId") or 0)
    if command is None or command.bot_id != bot.id:
        # Code not listed on the method pages; v2 names its not-found errors like this.
        raise v2_error("COMMAND_NOT_FOUND", "Command not found")
    return command


def command_unregister(portal: Portal, params: Params, caller: Caller) -> Any:
    # Result shape not in the reference; ``true`` like Bot.unregister.
    bot = _bot(portal, params)
    del portal.commands[_command(portal, params, bot).id]
    return True


def command_answer(portal: Portal, params: Params, caller: Caller) -> Any:
    bot = _bot(portal, params)
    command = _command(portal, params, bot)
    message_id = param_int(params, "messageId")
    dialog_id = _dialog_id(params)
    fields = param_dict(params, "fields")
    text = param_str(fields, "message").strip()
    if message_id is None or (not text and not fields.get("attach")):
        raise v2_error("COMMAND_ANSWER_FAILED", "Command answer failed")
    message = _store(portal, "imbot.v2.Command.answer", bot, dialog_id, text, fields)
    message.command_id = command.id
    message.reply_to = message_id
    return {"result": True}


# -- chat -----------------------------------------------------------------------------------


def _store(
    portal: Portal, method: str, bot: Bot, dialog_id: str, text: str, fields: Params
) -> SentMessage:
    extra = {k: v for k, v in fields.items() if k != "message"}
    message = SentMessage(
        portal.next_message_id(), method, bot.id, dialog_id, truncate(text), extra
    )
    portal.messages.append(message)
    return message


def message_send(portal: Portal, params: Params, caller: Caller) -> Any:
    bot = _bot(portal, params)
    dialog_id = _dialog_id(params)
    fields = param_dict(params, "fields")
    text = param_str(fields, "message").strip()
    if not text and not fields.get("attach"):
        raise v2_error("EMPTY_MESSAGE", "Message is empty")
    message = _store(portal, "imbot.v2.Chat.Message.send", bot, dialog_id, text, fields)
    message.reply_to = param_int(fields, "replyId")
    return {"id": message.id, "uuidMap": {}}


def input_action_notify(portal: Portal, params: Params, caller: Caller) -> Any:
    bot = _bot(portal, params)
    notice = TypingNotice(
        "imbot.v2.Chat.InputAction.notify",
        bot.id,
        _dialog_id(params),
        param_str(params, "statusMessageCode"),
        param_int(params, "duration"),
    )
    portal.typing.append(notice)
    return True


# -- fetch mode -----------------------------------------------------------------------------


def event_get(portal: Portal, params: Params, caller: Caller) -> Any:
    """Acknowledge everything below ``offset``, return the next ``limit`` events (§4.8)."""
    bot = _bot(portal, params)
    offset = param_int(params, "offset")
    limit = min(max(param_int(params, "limit") or 100, 1), 1000)
    if offset is not None:
        portal.v2_events = [
            e for e in portal.v2_events if e.bot_id != bot.id or e.event_id >= offset
        ]
        portal.v2_cursor[bot.id] = max(offset, portal.v2_cursor.get(bot.id, 0))
    pending = [e for e in portal.v2_events if e.bot_id == bot.id]
    batch = pending[:limit]
    events = [
        {"eventId": e.event_id, "type": e.type, "date": e.date, "data": e.data} for e in batch
    ]
    next_offset = batch[-1].event_id + 1 if batch else portal.v2_cursor.get(bot.id, 0)
    return {"events": events, "nextOffset": next_offset, "hasMore": len(pending) > limit}


METHODS_V2: dict[str, Method] = {
    "imbot.v2.Revision.get": Method("imbot", revision_get),
    "imbot.v2.Bot.register": Method("imbot", bot_register),
    "imbot.v2.Bot.unregister": Method("imbot", bot_unregister),
    "imbot.v2.Bot.update": Method("imbot", bot_update),
    "imbot.v2.Bot.list": Method("imbot", bot_list),
    "imbot.v2.Command.register": Method("imbot", command_register),
    "imbot.v2.Command.unregister": Method("imbot", command_unregister),
    "imbot.v2.Command.answer": Method("imbot", command_answer),
    "imbot.v2.Chat.Message.send": Method("imbot", message_send),
    "imbot.v2.Chat.InputAction.notify": Method("imbot", input_action_notify),
    "imbot.v2.Event.get": Method("imbot", event_get),
    "imbot.v2.File.download": Method("imbot", file_download_v2),
}
