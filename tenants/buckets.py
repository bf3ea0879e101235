"""Leaky buckets in Redis, shared by every process: Bitrix24's outbound budget per portal and
BitBot's own per-tenant and per-dialog event limits use the same mechanism."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from tenants.autopipe import AutoPipeline
from tenants.clock import Clock

# KEYS[1] bucket; ARGV now, rate (per second), burst, best_effort (1 = do not queue).
# Returns the seconds to wait before the request may go (0 = go now), or -1 = not taken.
_TAKE = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or 0
local at = tonumber(state[2]) or now
if now > at then
  level = math.max(0, level - (now - at) * rate)
  at = now
end
local wait = (level + 1 - burst) / rate
if wait > 0 and ARGV[4] == '1' then
  return '-1'
end
level = level + 1
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
if wait < 0 then wait = 0 end
return tostring(wait)
"""


# KEYS: the buckets; ARGV now, then rate and burst per bucket. Takes a place in each bucket and
# returns the longest wait: several buckets in one round trip, with no script check beforehand.
_TAKE_ALL = """
local now = tonumber(ARGV[1])
local longest = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'level', 'at')
  local level = tonumber(state[1]) or 0
  local at = tonumber(state[2]) or now
  if now > at then
    level = math.max(0, level - (now - at) * rate)
    at = now
  end
  local wait = (level + 1 - burst) / rate
  if wait > longest then longest = wait end
  redis.call('HSET', key, 'level', tostring(level + 1), 'at', tostring(at))
  redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
end
return tostring(longest)
"""


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    @classmethod
    def per_minute(cls, count: int) -> Rate:
        return cls(per_second=count / 60.0, burst=max(1, count))


class Buckets:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock
        self._take: Any = redis.register_script(_TAKE)
        self._take_all_sha = hashlib.sha1(_TAKE_ALL.encode()).hexdigest()  # noqa: S324 - Redis's id
        self._batched = AutoPipeline.of(redis)

    async def reserve(self, key: str, rate: Rate, best_effort: bool = False) -> float:
        """Take a place in ``key``'s bucket: the seconds until it is ours, or -1 if refused."""
        args = [self._clock.now(), rate.per_second, rate.burst, "1" if best_effort else "0"]
        return float(await self._take(keys=[key], args=args))

    async def reserve_all(self, wanted: list[tuple[str, Rate]]) -> float:
        """Take a place in each bucket in one round trip; the longest wait among them."""
        if not wanted:
            return 0.0
        args: list[float] = [self._clock.now()]
        for _, rate in wanted:
            args += [rate.per_second, rate.burst]
        keys = [key for key, _ in wanted]
        command = ("EVALSHA", self._take_all_sha, len(keys), *keys, *args)
        try:
            return float(await self._batched.call(*command))
        except NoScriptError:  # a restarted or flushed Redis: load the script, then run it
            await self._redis.script_load(_TAKE_ALL)
            return float(await self._batched.call(*command))

    async def fill(self, key: str, rate: Rate) -> None:
        """Mark the bucket full now, so every process backs off."""
        await self._redis.hset(
            key, mapping={"level": str(rate.burst), "at": str(self._clock.now())}
        )
