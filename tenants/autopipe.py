"""Commands from many coroutines, sent to Redis together.

A worker with thousands of turns in flight issues the same few commands for each of them (read the
done marks, write the session id, acknowledge the entry). Sent one by one, each pays a full round
trip and the client's per-command overhead. Here every command queued during one pass of the
event loop leaves in a single non-transactional pipeline, and each caller gets its own reply (or
its own error). A quiet process sees no delay: the batch leaves on the loop's next pass.

Commands queued together are sent in order, so a caller's group (``call_many``) stays in order;
they are not atomic, so a group that must be atomic uses MULTI or a script of its own.

``AutoPipeline.of(redis)`` is the one instance of a client, shared by every part of the process
that uses it (the turn's reads, the rate buckets, sessions, metering, the queue): what they issue
in one pass leaves together, e.g. a turn's done marks and its session id.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from redis.asyncio import Redis

Command = tuple[Any, ...]
MAX_BATCH = 1_000


class AutoPipeline:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[tuple[Command, asyncio.Future[Any]]] = []
        self._scheduled = False

    @classmethod
    def of(cls, redis: Redis) -> AutoPipeline:
        """The client's shared instance."""
        shared = _shared.get(redis)
        if shared is None:
            shared = _shared[redis] = cls(redis)
        return shared

    async def call(self, *command: Any) -> Any:
        """One command, e.g. ``call("SET", key, value, "EX", 60)``; the reply as redis-py
        gives it."""
        return await self._queue(command)

    async def call_many(self, commands: list[Command]) -> list[Any]:
        """Several commands, sent in order in the same pipeline; the first error is raised."""
        futures = [self._queue(command) for command in commands]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return list(replies)

    def _queue(self, command: Command) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((command, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_queued)
        return future

    def _send_queued(self) -> None:
        self._scheduled = False
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), MAX_BATCH):
            task = asyncio.ensure_future(self._send(queued[start : start + MAX_BATCH]))
            _running.add(task)
            task.add_done_callback(_running.discard)

    async def _send(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        pipeline: Any = self._redis.pipeline(transaction=False)
        for command, _ in batch:
            pipeline.execute_command(*command)
        try:
            replies = await pipeline.execute(raise_on_error=False)
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue  # the caller gave up (cancelled) meanwhile
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


# Tasks are weakly referenced by the loop; keep the sending ones alive until they finish.
_running: set[asyncio.Task[None]] = set()
_shared: weakref.WeakKeyDictionary[Redis, AutoPipeline] = weakref.WeakKeyDictionary()
