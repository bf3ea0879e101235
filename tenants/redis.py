"""The Redis connection: a real server when ``REDIS_URL`` is set, else an in-process one.

The in-process Redis (fakeredis with Lua) serves the embedded default only: one process, nothing
durable. Every key BitBot writes starts with ``bitbot:``.

Both use a blocking pool: a worker with thousands of turns in flight issues more commands at once
than it should hold connections, and redis-py's plain pool refuses those ("Too many connections")
instead of letting them wait a moment for a free one.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

POOL_SIZE = 256
POOL_WAIT_S = 20.0


def connect_redis(redis_url: str | None) -> Redis:
    if redis_url is None:
        return _in_process_redis()
    pool = BlockingConnectionPool.from_url(
        redis_url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        health_check_interval=30,
        socket_connect_timeout=5,
    )
    return Redis(connection_pool=pool)


def _in_process_redis() -> Redis:
    import fakeredis  # only the embedded default needs it

    redis: Any = fakeredis.FakeAsyncRedis(
        server=fakeredis.FakeServer(version=(7, 2)),
        connection_pool_class=BlockingConnectionPool,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
    )
    return redis  # type: ignore[no-any-return]
