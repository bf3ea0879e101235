"""Where a turn's answer goes: into the Bitrix24 chat, or back to the admin's test chat."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from redis.asyncio import Redis

from gateway.model import ChatEvent
from gateway.providers.base import ProviderReply
from gateway.replies import fallback_calls, reply_calls, typing_call
from tenants.bitrix24 import Bitrix24Client, Call, Coalescer

TEST_SINK_TTL_S = 600


class ReplySink(Protocol):
    def typing(self, event: ChatEvent) -> None:
        """Show "typing" in the chat, best effort: returns at once, never waits for the network."""

    async def deliver(self, event: ChatEvent, reply: ProviderReply) -> int:
        """Send the reply; the number of messages sent."""

    async def say(self, event: ChatEvent, text: str) -> None:
        """Send a plain text of BitBot's own (fallback, quota notice)."""


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

    async def deliver(self, event: ChatEvent, reply: ProviderReply) -> int:
        buttons = [{"text": b.text, "value": b.value} for b in reply.buttons]
        await self._push({"text": reply.text, "buttons": buttons})
        return 1

    async def say(self, event: ChatEvent, text: str) -> None:
        await self._push({"text": text, "buttons": [], "fallback": True})

    async def _push(self, message: dict[str, object]) -> None:
        await self._redis.rpush(self._key, json.dumps(message, ensure_ascii=False))
        await self._redis.expire(self._key, TEST_SINK_TTL_S)
