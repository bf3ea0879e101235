"""One fake Bitrix24 portal: its users, bots, commands, chats, outbound record and limits.

Everything a product test may want to set up or assert lives here as plain attributes; the HTTP side
is in ``bitrix24_rest.py``. Reference: shared/reference/bitrix24.md.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

from tests.fakes.bitrix24_model import (
    Bot,
    Chat,
    Command,
    DownloadLink,
    EventBinding,
    Fault,
    FileDownload,
    InboundMessage,
    IncomingFile,
    Notification,
    OpenLineSession,
    OperatorHandoff,
    QueuedEvent,
    RestCall,
    SentMessage,
    StoredFile,
    TypingNotice,
    User,
)
from tests.fakes.bitrix24_tokens import TokenPair, TokenStore
from tests.fakes.clock import Clock

DEFAULT_SCOPES = ("imbot", "imopenlines", "im", "user", "disk")
V1_BOTS_PER_APP = 5
V2_BOTS_PER_APP = 100
V1_HANDLER_KEYS = (
    "EVENT_MESSAGE_ADD",
    "EVENT_WELCOME_MESSAGE",
    "EVENT_BOT_DELETE",
    "EVENT_MESSAGE_UPDATE",
    "EVENT_MESSAGE_DELETE",
)


class LeakyBucket:
    """Bitrix24's request limiter (§7.1): +1 per request, drains ``rate``/s, holds ``capacity``.

    A refused request does not fill the bucket, so waiting ``1/rate`` seconds always frees a slot.
    """

    def __init__(self, rate: float, capacity: int, clock: Clock) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._level = 0.0
        self._at = clock()

    @property
    def level(self) -> float:
        self._drain()
        return self._level

    def take(self) -> bool:
        self._drain()
        if self._level + 1 > self.capacity:
            return False
        self._level += 1
        return True

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.rate)
        self._at = now


@dataclass(frozen=True)
class AppContext:
    """What every portal shares with the cloud that hosts it."""

    clock: Clock
    tokens: TokenStore
    client_id: str
    app_code: str
    base_url: Callable[[], str]


class Portal:
    """A Bitrix24 account with the app installed by its admin (user 1)."""

    def __init__(
        self,
        app: AppContext,
        *,
        domain: str,
        member_id: str,
        scopes: tuple[str, ...],
        v2: bool,
        enterprise: bool,
        status: str,
        language: str,
    ) -> None:
        self._app = app
        self.domain = domain
        self.previous_domains: list[str] = []
        self.member_id = member_id
        self.scopes = scopes
        self.v2 = v2
        self.enterprise = enterprise
        self.status = status
        self.language = language
        self.license = f"{language}_ent250" if enterprise else f"{language}_pro100"
        self.app_version = 1
        self.revision = {"rest": 33, "web": 130, "mobile": 23, "desktop": 6}
        self.installed = True
        self.install_finished = True
        self.deleted = False
        self.payment_expired = False
        self.days: int | None = None
        self.bucket = (
            LeakyBucket(5, 250, app.clock) if enterprise else LeakyBucket(2, 50, app.clock)
        )
        self.refresh_count = 0
        self.users: dict[int, User] = {}
        self.bots: dict[int, Bot] = {}
        self.commands: dict[int, Command] = {}
        self.inbound: dict[int, InboundMessage] = {}
        self.messages: list[SentMessage] = []
        self.typing: list[TypingNotice] = []
        self.notifications: list[Notification] = []
        self.bindings: list[EventBinding] = []
        self.calls: list[RestCall] = []
        self.v2_events: list[QueuedEvent] = []
        self.v2_cursor: dict[int, int] = {}
        self.faults: list[Fault] = []
        self.open_lines: dict[int, OpenLineSession] = {}
        """Open-Line chats by chat id, with who holds each one's session (bot or operator)."""
        self.handoffs: list[OperatorHandoff] = []
        self.files: dict[int, StoredFile] = {}
        self.download_links: dict[str, DownloadLink] = {}
        self.downloads: list[FileDownload] = []
        self.download_base: str | None = None
        """Where download links point instead of the portal (a storage host elsewhere)."""
        self._file_ids = count(5249)
        # Separate ranges so that a product mixing up a user, chat or message id fails loudly.
        self._user_ids = count(1)
        self._chat_ids = count(101)
        self._message_ids = count(5001)
        self._command_ids = count(1)
        self._event_ids = count(1)
        self._handler_ids: dict[str, int] = {}
        self.admin = self.add_user("Alex", "Admin", admin=True)
        self.application_token = secrets.token_hex(16)
        self.auth = self.issue_tokens()

    # -- identity and endpoints ------------------------------------------------------------

    @property
    def scope(self) -> str:
        return ",".join(self.scopes)

    @property
    def client_endpoint(self) -> str:
        return f"{self._app.base_url()}/{self.domain}/rest/"

    @property
    def server_endpoint(self) -> str:
        return f"{self._app.base_url()}/rest/"

    @property
    def token_store(self) -> TokenStore:
        return self._app.tokens

    @property
    def client_id(self) -> str:
        return self._app.client_id

    @property
    def app_code(self) -> str:
        return self._app.app_code

    def now(self) -> float:
        return self._app.clock()

    def next_user_id(self) -> int:
        """Bots are users too, so they draw from the same sequence."""
        return next(self._user_ids)

    def next_chat_id(self) -> int:
        return next(self._chat_ids)

    def next_message_id(self) -> int:
        return next(self._message_ids)

    def next_command_id(self) -> int:
        return next(self._command_ids)

    # -- people, chats and tokens ----------------------------------------------------------

    def add_user(
        self,
        first_name: str,
        last_name: str = "",
        *,
        admin: bool = False,
        connector: bool = False,
        extranet: bool = False,
    ) -> User:
        user = User(
            id=self.next_user_id(),
            first_name=first_name,
            last_name=last_name,
            is_admin=admin,
            is_connector=connector,
            is_extranet=extranet,
        )
        self.users[user.id] = user
        return user

    def add_customer(self, first_name: str, last_name: str = "") -> User:
        """An Open Channel customer: a connector user (§4.4)."""
        return self.add_user(first_name, last_name, connector=True)

    def issue_tokens(self, user_id: int | None = None) -> TokenPair:
        """A fresh token pair for a user (default: the installing admin) or a bot."""
        user = self.admin.id if user_id is None else user_id
        return self._app.tokens.issue(self.member_id, user, self.scope)

    def issue_auth_code(self, user_id: int | None = None) -> str:
        user = self.admin.id if user_id is None else user_id
        return self._app.tokens.issue_code(self.member_id, user, self.scope)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far answers ``expired_token`` from now on."""
        self._app.tokens.expire_access_tokens(self.member_id)

    def private_chat(self, user: User) -> Chat:
        return Chat(id=self.next_chat_id(), dialog_id=str(user.id), message_type="P")

    def group_chat(self, title: str, owner: User | None = None) -> Chat:
        chat_id = self.next_chat_id()
        owner_id = (owner or self.admin).id
        return Chat(chat_id, f"chat{chat_id}", "C", title=title, owner_id=owner_id)

    def open_line_chat(
        self,
        customer: User,
        *,
        line_id: int = 1,
        connector: str = "telegrambot",
        session_id: int = 321,
        lead_id: int = 1205,
    ) -> Chat:
        """An Open Channel operator chat; ``CHAT_ENTITY_*`` layout from §5.3."""
        chat_id = self.next_chat_id()
        started = int(self.now())
        self.open_lines[chat_id] = OpenLineSession(chat_id, line_id, session_id)
        return Chat(
            id=chat_id,
            dialog_id=f"chat{chat_id}",
            message_type="L",
            title=f"{customer.name} - Open Channel",
            owner_id=0,
            entity_type="LINES",
            entity_id=f"{connector}|{line_id}|{chat_id + 1000}|{customer.id}",
            entity_data_1=f"Y|LEAD|{lead_id}|N|N|{session_id}|{started}|{line_id}|0|0",
            entity_data_2=f"LEAD|{lead_id}|COMPANY|0|CONTACT|0|DEAL|0",
            entity_data_3="",
        )

    def operator_takes_over(self, chat: Chat) -> None:
        """A human operator took the Open-Line chat (the bot no longer holds the session)."""
        self.open_lines[chat.id].holder = "operator"

    def session_holder(self, chat: Chat) -> str | None:
        """``bot`` or ``operator`` for an Open-Line chat; None for any other chat."""
        session = self.open_lines.get(chat.id)
        return session.holder if session else None

    def add_file(
        self,
        name: str,
        content: bytes,
        *,
        content_type: str | None = None,
        readable: bool = True,
        size: int | None = None,
    ) -> IncomingFile:
        """A file a customer sent: stored on the portal's Drive; attach the returned
        ``IncomingFile`` to ``message_add(..., files=...)``. ``size`` overrides what the event
        says about it."""
        guessed = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        family = guessed.split("/", 1)[0]
        kind = family if family in ("image", "video", "audio") else "file"
        stored = StoredFile(next(self._file_ids), name, content, guessed, kind, readable=readable)
        self.files[stored.id] = stored
        declared = len(content) if size is None else size
        return IncomingFile(stored.id, name, stored.type, declared)

    def download_link(self, file_id: int, *, one_time: bool, auth: str = "") -> str:
        """A signed ``/rest/download.json`` URL on the portal for a stored file (§9.2)."""
        link = DownloadLink(secrets.token_urlsafe(24), file_id, one_time)
        self.download_links[link.token] = link
        query = f"auth={auth}&" if auth else ""
        base = self.download_base or self.uri
        return f"{base}/rest/download.json?{query}token=disk%7C{link.token}"

    def handler_id(self, event: str) -> int:
        """A stable ``event_handler_id`` per event name, as the queue server stamps them."""
        return self._handler_ids.setdefault(event, 401 + len(self._handler_ids))

    @property
    def uri(self) -> str:
        return self.client_endpoint.removesuffix("/rest/")

    def record_inbound(self, chat: Chat, author: User, text: str, message_id: int | None) -> int:
        message = InboundMessage(message_id or self.next_message_id(), chat, author.id, text)
        self.inbound[message.id] = message
        return message.id

    # -- bots --------------------------------------------------------------------------------

    def add_bot(self, bot: Bot) -> Bot:
        self.bots[bot.id] = bot
        self.users[bot.id] = User(bot.id, bot.name, is_bot=True)
        return bot

    def add_v1_bot(
        self, code: str, handler_url: str, *, name: str = "", bot_type: str = "B"
    ) -> Bot:
        """A bot as if the app had called ``imbot.register`` earlier (nothing is recorded)."""
        handlers = {key: handler_url for key in V1_HANDLER_KEYS}
        bot = Bot(self.next_user_id(), code, 1, bot_type, name or code, bot_type == "O")
        bot.handlers = handlers
        return self.add_bot(bot)

    def add_v2_bot(
        self, code: str, *, webhook_url: str = "", name: str = "", bot_type: str = "bot"
    ) -> Bot:
        """A Chatbots 2.0 bot; webhook mode when ``webhook_url`` is given, else fetch mode."""
        mode = "webhook" if webhook_url else "fetch"
        bot = Bot(self.next_user_id(), code, 2, bot_type, name or code, bot_type == "openline")
        bot.event_mode, bot.webhook_url, bot.language = mode, webhook_url, self.language
        return self.add_bot(bot)

    def add_command(self, bot: Bot, command: str, handler_url: str = "") -> Command:
        """A slash command of ``bot`` as if registered through the bot's API version."""
        registered = Command(self.next_command_id(), bot.id, command, bot.api, handler_url)
        registered.titles = {self.language: command}
        self.commands[registered.id] = registered
        return registered

    def bot_by_code(self, code: str, api: int) -> Bot | None:
        return next((b for b in self.bots.values() if b.code == code and b.api == api), None)

    def remove_bot(self, bot_id: int) -> None:
        self.bots.pop(bot_id, None)
        self.users.pop(bot_id, None)
        for command_id in [c.id for c in self.commands.values() if c.bot_id == bot_id]:
            del self.commands[command_id]
        self.v2_events = [e for e in self.v2_events if e.bot_id != bot_id]

    def queue_v2_event(self, bot_id: int, event_type: str, data: dict[str, Any]) -> int:
        """Put a Chatbots 2.0 event in the fetch queue of a bot; returns its ``eventId``."""
        event = QueuedEvent(next(self._event_ids), bot_id, event_type, self.iso_now(), data)
        self.v2_events.append(event)
        return event.event_id

    def iso_now(self) -> str:
        return datetime.fromtimestamp(self.now(), UTC).isoformat(timespec="seconds")

    # -- lifecycle (pair each with the matching event builder in bitrix24_events) -----------

    def uninstall(self) -> None:
        """The admin removed the app: API access ends and all of the app's bots go (§1.4, CORE)."""
        self.installed = False
        for bot_id in list(self.bots):
            self.remove_bot(bot_id)
        self.bindings.clear()

    def reinstall(self) -> TokenPair:
        """Install again: new application token and tokens; returns the new install pair."""
        self._app.tokens.revoke_portal(self.member_id)
        self.installed = True
        self.application_token = secrets.token_hex(16)
        self.auth = self.issue_tokens()
        return self.auth

    def update_app(self, version: int) -> None:
        """A new app version: new application token; event bindings are dropped (§1.4)."""
        self.app_version = version
        self.application_token = secrets.token_hex(16)
        self.bindings.clear()

    def start_unfinished_install(self) -> None:
        """An app with UI counts as not installed until ``BX24.installFinish()`` (§1.1)."""
        self.install_finished = False

    def finish_install(self) -> None:
        self.install_finished = True

    def rename(self, new_domain: str) -> None:
        """The portal changed its address; the old one now answers 302 (§2.4)."""
        self.previous_domains.append(self.domain)
        self.domain = new_domain

    def delete(self) -> None:
        self.deleted = True

    def lapse_payment(self, days: int = -1) -> None:
        """The paid period ended: the auth server now refuses tokens with ``PAYMENT_REQUIRED``."""
        self.payment_expired = True
        self.days = days

    # -- faults and the outbound record ------------------------------------------------------

    def fail_next(
        self, method: str, status: int, error: str, description: str = "", *, times: int = 1
    ) -> None:
        """The next ``times`` calls of ``method`` (``"*"`` = any) answer this error instead."""
        self.faults.append(Fault(method, status, error, description or error, times))

    def take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method in (method, "*"):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def calls_of(self, method: str) -> list[RestCall]:
        return [c for c in self.calls if c.method == method]

    def messages_to(self, dialog_id: str) -> list[SentMessage]:
        return [m for m in self.messages if m.dialog_id == dialog_id]
