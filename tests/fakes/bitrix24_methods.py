"""Portal REST methods: app, user, event and notify methods, and the classic ``imbot.*`` (v1).

Parameter names, results and error codes follow shared/reference/bitrix24.md §3.1 and §8.1. Where
the reference is silent the fake keeps the smallest plausible shape and says so next to it.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.bitrix24_files import disk_file_get
from tests.fakes.bitrix24_model import (
    Bot,
    Command,
    EventBinding,
    Notification,
    RestError,
    SentMessage,
    TypingNotice,
)
from tests.fakes.bitrix24_params import (
    Caller,
    Method,
    Params,
    bad_request,
    param_bool,
    param_dict,
    param_int,
    param_str,
    truncate,
    upper_keys,
)
from tests.fakes.bitrix24_php import php_array
from tests.fakes.bitrix24_portal import V1_BOTS_PER_APP, V1_HANDLER_KEYS, Portal

# -- app, user, event, notify -------------------------------------------------------------


def app_info(portal: Portal, params: Params, caller: Caller) -> Any:
    """Portal ``app.info`` (§8.1)."""
    family = portal.license.split("_", 1)[1]
    return {
        "ID": 1,
        "CODE": portal.app_code,
        "VERSION": portal.app_version,
        "STATUS": portal.status,
        "INSTALLED": portal.install_finished,
        "PAYMENT_EXPIRED": "Y" if portal.payment_expired else "N",
        "DAYS": portal.days,
        "LANGUAGE_ID": portal.language,
        "LICENSE": portal.license,
        "LICENSE_TYPE": family,
        "LICENSE_FAMILY": family.rstrip("0123456789"),
    }


def user_admin(portal: Portal, params: Params, caller: Caller) -> Any:
    return caller.user.is_admin


def user_current(portal: Portal, params: Params, caller: Caller) -> Any:
    # Reference silent on the shape; a minimal subset of the classic user fields (IDs as strings).
    user = caller.user
    return {
        "ID": str(user.id),
        "ACTIVE": True,
        "NAME": user.first_name,
        "LAST_NAME": user.last_name,
        "EMAIL": user.email,
        "ADMIN": user.is_admin,
        "PERSONAL_GENDER": user.gender,
        "WORK_POSITION": user.work_position,
    }


def event_bind(portal: Portal, params: Params, caller: Caller) -> Any:
    params = {key.lower(): value for key, value in params.items()}
    if not caller.user.is_admin:
        raise RestError(403, "ACCESS_DENIED", "Access denied! Admin permissions required")
    event = param_str(params, "event").upper()
    event_type = param_str(params, "event_type") or "online"
    handler = param_str(params, "handler")
    if not event or (event_type != "offline" and not handler):
        raise bad_request("ERROR_CORE", "Event and handler are required")
    binding = EventBinding(event, handler, param_int(params, "auth_type") or 0, event_type)
    if any(b.event == binding.event and b.handler == binding.handler for b in portal.bindings):
        # Not in DOCS; the message seen by community integrations on a duplicate bind.
        raise bad_request("ERROR_CORE", "Handler already binded")
    portal.bindings.append(binding)
    return True


def event_get(portal: Portal, params: Params, caller: Caller) -> Any:
    return [
        {
            "event": b.event,
            "handler": b.handler,
            "auth_type": b.auth_type,
            "offline": int(b.event_type == "offline"),
        }
        for b in portal.bindings
    ]


def event_unbind(portal: Portal, params: Params, caller: Caller) -> Any:
    params = {key.lower(): value for key, value in params.items()}
    event = param_str(params, "event").upper()
    handler = param_str(params, "handler")
    keep = [b for b in portal.bindings if not (b.event == event and handler in ("", b.handler))]
    removed = len(portal.bindings) - len(keep)
    portal.bindings[:] = keep
    return {"count": removed}


def notify_system_add(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    user_id = param_int(params, "USER_ID")
    message = param_str(params, "MESSAGE").strip()
    if user_id is None or user_id not in portal.users:
        raise bad_request("USER_ID_EMPTY", "Recipient user id is empty or unknown")
    if not message:
        raise bad_request("MESSAGE_EMPTY", "Message text is empty")
    portal.notifications.append(Notification(user_id, message))
    return len(portal.notifications)


# -- imbot v1 (§3.1) ------------------------------------------------------------------------

_V1_REQUIRED_HANDLERS = V1_HANDLER_KEYS[:3]


def imbot_register(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    code = param_str(params, "CODE").strip()
    if not code:
        raise bad_request("CODE_ERROR", "Bot code isn't specified")
    existing = portal.bot_by_code(code, api=1)
    if existing is not None:
        return existing.id
    handlers = _v1_handlers(params)
    properties = param_dict(params, "PROPERTIES")
    name = param_str(properties, "NAME") or param_str(properties, "LAST_NAME")
    if not name:
        raise bad_request("NAME_ERROR", "Bot name isn't specified")
    if sum(1 for b in portal.bots.values() if b.api == 1) >= V1_BOTS_PER_APP:
        raise bad_request(
            "MAX_COUNT_ERROR", "Has reached the maximum number of bots for application"
        )
    bot_type = param_str(params, "TYPE") or "B"
    openline = bot_type == "O" or param_bool(params, "OPENLINE")
    bot = Bot(portal.next_user_id(), code, 1, bot_type, name, openline, handlers=handlers)
    bot.properties = properties
    return portal.add_bot(bot).id


def _v1_handlers(params: Params) -> dict[str, str]:
    common = param_str(params, "EVENT_HANDLER")
    handlers = {key: param_str(params, key) or common for key in V1_HANDLER_KEYS}
    for key in _V1_REQUIRED_HANDLERS:
        if not handlers[key].startswith(("http://", "https://")):
            raise bad_request(f"{key}_ERROR", "Wrong handler URL")
    return handlers


def imbot_unregister(portal: Portal, params: Params, caller: Caller) -> Any:
    bot = _v1_bot(portal, upper_keys(params), required=True)
    portal.remove_bot(bot.id)
    return True


def imbot_update(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    bot = _v1_bot(portal, params, required=True)
    fields = upper_keys(param_dict(params, "FIELDS"))
    if not fields:
        raise bad_request("WRONG_REQUEST", "Update fields can't be empty")
    bot.code = param_str(fields, "CODE") or bot.code
    for key in V1_HANDLER_KEYS:
        bot.handlers[key] = (
            param_str(fields, key) or param_str(fields, "EVENT_HANDLER") or bot.handlers[key]
        )
    properties = param_dict(fields, "PROPERTIES")
    bot.properties.update(properties)
    bot.name = param_str(properties, "NAME") or bot.name
    return True


def imbot_bot_list(portal: Portal, params: Params, caller: Caller) -> Any:
    return php_array(
        {
            str(bot.id): {
                "ID": bot.id,
                "NAME": bot.name,
                "CODE": bot.code,
                "OPENLINE": "Y" if bot.openline else "N",
            }
            for bot in portal.bots.values()
        }
    )


def _v1_bot(portal: Portal, params: Params, *, required: bool) -> Bot:
    bot_id = param_int(params, "BOT_ID")
    if bot_id is None and not required:
        # BOT_ID is optional for messages: the app's first bot is used.
        first = next((b for b in portal.bots.values() if b.api == 1), None)
        if first is not None:
            return first
    bot = portal.bots.get(bot_id or 0)
    if bot is None:
        raise bad_request("BOT_ID_ERROR", "Bot not found")
    return bot


def imbot_message_add(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    bot = _v1_bot(portal, params, required=False)
    dialog_id = _v1_dialog(params)
    text = param_str(params, "MESSAGE").strip()
    if not text and not params.get("ATTACH"):
        raise bad_request("MESSAGE_EMPTY", "Message can't be empty")
    return _store_message(portal, "imbot.message.add", bot.id, dialog_id, text, params).id


def _v1_dialog(params: Params) -> str:
    from_user, to_user = param_str(params, "FROM_USER_ID"), param_str(params, "TO_USER_ID")
    if from_user and to_user:
        return to_user
    dialog_id = param_str(params, "DIALOG_ID")
    if not dialog_id:
        raise bad_request("DIALOG_ID_EMPTY", "Dialog ID can't be empty")
    return dialog_id


def _store_message(
    portal: Portal, method: str, bot_id: int, dialog_id: str, text: str, extra: Params
) -> SentMessage:
    fields = {k: v for k, v in extra.items() if k not in ("MESSAGE", "auth", "AUTH")}
    message = SentMessage(
        portal.next_message_id(), method, bot_id, dialog_id, truncate(text), fields
    )
    portal.messages.append(message)
    return message


def imbot_chat_send_typing(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    bot = _v1_bot(portal, params, required=False)
    dialog_id = param_str(params, "DIALOG_ID")
    if not dialog_id:
        raise bad_request("DIALOG_ID_EMPTY", "Dialog ID can't be empty")
    portal.typing.append(TypingNotice("imbot.chat.sendTyping", bot.id, dialog_id))
    return True


def imbot_command_register(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    bot = _v1_bot(portal, params, required=True)
    name = param_str(params, "COMMAND").strip().lstrip("/")
    if not name or " " in name:
        raise bad_request("COMMAND_ERROR", "Command isn't specified")
    handler = param_str(params, "EVENT_COMMAND_ADD")
    if not handler.startswith(("http://", "https://")):
        raise bad_request("EVENT_COMMAND_ADD_ERROR", "Wrong handler URL")
    titles = _v1_titles(params)
    # CORE returns the existing command for the same bot and name instead of a duplicate.
    for command in portal.commands.values():
        if command.bot_id == bot.id and command.command == name:
            return command.id
    command = Command(portal.next_command_id(), bot.id, name, 1, handler)
    command.common = param_bool(params, "COMMON")
    command.hidden = param_bool(params, "HIDDEN")
    command.extranet_support = param_bool(params, "EXTRANET_SUPPORT")
    command.titles = titles
    portal.commands[command.id] = command
    return command.id


def _v1_titles(params: Params) -> dict[str, str]:
    entries = param_dict(params, "LANG").values()
    titles = {
        param_str(e, "LANGUAGE_ID"): param_str(e, "TITLE") for e in entries if isinstance(e, dict)
    }
    if not titles or not all(language and title for language, title in titles.items()):
        raise bad_request("LANG_ERROR", "Lang set can't be empty")
    return titles


def _v1_command(portal: Portal, params: Params) -> Command:
    command_id = param_int(params, "COMMAND_ID")
    name = param_str(params, "COMMAND").lstrip("/")
    for command in portal.commands.values():
        if command.id == command_id or (command_id is None and name and command.command == name):
            return command
    raise bad_request("COMMAND_ID_ERROR", "Command not found")


def imbot_command_unregister(portal: Portal, params: Params, caller: Caller) -> Any:
    del portal.commands[_v1_command(portal, upper_keys(params)).id]
    return True


def imbot_command_update(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    command = _v1_command(portal, params)
    fields = upper_keys(param_dict(params, "FIELDS"))
    if not fields:
        raise bad_request("WRONG_REQUEST", "Update fields can't be empty")
    command.command = param_str(fields, "COMMAND").lstrip("/") or command.command
    command.handler = param_str(fields, "EVENT_COMMAND_ADD") or command.handler
    command.hidden = param_bool(fields, "HIDDEN", command.hidden)
    command.extranet_support = param_bool(fields, "EXTRANET_SUPPORT", command.extranet_support)
    if "LANG" in fields:
        command.titles = _v1_titles(fields)
    return True


def imbot_command_answer(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    command = _v1_command(portal, params)
    message_id = param_int(params, "MESSAGE_ID")
    if message_id is None:
        raise bad_request("MESSAGE_ID_EMPTY", "Message ID can't be empty")
    text = param_str(params, "MESSAGE").strip()
    if not text and not params.get("ATTACH"):
        raise bad_request("MESSAGE_EMPTY", "Message can't be empty")
    inbound = portal.inbound.get(message_id)
    dialog_id = inbound.chat.dialog_id if inbound else ""
    message = _store_message(
        portal, "imbot.command.answer", command.bot_id, dialog_id, text, params
    )
    message.command_id = command.id
    message.reply_to = message_id
    return message.id


METHODS: dict[str, Method] = {
    "app.info": Method("basic", app_info),
    "user.admin": Method("basic", user_admin),
    "user.current": Method("user", user_current),
    "event.bind": Method("basic", event_bind),
    "event.get": Method("basic", event_get),
    "event.unbind": Method("basic", event_unbind),
    "im.notify.system.add": Method("im", notify_system_add),
    "imbot.register": Method("imbot", imbot_register),
    "imbot.unregister": Method("imbot", imbot_unregister),
    "imbot.update": Method("imbot", imbot_update),
    "imbot.bot.list": Method("imbot", imbot_bot_list),
    "imbot.message.add": Method("imbot", imbot_message_add),
    "imbot.chat.sendTyping": Method("imbot", imbot_chat_send_typing),
    "imbot.command.register": Method("imbot", imbot_command_register),
    "imbot.command.unregister": Method("imbot", imbot_command_unregister),
    "imbot.command.update": Method("imbot", imbot_command_update),
    "imbot.command.answer": Method("imbot", imbot_command_answer),
    "disk.file.get": Method("disk", disk_file_get),
}
