"""What every provider adapter is: one call per turn, from query and inputs to a reply.

Contract for implementations:
- ``run`` is awaited once per turn. It may raise only ``ProviderError`` subclasses (see
  ``gateway.providers.errors``); every other failure is a bug.
- Conversation/session state lives in the ``Sessions`` store under ``request.session_key`` with
  ``request.session_ttl_s``; an adapter that finds its remote session gone forgets it and starts
  afresh once.
- Nothing an adapter raises or logs may contain the API key, tokens or the user's inputs.
- Attachments reach an adapter as ``FileRef``s plus a ``FileSource`` that fetches their bytes; an
  adapter never talks to Bitrix24 itself. A file that cannot be fetched or handed on is skipped:
  it never fails the turn on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gateway.model import FileRef


@dataclass(frozen=True)
class ProviderConfig:
    type: str  # dify_chatflow | dify_workflow | typebot
    base_url: str  # effective: the connector's override or the provider's default
    api_key: str | None = field(default=None, repr=False)
    typebot_start_url: str | None = None


@dataclass(frozen=True)
class TurnRequest:
    query: str
    inputs: dict[str, str] = field(repr=False)
    user: str  # Dify ``user``: "{member_id}:{DIALOG_ID}"
    session_key: str  # "bitbot:{member_id}:{BOT_ID}:{DIALOG_ID}"
    session_ttl_s: int = 86_400
    # The bot joined a chat: there is no customer message; a flow greets (the query is the event
    # name for flows that read it; Typebot starts its flow afresh without answering an input).
    greeting: bool = False
    # The files attached to the turn's messages, and where their bytes come from (None: nowhere,
    # e.g. the admin's test chat or a provider that takes no files).
    attachments: tuple[FileRef, ...] = ()
    files: FileSource | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Download:
    """One fetched attachment: its file name (cleaned by the source: no path separators or
    control characters; empty when unknown), MIME type and bytes."""

    name: str
    content_type: str
    content: bytes = field(repr=False)


class FileSource(Protocol):
    """Fetches attached files; raises only ``AttachmentError`` (``gateway.providers.errors``)."""

    async def fetch(self, file: FileRef, max_bytes: int) -> Download:
        """The file's bytes; ``AttachmentError("file_too_large")`` past ``max_bytes``."""
        ...


@dataclass(frozen=True)
class Button:
    text: str  # label shown on the button
    value: str  # text sent back when pressed


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class ProviderReply:
    text: str  # Markdown as the provider produced it; rendering turns it into BB-code
    buttons: tuple[Button, ...] = ()
    usage: Usage | None = None
    session_ended: bool = False


class Sessions(Protocol):
    """Conversation ids / Typebot session ids, in Redis in production."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_s: int) -> None: ...

    async def forget(self, key: str) -> None: ...


class Provider(Protocol):
    async def run(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply: ...
