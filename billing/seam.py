"""The only way the gateway talks to billing (DESIGN §9).

Until plans and metering land, one unlimited default plan stands behind it, so the pipeline does
not change when billing arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Deny:
    text: str  # what the customer is told instead of a bot answer


Verdict = Allow | Deny


@dataclass(frozen=True)
class RateLimits:
    events_per_minute_per_tenant: int
    events_per_minute_per_dialog: int


@dataclass(frozen=True)
class TurnUsage:
    messages_in: int = 0
    replies_out: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Billing(Protocol):
    async def check_turn(self, tenant_id: int) -> Verdict: ...

    async def limits(self, tenant_id: int) -> RateLimits: ...

    async def record(self, tenant_id: int, usage: TurnUsage) -> None: ...


DEFAULT_LIMITS = RateLimits(events_per_minute_per_tenant=1200, events_per_minute_per_dialog=30)


class UnlimitedPlan:
    """Every turn allowed, generous rate limits, usage not recorded."""

    async def check_turn(self, tenant_id: int) -> Verdict:
        return Allow()

    async def limits(self, tenant_id: int) -> RateLimits:
        return DEFAULT_LIMITS

    async def record(self, tenant_id: int, usage: TurnUsage) -> None:
        return None
