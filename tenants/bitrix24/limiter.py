"""The per-portal outbound budget: Bitrix24's leaky bucket, mirrored in Redis for all processes.

Bitrix24 adds one per request, drains ``rate`` per second and refuses above ``burst``. Every process
that talks to a portal takes its requests from the same Redis bucket, so together they stay under
the portal's limit. The bucket is kept a little below Bitrix24's, because the portal's own clock
and other apps sharing our egress IP count too.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from tenants.buckets import Buckets, Rate
from tenants.clock import Clock
from tenants.metrics import LIMITER_WAIT_SECONDS, RATE_LIMIT_HITS

SAFETY_MARGIN = 2


@dataclass(frozen=True)
class Budget:
    rate: float = 2.0
    burst: int = 50

    @classmethod
    def enterprise(cls) -> Budget:
        return cls(rate=5.0, burst=250)

    @property
    def usable(self) -> Rate:
        return Rate(self.rate, max(1, self.burst - SAFETY_MARGIN))


class PortalLimiter:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self._buckets = Buckets(redis, clock)
        self._clock = clock

    async def acquire(self, member_id: str, budget: Budget, best_effort: bool = False) -> bool:
        """Wait until the portal's bucket has room; a best-effort request is dropped instead."""
        wait = await self._buckets.reserve(_key(member_id), budget.usable, best_effort)
        if wait < 0:
            return False
        if wait > 0:
            RATE_LIMIT_HITS.labels("portal_budget").inc()
            LIMITER_WAIT_SECONDS.labels("portal_budget").observe(wait)
            await self._clock.sleep(wait)
        return True

    async def penalize(self, member_id: str, budget: Budget) -> None:
        """Bitrix24 said the bucket is full: mark ours full too, so every process backs off."""
        await self._buckets.fill(_key(member_id), budget.usable)


def _key(member_id: str) -> str:
    return f"bitbot:b24:bucket:{member_id}"
