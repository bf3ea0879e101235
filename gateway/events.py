"""Bitrix24 bot events to ``ChatEvent``: classic v1 webhooks, Chatbots 2.0 webhooks and fetch.

``parse_webhook`` takes a decoded form (``tenants.bitrix24.phpform.decode``: scalars are strings,
bot/command/file ids stay dict keys); ``parse_fetched`` takes one ``imbot.v2.Event.get`` item (JSON
types). Both read through ``Fields`` so a bad payload fails with the wire path of the field.

Events that are accepted but start no turn (message edits and deletions, v2 reactions and context
requests), system messages and the bot's own messages give no event. ``ONIMBOTDELETE`` does give
one (``kind="bot_delete"``) so the caller can forget the bot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from gateway.model import ChatEvent, EventKind, FileRef, Origin

V1_KINDS: dict[str, EventKind] = {
    "ONIMBOTMESSAGEADD": "message",
    "ONIMCOMMANDADD": "command",
    "ONIMBOTJOINCHAT": "join",
    "ONIMBOTDELETE": "bot_delete",
}
V2_TO_V1 = {
    "ONIMBOTV2MESSAGEADD": "ONIMBOTMESSAGEADD",
    "ONIMBOTV2COMMANDADD": "ONIMCOMMANDADD",
    "ONIMBOTV2JOINCHAT": "ONIMBOTJOINCHAT",
    "ONIMBOTV2DELETE": "ONIMBOTDELETE",
}
NO_TURN = frozenset(
    {
        "ONIMBOTMESSAGEUPDATE",
        "ONIMBOTMESSAGEDELETE",
        "ONIMBOTV2MESSAGEUPDATE",
        "ONIMBOTV2MESSAGEDELETE",
        "ONIMBOTV2REACTIONCHANGE",
        "ONIMBOTV2CONTEXTGET",
    }
)
EVENT_NAMES = frozenset(V1_KINDS) | frozenset(V2_TO_V1) | NO_TURN


class EventError(ValueError):
    """A payload the gateway cannot read; the message names the field, never its value."""


class Fields:
    """One group of a payload and its wire path (``data[PARAMS]``), read with typed accessors."""

    def __init__(self, values: Mapping[str, Any], path: str = "") -> None:
        self._values = values
        self.path = path

    @classmethod
    def root(cls, payload: object) -> Fields:
        if not isinstance(payload, Mapping):
            raise EventError("the event is not a set of fields")
        return cls(payload)

    def where(self, key: str) -> str:
        return f"{self.path}[{key}]" if self.path else key

    def group(self, key: str, *, required: bool = True) -> Fields:
        value = self._values.get(key)
        if value is None or value == "":  # PHP drops empty arrays; v2 webhooks send null as ""
            if required:
                raise EventError(f"{self.where(key)} is missing")
            return Fields({}, self.where(key))
        if isinstance(value, list):  # JSON renders PHP arrays with keys 0..n-1 as lists
            value = {str(index): item for index, item in enumerate(value)}
        if not isinstance(value, Mapping):
            raise EventError(f"{self.where(key)} must be a group of fields")
        return Fields(value, self.where(key))

    def groups(self, *, skip_values: bool = False) -> list[tuple[str, Fields]]:
        found = []
        for key in self._values:
            if skip_values and not isinstance(self._values[key], Mapping | list):
                continue
            found.append((str(key), self.group(str(key))))
        return found

    def texts(self) -> list[str]:
        return [self.text(str(key)) for key in self._values]

    def text(self, key: str, *, required: bool = False) -> str:
        value = self._values.get(key)
        if isinstance(value, bool):  # fetch mode; ``string|false`` fields use false for "none"
            value = "1" if value else ""
        elif isinstance(value, int):
            value = str(value)
        elif value is not None and not isinstance(value, str):
            raise EventError(f"{self.where(key)} must be a single value")
        if required and not value:
            raise EventError(f"{self.where(key)} is missing")
        return value or ""

    def ident(self, key: str, *, required: bool = True) -> str:
        value = self.text(key, required=required)
        if value and not value.isdecimal():
            raise EventError(f"{self.where(key)} must be a numeric id")
        return value

    def integer(self, key: str) -> int:
        return int(self.ident(key))

    def flag(self, key: str) -> bool:
        return self.text(key).upper() in ("Y", "1", "TRUE")


def _template(origin: Origin, name: str, member_id: str, auth: Fields) -> ChatEvent:
    """The parts every event of one delivery shares; ``bot_id`` is filled in per bot."""
    return ChatEvent(
        kind=V1_KINDS[name],
        origin=origin,
        event_name=name,
        member_id=member_id,
        bot_id=0,
        client_endpoint=auth.text("client_endpoint"),
        scope=auth.text("scope"),
        access_token=auth.text("access_token"),
    )


def _with_bot(event: ChatEvent, bot_id: int, bot_code: str, tokens: Fields) -> ChatEvent:
    """The event as one bot sees it; the bot's token block also fills a token-less ``auth``."""
    # Customers write from outside Bitrix24, so their events carry no user tokens and no scope.
    token = tokens.text("access_token") or tokens.group("AUTH", required=False).text("access_token")
    return replace(
        event,
        bot_id=bot_id,
        bot_code=bot_code,
        client_endpoint=event.client_endpoint or tokens.text("client_endpoint"),
        scope=event.scope or tokens.text("scope"),
        bot_access_token=token,
    )


