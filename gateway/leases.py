"""Shard leases: each queue shard is worked by one worker at a time.

A worker holds a lease per shard it works (``bitbot:lease:{shard}``, renewed well within its TTL)
and takes at most its fair share, ``ceil(shards / live workers)``. Holding the whole shard keeps a
dialog's messages in one process, so they are answered in order and merged into batches there.
When a worker dies its leases expire and another takes the shard over together with the entries
the dead worker had read but not acknowledged.
"""

from __future__ import annotations

import math
import time
from typing import Any

from redis.asyncio import Redis

WORKERS = "bitbot:workers"
LEASE_TTL_MS = 30_000

# KEYS[1] lease; ARGV owner, ttl ms. Extends the lease only for its owner.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_key(shard: int) -> str:
    return f"bitbot:lease:{shard}"


class ShardLeases:
    def __init__(self, redis: Redis, owner: str, shards: int, ttl_ms: int = LEASE_TTL_MS) -> None:
        self._redis: Any = redis
        self.owner = owner
        self._shards = shards
        self.ttl_ms = ttl_ms
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.held: set[int] = set()

    async def refresh(self, busy: set[int]) -> tuple[set[int], set[int]]:
        """Renew, rebalance and take free shards; returns (gained, lost). ``busy`` shards, which
        still have turns in flight, are not given away even above the fair share."""
        await self._heartbeat()
        lost = {shard for shard in self.held if not await self._extend(shard)}
        self.held -= lost
        share = await self._fair_share()
        for shard in sorted(self.held - busy, reverse=True):
            if len(self.held) <= share:
                break
            await self.release(shard)
        gained: set[int] = set()
        for shard in range(self._shards):
            if len(self.held) >= share:
                break
            if shard not in self.held and await self._take(shard):
                self.held.add(shard)
                gained.add(shard)
        return gained, lost

    async def release(self, shard: int) -> None:
        await self._release(keys=[lease_key(shard)], args=[self.owner])
        self.held.discard(shard)

    async def release_all(self) -> None:
        for shard in list(self.held):
            await self.release(shard)
        await self._redis.zrem(WORKERS, self.owner)

    async def _heartbeat(self) -> None:
        now = time.time()
        await self._redis.zadd(WORKERS, {self.owner: now + self.ttl_ms / 1000})
        await self._redis.zremrangebyscore(WORKERS, "-inf", now)

    async def _fair_share(self) -> int:
        live = max(1, int(await self._redis.zcard(WORKERS)))
        return math.ceil(self._shards / live)

    async def _take(self, shard: int) -> bool:
        return bool(await self._redis.set(lease_key(shard), self.owner, nx=True, px=self.ttl_ms))

    async def _extend(self, shard: int) -> bool:
        return bool(await self._renew(keys=[lease_key(shard)], args=[self.owner, self.ttl_ms]))
