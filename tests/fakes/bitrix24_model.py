"""Plain records of the fake Bitrix24: people, bots, chats, what was sent, what was called."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MESSAGE_LIMIT = 20_000


class RestError(Exception):
    """An error answer of the portal REST API: ``{"error": code, "error_description": ...}``."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass
class User:
    id: int
    first_name: str
    last_name: str = ""
    is_admin: bool = False
    is_bot: bool = False
    is_connector: bool = False
    is_extranet: bool = False
    gender: str = "M"
    work_position: str = ""
    email: str = ""

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class Bot:
    """A chat bot registered by the app, through ``imbot.register`` (api 1) or v2 (api 2)."""

    id: int
    code: str
    api: int
    type: str
    name: str
    openline: bool = False
    event_mode: str = "webhook"
    webhook_url: str = ""
    handlers: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    is_hidden: bool = False
    is_reactions_enabled: bool = True
    background_id: str | None = None
    language: str = "en"


@dataclass
class Command:
    id: int
    bot_id: int
    command: str
    api: int
    handler: str = ""
    common: bool = False
    hidden: bool = False
    extranet_support: bool = False
    titles: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Chat:
    """Where a message happens. ``dialog_id`` is the reply target as the bot sees it."""

    id: int
    dialog_id: str
    message_type: str
    title: str = ""
    owner_id: int = 0
    entity_type: str = ""
    entity_id: str = ""
    entity_data_1: str = ""
    entity_data_2: str = ""
    entity_data_3: str = ""

    @property
    def is_private(self) -> bool:
        return self.message_type == "P"


@dataclass
class OpenLineSession:
    """The current session of an Open-Line chat and who holds it (§5.2): the line's welcome bot
    answers until it hands over (or a human takes over); then the line's operators do."""

    chat_id: int
    line_id: int
    session_id: int
    holder: str = "bot"  # bot | operator


@dataclass(frozen=True)
class OperatorHandoff:
    """One accepted ``imopenlines.bot.session.operator``: the chat went to the line's queue."""

    chat_id: int
    user_id: int  # whose token made the call
    at: float


@dataclass(frozen=True)
class IncomingFile:
    """A Drive file attached to an incoming message (§9.1)."""

    id: int
    name: str
    type: str = "file"
    size: int = 1024
    width: int = 0
    height: int = 0

    @property
    def extension(self) -> str:
        return self.name.rsplit(".", 1)[-1].lower() if "." in self.name else ""


@dataclass
class StoredFile:
    """A Drive file's bytes on the portal; ``readable`` False: the app's tokens may not read it."""

    id: int
    name: str
    content: bytes = field(repr=False)
    content_type: str
    type: str = "file"
    readable: bool = True


@dataclass(frozen=True)
class DownloadLink:
    """A signed download URL handed out by ``disk.file.get`` or ``imbot.v2.File.download``."""

    token: str
    file_id: int
    one_time: bool


@dataclass(frozen=True)
class FileDownload:
    """One GET of a download link, as the portal saw it."""

    file_id: int | None
    status: int
    headers: dict[str, str]


@dataclass(frozen=True)
class InboundMessage:
    """A message the fake delivered to the app in an event; replies can be matched to it."""

    id: int
    chat: Chat
    author_id: int
    text: str


@dataclass
class SentMessage:
    """A message the app posted (``imbot.message.add``, ``Chat.Message.send``, command answers)."""

    id: int
    method: str
    bot_id: int
    dialog_id: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    command_id: int | None = None
    reply_to: int | None = None


@dataclass(frozen=True)
class TypingNotice:
    method: str
    bot_id: int
    dialog_id: str
    status_code: str = ""
    duration: int | None = None


@dataclass(frozen=True)
class Notification:
    user_id: int
    message: str


@dataclass(frozen=True)
class EventBinding:
    event: str
    handler: str
    auth_type: int = 0
    event_type: str = "online"


@dataclass(frozen=True)
class QueuedEvent:
    """A Chatbots 2.0 event waiting for ``imbot.v2.Event.get`` (fetch mode)."""

    event_id: int
    bot_id: int
    type: str
    date: str
    data: dict[str, Any]


@dataclass(frozen=True)
class RestCall:
    """One call as the portal saw it. Batch sub-commands are recorded too, with ``batch_key``."""

    method: str
    params: dict[str, Any]
    auth: str | None
    user_id: int | None
    status: int
    error: str | None
    at: float
    batch_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Fault:
    method: str
    status: int
    error: str
    description: str
    times: int
