"""The per-portal outbound budget: Bitrix24's leaky bucket, mirrored in Redis for all processes.

Bitrix24 adds one per request, drains ``rate`` per second and refuses above ``burst``. Every process
that talks to a portal takes its requests from the same Redis bucket, so together they stay under
the portal's limit. The bucket is kept a little below Bitrix24's, because the portal's own clock
and other apps sharing our egress IP count too.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from tenants.clock import Clock

SAFETY_MARGIN = 2

# KEYS[1] bucket; ARGV now, rate, burst, best_effort (1 = do not queue).
# Returns the seconds to wait before the request may go (0 = go now), or -1 = dropped.
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


@dataclass(frozen=True)
class Budget:
    rate: float = 2.0
    burst: int = 50

    @classmethod
    def enterprise(cls) -> Budget:
        return cls(rate=5.0, burst=250)


class PortalLimiter:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock
        self._take = redis.register_script(_TAKE)

    async def acquire(self, member_id: str, budget: Budget, best_effort: bool = False) -> bool:
        """Wait until the portal's bucket has room; a best-effort request is dropped instead."""
        wait = await self._reserve(member_id, budget, best_effort)
        if wait < 0:
            return False
        if wait > 0:
            await self._clock.sleep(wait)
        return True

    async def penalize(self, member_id: str, budget: Budget) -> None:
        """Bitrix24 said the bucket is full: mark ours full too, so every process backs off."""
        level = str(_usable_burst(budget))
        await self._redis.hset(
            _key(member_id), mapping={"level": level, "at": str(self._clock.now())}
        )

    async def _reserve(self, member_id: str, budget: Budget, best_effort: bool) -> float:
        args = [self._clock.now(), budget.rate, _usable_burst(budget), "1" if best_effort else "0"]
        result = await self._take(keys=[_key(member_id)], args=args)
        return float(result)


def _usable_burst(budget: Budget) -> int:
    return max(1, budget.burst - SAFETY_MARGIN)


def _key(member_id: str) -> str:
    return f"bitbot:b24:bucket:{member_id}"
