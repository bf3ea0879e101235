"""Commands of many coroutines leave in one pipeline; each caller gets its own reply or error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tenants.autopipe import AutoPipeline
from tenants.runtime import Runtime


class CountingRedis:
    """Counts the pipelines sent through the runtime's client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pipelines = 0

    def pipeline(self, transaction: bool = True) -> Any:
        self.pipelines += 1
        return self.redis.pipeline(transaction=transaction)


async def test_concurrent_commands_share_a_pipeline_and_get_their_own_replies(
    runtime: Runtime,
) -> None:
    counting = CountingRedis(runtime.redis)
    auto = AutoPipeline(counting)  # type: ignore[arg-type]
    await asyncio.gather(*(auto.call("SET", f"bitbot:t:{n}", str(n)) for n in range(300)))
    values = await asyncio.gather(*(auto.call("GET", f"bitbot:t:{n}") for n in range(300)))
    assert [int(v) for v in values] == list(range(300))
    assert counting.pipelines == 2


async def test_an_error_reaches_only_its_caller(runtime: Runtime) -> None:
    auto = AutoPipeline(runtime.redis)
    await runtime.redis.set("bitbot:t:text", "x")
    good = auto.call("SET", "bitbot:t:a", "1")
    bad = auto.call("INCR", "bitbot:t:text")
    group = auto.call_many([("SET", "bitbot:t:b", "2"), ("LPUSH", "bitbot:t:text", "y")])
    results = await asyncio.gather(good, bad, group, return_exceptions=True)
    assert results[0] is True
    assert isinstance(results[1], ResponseError)
    assert isinstance(results[2], ResponseError)  # WRONGTYPE from the second of the group
    assert await runtime.redis.get("bitbot:t:b") == b"2"  # not atomic: the first one ran


@pytest.mark.redis
async def test_a_lost_connection_fails_every_caller_of_the_batch() -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    auto = AutoPipeline(broken)
    results = await asyncio.gather(
        *(auto.call("GET", "bitbot:t:x") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RedisConnectionError) for r in results)
    await broken.aclose()


@pytest.mark.redis
async def test_commands_are_packed_by_hiredis_and_refuse_what_redis_cannot_take() -> None:
    from redis.exceptions import DataError

    from tenants.redis import connect_redis
    from tests.conftest import REDIS_URL

    redis = connect_redis(REDIS_URL)
    try:
        connection = redis.connection_pool.connection_class()
        assert type(connection).__name__ == "_FastConnection"
        assert connection.pack_command("SET", "k", "ключ", "EX", 5) == [
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\n\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\r\n"
            b"$2\r\nEX\r\n$1\r\n5\r\n"
        ]
        assert connection.pack_command("CONFIG GET", "maxmemory")[0].startswith(
            b"*3\r\n$6\r\nCONFIG"
        )
        with pytest.raises(DataError):
            connection.pack_command("SET", "k", None)  # type: ignore[arg-type]
        await redis.set("bitbot:t:packed", b"\x00\xff" * 3000)
        assert await redis.get("bitbot:t:packed") == b"\x00\xff" * 3000
    finally:
        await redis.aclose(close_connection_pool=True)


async def test_every_user_of_a_client_shares_its_pipeline(runtime: Runtime) -> None:
    counting = CountingRedis(runtime.redis)
    reads, writes = AutoPipeline.of(counting), AutoPipeline.of(counting)  # type: ignore[arg-type]
    assert reads is writes
    assert AutoPipeline.of(runtime.redis) is not reads  # another client, another pipeline
    done, session = await asyncio.gather(
        writes.call_many([("SET", "bitbot:t:done", "1"), ("SET", "bitbot:t:session", "s")]),
        reads.call("GET", "bitbot:t:session"),
    )
    assert done == [True, True]
    assert session == b"s"  # queued after the SET in the same pipeline, so it sees it
    assert counting.pipelines == 1
