"""The Redis connection: a real server when ``REDIS_URL`` is set, else an in-process one.

The in-process Redis (fakeredis with Lua) serves the embedded default only: one process, nothing
durable. Every key BitBot writes starts with ``bitbot:``.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

KEY_PREFIX = "bitbot:"


def connect_redis(redis_url: str | None) -> Redis:
    if redis_url is not None:
        return Redis.from_url(redis_url, health_check_interval=30, socket_connect_timeout=5)
    return _in_process_redis()


def _in_process_redis() -> Redis:
    import fakeredis  # only the embedded default needs it

    redis: Any = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=(7, 2)))
    return redis  # type: ignore[no-any-return]
