"""The test chat: a message typed on the bot page runs through the real pipeline.

It goes on the queue as a ``test`` entry (DESIGN §9); a worker answers it like a private message
to the bot and pushes the reply to the sink ``bitbot:test:{tenant_id}:{chat id}``. The tenant is
part of the key, so a session can only ever read its own tenant's replies.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from admin_ui.portal.audit import Actor
from admin_ui.portal.bots import BotView
from admin_ui.portal.validation import Form, Message, NotFound
from tenants.clock import Clock
from tenants.queue import Queue

TEXT_LIMIT = 4000
MAX_WAIT_S = 25.0
POLL_S = 0.1
CHAT_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Tester:
    """Who is typing: the viewing portal user, as the flow will see them."""

    actor: Actor
    member_id: str
    first_name: str
    last_name: str


class TestChat:
    def __init__(self, redis: Redis, queue: Queue, clock: Clock) -> None:
        self._redis: Any = redis
        self._queue = queue
        self._clock = clock

    async def send(self, tester: Tester, bot: BotView, data: dict[str, Any]) -> str:
        form = Form(data)
        text = form.text("text", limit=TEXT_LIMIT, required=True)
        form.check()
        chat_id = secrets.token_hex(16)
        user_id = tester.actor.user_id
        payload = {
            "bot_id": bot.id,
            "b24_bot_id": bot.b24_bot_id or 0,
            "text": text,
            "sink": self._sink(tester.actor, chat_id),
            "dialog_id": _dialog(user_id),
            "user_id": str(user_id),
            "first_name": tester.first_name,
            "last_name": tester.last_name,
            "language": tester.actor.language,
            "message_id": f"test-{chat_id}",
        }
        await self._queue.enqueue(
            "test",
            tester.actor.tenant_id,
            tester.member_id,
            json.dumps(payload, ensure_ascii=False),
            self._clock.now(),
        )
        return chat_id

    async def replies(self, actor: Actor, chat_id: str, wait_s: float) -> list[dict[str, Any]]:
        """Replies that arrived for ``chat_id``, waiting up to ``wait_s`` for the first one."""
        if not CHAT_ID.match(chat_id):
            raise NotFound(Message("testchat.unknown"))
        key = self._sink(actor, chat_id)
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        while True:
            raw = await self._redis.lpop(key, 50)
            if raw or time.monotonic() >= deadline:
                return [_reply(item) for item in raw or []]
            await asyncio.sleep(POLL_S)

    async def restart(self, tester: Tester, bot: BotView) -> None:
        """Forget the provider conversation, so the next message starts a new one."""
        dialog = f"bitbot:{tester.member_id}:{bot.b24_bot_id or 0}:{_dialog(tester.actor.user_id)}"
        await self._redis.delete(dialog, f"{dialog}:choices")

    def _sink(self, actor: Actor, chat_id: str) -> str:
        return f"bitbot:test:{actor.tenant_id}:{chat_id}"


def _dialog(user_id: int) -> str:
    return f"test{user_id}"


def _reply(raw: bytes | str) -> dict[str, Any]:
    item = json.loads(raw)
    buttons = [
        {"text": str(b.get("text", "")), "value": str(b.get("value", ""))}
        for b in item.get("buttons", [])
        if isinstance(b, dict)
    ]
    return {
        "text": str(item.get("text", "")),
        "buttons": buttons,
        "fallback": bool(item.get("fallback")),
    }
