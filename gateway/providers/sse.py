"""Server-Sent Events parsed incrementally from a streamed response's lines (``EventParser``).

Parsing follows the WHATWG event-stream rules: ``field: value`` lines build an event, a blank line
dispatches it, lines starting with ``:`` are comments, several ``data`` lines join with newlines,
and an event without data (Dify's bare ``event: ping``) is never dispatched.
"""

from __future__ import annotations

from collections.abc import Iterable
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


class EventParser:
    """The rules above applied to lines as they come, without awaiting anything: ``feed`` takes
    the complete lines of a piece of the stream and returns the events they finish."""

    def __init__(self, provider: str = "the provider") -> None:
        self._provider = provider
        self._pending = _Pending()
        self._last_id = ""

    def feed(self, lines: Iterable[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        pending = self._pending
        for line in lines:
            if line == "":
                if pending.data:
                    data = "\n".join(pending.data)
                    events.append(ServerSentEvent(pending.event or "message", data, self._last_id))
                pending = self._pending = _Pending()
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
                        f"{self._provider} sent an oversized event", code="event_too_large"
                    )
            elif name == "event":
                pending.event = value
            elif name == "id" and "\0" not in value:
                self._last_id = value
        # An event not closed by a blank line before the stream ends is never returned, as the
        # spec says.
        return events
