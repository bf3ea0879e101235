"""Where a turn's answer goes: into the Bitrix24 chat, or back to the admin's test chat.

A failed turn may also hand the chat to a human (``handoff``): in an Open Channel chat through
``imopenlines.bot.session.operator``, queued behind the fallback text so it follows it; elsewhere
there is no operator queue, and the test chat only says what would have happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from redis.asyncio import Redis

from gateway.attachments import Bitrix24Files
from gateway.model import ChatEvent
from gateway.providers.base import FileSource, ProviderReply
from gateway.replies import fallback_calls, handoff_call, reply_calls, typing_call
from tenants.bitrix24 import Bitrix24Client, Bitrix24Error, Call, Coalescer
from tenants.metrics import HANDOFFS

log = logging.getLogger("bitbot.handoff")

TEST_SINK_TTL_S = 600
HANDOFF_NOTES = {
    "en": "(would hand the chat to an operator)",
    "ru": "(чат был бы передан оператору)",
}

HandoffOutcome = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class Handoff:
    """What became of a handoff; ``code`` is Bitrix24's error code or why it was skipped."""

    outcome: HandoffOutcome
    code: str = ""

    def summary(self) -> str:
        """For the dead-letter summary: codes only, never text."""
        return f"handoff={self.outcome}" + (f" handoff_code={self.code}" if self.code else "")


class ReplySink(Protocol):
    def typing(self, event: ChatEvent) -> None:
        """Show "typing" in the chat, best effort: returns at once, never waits for the network."""

    async def deliver(self, event: ChatEvent, reply: ProviderReply) -> int:
        """Send the reply; the number of messages sent."""

    async def say(self, event: ChatEvent, text: str) -> None:
        """Send a plain text of BitBot's own (fallback, quota notice)."""

    def files(self, event: ChatEvent) -> FileSource | None:
        """Where the event's attached files can be fetched from; None: nowhere."""

    async def handoff(self, event: ChatEvent) -> Handoff:
        """Hand the chat to a human operator; a refusal is an outcome, never an exception."""


class ChatSink:
    def __init__(self, client: Bitrix24Client, coalescer: Coalescer, api_version: int) -> None:
        self._client = client
        self._coalescer = coalescer
        self._api_version = api_version

    def typing(self, event: ChatEvent) -> None:
        call = typing_call(event, self._api_version)
        self._coalescer.notify(call.method, call.params)

    async def deliver(self, event: ChatEvent, reply: ProviderReply) -> int:
        return await self._send(reply_calls(event, reply, self._api_version))

    async def say(self, event: ChatEvent, text: str) -> None:
        await self._send(fallback_calls(event, text, self._api_version))

    def files(self, event: ChatEvent) -> FileSource | None:
        return Bitrix24Files(self._client, self._api_version, event.bot_id)

    async def handoff(self, event: ChatEvent) -> Handoff:
        # Private and group chats have no operator queue; only Open Channel chats do.
        if not event.is_open_channel:
            return Handoff("skipped", "not_open_channel")
        if not event.chat_id.isdecimal():
            return Handoff("failed", "no_chat_id")
        call = handoff_call(event)  # v1 and v2 bots alike, with the app's OAuth token
        try:
            await self._coalescer.call(call.method, call.params)
        except Bitrix24Error as error:
            # WRONG_CHAT: a human already holds the chat. One try only: no loop of retries.
            return Handoff("failed", error.code)
        return Handoff("ok")

    async def _send(self, calls: list[Call]) -> int:
        # Submitted together, the parts of a long answer leave in order, in one batch if queued.
        await asyncio.gather(*(self._coalescer.call(c.method, c.params) for c in calls))
        return len(calls)


class TestChatSink:
    """The admin's test chat: replies are pushed to ``bitbot:test:{id}`` for the page to read."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis: Any = redis
        self._key = key

    def typing(self, event: ChatEvent) -> None:
        return None

    def files(self, event: ChatEvent) -> FileSource | None:
        return None  # the test chat sends no files

    async def deliver(self, event: ChatEvent, reply: ProviderReply) -> int:
        buttons = [{"text": b.text, "value": b.value} for b in reply.buttons]
        await self._push({"text": reply.text, "buttons": buttons})
        return 1

    async def say(self, event: ChatEvent, text: str) -> None:
        await self._push({"text": text, "buttons": [], "fallback": True})

    async def handoff(self, event: ChatEvent) -> Handoff:
        """The test chat has no operators: the admin sees a note instead."""
        language = "ru" if event.language.lower().startswith("ru") else "en"
        await self.say(event, HANDOFF_NOTES[language])
        return Handoff("skipped", "test_chat")

    async def _push(self, message: dict[str, object]) -> None:
        await self._redis.rpush(self._key, json.dumps(message, ensure_ascii=False))
        await self._redis.expire(self._key, TEST_SINK_TTL_S)


async def hand_off_after_fallback(
    sink: ReplySink, event: ChatEvent, fallback_sent: bool
) -> Handoff:
    """The handoff of a failed turn, counted and logged (ids and codes only).

    Not tried when the fallback itself could not be delivered: the portal refused the chat
    already, and a handoff would come without the text that announces it.
    """
    handoff = await sink.handoff(event) if fallback_sent else Handoff("skipped", "fallback_failed")
    HANDOFFS.labels(handoff.outcome).inc()
    if handoff.outcome == "ok":
        log.info("chat %s handed to an operator", event.chat_id)
    elif handoff.outcome == "failed":
        log.warning("handing chat %s to an operator failed: %s", event.chat_id, handoff.code)
    else:
        log.info("handoff skipped: %s", handoff.code)
    return handoff