def parse_webhook(form: Mapping[str, Any]) -> list[ChatEvent]:
    """The events of one POST from Bitrix24 (v1, or a v2 webhook bot); see the module docstring."""
    root = Fields.root(form)
    name = root.text("event", required=True).upper()
    if name not in EVENT_NAMES:
        raise EventError(f"event {name[:60]!r} is not a bot event")
    auth = root.group("auth")
    member_id = auth.text("member_id", required=True)
    if name in NO_TURN:
        return []
    data = root.group("data")
    if name in V1_KINDS:
        return _V1_PARSERS[name](data, _template("v1", name, member_id, auth))
    # Top-level auth is whoever triggered the event; data[bot][auth] is the bot's own token.
    base = _template("v2_webhook", V2_TO_V1[name], member_id, auth)
    event = _v2_event(data, base, data.group("bot").group("auth", required=False))
    return [] if event is None else [event]


def parse_fetched(
    member_id: str, client_endpoint: str, item: Mapping[str, Any]
) -> ChatEvent | None:
    """One ``imbot.v2.Event.get`` event (no tokens in fetch mode); ``None`` if it starts no turn."""
    root = Fields.root(item)
    event_type = root.text("type", required=True).upper()
    event_id = root.integer("eventId")
    if event_type in NO_TURN:
        return None
    if event_type not in V2_TO_V1:
        raise EventError(f"event {event_type[:60]!r} is not a Chatbots 2.0 bot event")
    auth = Fields({"client_endpoint": client_endpoint})
    base = _template("v2_fetch", V2_TO_V1[event_type], member_id, auth)
    event = _v2_event(root.group("data"), base, Fields({}))
    return None if event is None else replace(event, event_id=event_id)


# -- classic v1 -----------------------------------------------------------------------------


def _v1_chat_event(data: Fields, base: ChatEvent) -> list[ChatEvent]:
    """A message or a join: one event per bot of the app listed under ``data[BOT]``."""
    if data.group("PARAMS").flag("SYSTEM"):
        return []
    template = _v1_chat(data, base)
    events = [_with_bot(template, *_v1_bot(entry), entry) for entry in _listed(data, "BOT")]
    return [event for event in events if event.author_id != str(event.bot_id)]


def _v1_command(data: Fields, base: ChatEvent) -> list[ChatEvent]:
    """``data[COMMAND]`` is keyed by command id: one event per command in the message."""
    template = _v1_chat(data, base)
    # A keyboard press may come with the bot's own message; data[USER] is who invoked it.
    invoker = data.group("USER", required=False).text("ID") or template.author_id
    events = []
    for entry in _listed(data, "COMMAND"):
        event = replace(
            _with_bot(template, *_v1_bot(entry), entry),
            author_id=invoker,
            command_id=entry.ident("COMMAND_ID"),
            command=entry.text("COMMAND", required=True).removeprefix("/"),
            command_params=entry.text("COMMAND_PARAMS"),
            command_context=entry.text("COMMAND_CONTEXT").upper(),
            message_id=entry.ident("MESSAGE_ID", required=False) or template.message_id,
        )
        if event.author_id != str(event.bot_id):
            events.append(event)
    return events


def _v1_delete(data: Fields, base: ChatEvent) -> list[ChatEvent]:
    return [replace(base, bot_id=data.integer("BOT_ID"), bot_code=data.text("BOT_CODE"))]


_V1_PARSERS: dict[str, Callable[[Fields, ChatEvent], list[ChatEvent]]] = {
    "ONIMBOTMESSAGEADD": _v1_chat_event,
    "ONIMCOMMANDADD": _v1_command,
    "ONIMBOTJOINCHAT": _v1_chat_event,
    "ONIMBOTDELETE": _v1_delete,
}


def _listed(data: Fields, key: str) -> list[Fields]:
    entries = [entry for _, entry in data.group(key).groups()]
    if not entries:
        raise EventError(f"{data.where(key)} lists nothing")
    return entries


