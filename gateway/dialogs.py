"""One turn in flight per dialog, in order; messages that wait are merged into the next turn.

A dialog is (tenant, bot, dialog id). Its works wait in arrival order. When the first waiting work
is a plain message, the runner waits the bot's batch delay, then takes every plain message waiting
at that moment (up to ``MAX_BATCH``) as one turn; commands and joins are turns of their own, since
each is answered on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.model import ChatEvent
from tenants.store import Tenant

log = logging.getLogger("bitbot.dialogs")
MAX_BATCH = 20

DialogKey = tuple[int, int, str]
# Called once per work when its turn is over: (failure or None, non-secret summary).
Finish = Callable[[str | None, str], Awaitable[None]]


@dataclass
class Work:
    """One event to answer, and how to report that it is finished."""

    event: ChatEvent
    tenant: Tenant
    finish: Finish = field(repr=False)
    received_at: float = 0.0  # when the intake took the event (unix time)
    test_sink: str = ""  # the admin's test chat: where the reply goes instead of Bitrix24
    bot_profile_id: int | None = None  # test turns name the bot by BitBot's id

    @property
    def dialog(self) -> DialogKey:
        return (self.tenant.id, self.event.bot_id, self.event.dialog_id)


TurnRunner = Callable[[list[Work]], Awaitable[None]]
BatchDelay = Callable[[Work], Awaitable[float]]


class Dialogs:
    def __init__(self, run_turn: TurnRunner, batch_delay: BatchDelay) -> None:
        self._run_turn = run_turn
        self._batch_delay = batch_delay
        self._waiting: dict[DialogKey, deque[Work]] = {}
        self._runners: dict[DialogKey, asyncio.Task[None]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._runners)

    def submit(self, work: Work) -> None:
        key = work.dialog
        self._waiting.setdefault(key, deque()).append(work)
        if key not in self._runners:
            self._runners[key] = asyncio.create_task(self._run(key))

    async def drain(self, timeout_s: float) -> bool:
        """Wait for every dialog to finish its turns; False if some are still running."""
        runners = list(self._runners.values())
        if not runners:
            return True
        _, pending = await asyncio.wait(runners, timeout=timeout_s)
        return not pending

    async def cancel(self) -> None:
        for runner in self._runners.values():
            runner.cancel()
        await asyncio.gather(*self._runners.values(), return_exceptions=True)

    async def _run(self, key: DialogKey) -> None:
        waiting = self._waiting[key]
        try:
            while waiting:
                if waiting[0].event.kind == "message":
                    delay = await self._batch_delay(waiting[0])
                    if delay > 0:
                        await asyncio.sleep(delay)
                turn = _take_turn(waiting)
                try:
                    await self._run_turn(turn)
                except Exception:  # a turn reports its own failures; this only keeps the dialog
                    log.exception("turn crashed; its entries stay unacknowledged for a retry")
        finally:
            del self._runners[key]
            if not waiting:
                del self._waiting[key]


def _take_turn(waiting: deque[Work]) -> list[Work]:
    first = waiting.popleft()
    turn = [first]
    if first.event.kind != "message":
        return turn
    while waiting and waiting[0].event.kind == "message" and len(turn) < MAX_BATCH:
        turn.append(waiting.popleft())
    return turn
