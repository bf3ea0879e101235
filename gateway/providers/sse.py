"""Server-Sent Events parsed incrementally from a streamed response's lines.

Parsing follows the WHATWG event-stream rules: ``field: value`` lines build an event, a blank line
dispatches it, lines starting with ``:`` are comments, several ``data`` lines join with newlines,
and an event without data (Dify's bare ``event: ping``) is never dispatched.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from gateway.providers.errors import ProviderUnavailable

MAX_EVENT_CHARS = 8 * 1024 * 1024


@dataclass(frozen=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str = ""


@dataclass
class _Pending:
    event: str = ""
    data: list[str] = field(default_factory=list)
    size: int = 0


async def parse_events(
    lines: AsyncIterator[str], *, provider: str = "the provider"
) -> AsyncGenerator[ServerSentEvent, None]:
    """Events from a stream's lines (without their line ends), dispatched on blank lines."""
    pending = _Pending()
    last_id = ""
    async for line in lines:
        if line == "":
            if pending.data:
                yield ServerSentEvent(pending.event or "message", "\n".join(pending.data), last_id)
            pending = _Pending()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            pending.data.append(value)
            pending.size += len(value)
            if pending.size > MAX_EVENT_CHARS:
                raise ProviderUnavailable(
                    f"{provider} sent an oversized event", code="event_too_large"
                )
        elif name == "event":
            pending.event = value
        elif name == "id" and "\0" not in value:
            last_id = value
    # An event not closed by a blank line before the stream ended is discarded, as the spec says.
