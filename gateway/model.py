"""The pipeline's vocabulary: one normalized chat event, whatever API version it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["message", "command", "join", "bot_delete"]
Origin = Literal["v1", "v2_webhook", "v2_fetch", "test"]


@dataclass(frozen=True)
class FileRef:
    """A file attached to a message: the Bitrix24 Drive file id and its Bitrix24 ``type``."""

    id: str
    name: str
    type: str  # image | file | video | audio
    size: int | None = None


@dataclass(frozen=True)
class ChatEvent:
    """One bot event, normalized from classic v1, Chatbots 2.0 webhook or 2.0 fetch.

    ``event_name`` is always the v1 name (``ONIMBOTMESSAGEADD``, ``ONIMCOMMANDADD``,
    ``ONIMBOTJOINCHAT``, ``ONIMBOTDELETE``) so flows need not change when a bot moves to v2.
    Empty strings stand for "not in this event"; every value is as Bitrix24 sent it.
    """

    kind: EventKind
    origin: Origin
    event_name: str
    member_id: str
    bot_id: int
    bot_code: str = ""
    dialog_id: str = ""
    chat_id: str = ""
    message_id: str = ""
    text: str = ""
    author_id: str = ""
    first_name: str = ""
    last_name: str = ""
    command_id: str = ""
    command: str = ""
    command_params: str = ""
    command_context: str = ""  # TEXTAREA | KEYBOARD (v1 spelling, also for v2)
    chat_title: str = ""
    chat_type: str = ""
    language: str = ""
    chat_entity_type: str = ""
    chat_entity_id: str = ""
    chat_entity_data_1: str = ""
    chat_entity_data_2: str = ""
    files: tuple[FileRef, ...] = ()
    client_endpoint: str = ""
    scope: str = ""
    # auth[access_token]: the user whose action raised the event (absent for automation).
    access_token: str = field(default="", repr=False)
    # The bot's own token from the event (v1 data[BOT][id], v2 data[bot][auth]).
    bot_access_token: str = field(default="", repr=False)
    event_id: int | None = None  # fetch mode only

    @property
    def is_open_channel(self) -> bool:
        return self.chat_entity_type == "LINES"

    @property
    def dedup_key(self) -> str:
        """Tenant is added by the caller: (bot, event type, message id, command id)."""
        return f"{self.bot_id}:{self.event_name}:{self.message_id}:{self.command_id}"