def _v1_bot(entry: Fields) -> tuple[int, str]:
    return entry.integer("BOT_ID"), entry.text("BOT_CODE")


def _v1_chat(data: Fields, base: ChatEvent) -> ChatEvent:
    """The chat, author and files of a v1 event, before it is copied for each bot."""
    params = data.group("PARAMS")
    user = data.group("USER", required=False)
    # CHAT_ID is absent in private dialogs; TO_CHAT_ID carries the same chat id there.
    chat_id = params.ident("CHAT_ID", required=False) or params.ident("TO_CHAT_ID", required=False)
    file_ids = params.group("PARAMS", required=False).group("FILE_ID", required=False)
    return replace(
        base,
        dialog_id=params.text("DIALOG_ID", required=True),
        chat_id=chat_id,
        message_id=params.ident("MESSAGE_ID", required=base.kind != "join"),
        text=params.text("MESSAGE"),
        author_id=params.text("AUTHOR_ID") or params.text("FROM_USER_ID") or params.text("USER_ID"),
        first_name=user.text("FIRST_NAME"),
        last_name=user.text("LAST_NAME"),
        chat_title=params.text("CHAT_TITLE"),
        chat_type=params.text("CHAT_TYPE"),
        language=params.text("LANGUAGE"),
        chat_entity_type=params.text("CHAT_ENTITY_TYPE"),
        chat_entity_id=params.text("CHAT_ENTITY_ID"),
        chat_entity_data_1=params.text("CHAT_ENTITY_DATA_1"),
        chat_entity_data_2=params.text("CHAT_ENTITY_DATA_2"),
        files=_files(params.group("FILES", required=False), file_ids),
    )


# -- Chatbots 2.0 ---------------------------------------------------------------------------


def _v2_event(data: Fields, base: ChatEvent, bot_auth: Fields) -> ChatEvent | None:
    bot = data.group("bot")
    event = _with_bot(base, bot.integer("id"), bot.text("code"), bot_auth)
    if event.kind == "bot_delete":
        return event
    chat = data.group("chat", required=False)
    user = data.group("user", required=False)
    event = replace(
        event,
        dialog_id=chat.text("dialogId"),
        chat_id=chat.ident("id", required=False),
        author_id=user.text("id"),
        first_name=user.text("firstName"),
        last_name=user.text("lastName"),
        chat_title=chat.text("name"),
        chat_type=chat.text("type"),
        language=data.text("language"),
        chat_entity_type=chat.text("entityType"),
        chat_entity_id=chat.text("entityId"),
        chat_entity_data_1=chat.text("entityData1"),
        chat_entity_data_2=chat.text("entityData2"),
    )
    if event.kind == "join":
        return replace(
            event, dialog_id=data.text("dialogId") or chat.text("dialogId", required=True)
        )
    return _v2_message(event, data, chat)


def _v2_message(event: ChatEvent, data: Fields, chat: Fields) -> ChatEvent | None:
    message = data.group("message")
    author_id = message.ident("authorId")
    if event.kind == "command":  # data[user] invoked it, whoever wrote the message
        author_id = event.author_id or author_id
    if message.flag("isSystem") or author_id == str(event.bot_id):
        return None
    params = message.group("params", required=False)
    files = params.group("files", required=False)
    if not files.groups(skip_values=True):
        files = params.group("FILES", required=False)
    event = replace(
        event,
        dialog_id=chat.text("dialogId", required=True),
        chat_id=message.ident("chatId", required=False) or event.chat_id,
        message_id=message.ident("id"),
        text=message.text("text"),
        author_id=author_id,
        files=_files(files, params.group("FILE_ID", required=False)),
    )
    if event.kind != "command":
        return event
    command = data.group("command")
    return replace(
        event,
        command_id=command.ident("id"),
        # v2 sends "/help" where v1 sends "help"; flows see the v1 form.
        command=command.text("command", required=True).removeprefix("/"),
        command_params=command.text("params"),
        command_context=command.text("context").upper(),
    )


# -- files: the key set is unconfirmed by DOCS (reference §9), so read what is there ---------


def _files(entries: Fields, file_ids: Fields) -> tuple[FileRef, ...]:
    found = tuple(_file(key, entry) for key, entry in entries.groups(skip_values=True))
    if found:
        return found
    return tuple(FileRef(id=i, name="", type="file") for i in file_ids.texts() if i.isdecimal())


def _file(key: str, entry: Fields) -> FileRef:
    size = entry.text("size")
    return FileRef(
        id=entry.text("id") or key,
        name=entry.text("name"),
        type=entry.text("type") or "file",
        size=int(size) if size.isdecimal() else None,
    )
