"""Conversation and session ids in Redis: the production ``Sessions`` store."""

from __future__ import annotations

from redis.asyncio import Redis

from tenants.autopipe import AutoPipeline


class RedisSessions:
    """``Sessions`` over ``redis.asyncio``; ids come back as ``str`` whatever the client decodes.

    Reads and writes of concurrent turns share pipelines (``AutoPipeline``)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = AutoPipeline.of(redis)

    async def get(self, key: str) -> str | None:
        value = await self._redis.call("GET", key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        # Redis refuses a zero or negative expiry; the shortest it takes is one second.
        await self._redis.call("SET", key, value, "EX", max(1, ttl_s))

    async def forget(self, key: str) -> None:
        await self._redis.call("DEL", key)
