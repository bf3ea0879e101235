"""Plans, subscriptions, usage metering and quota checks; the gateway sees only the seam."""

from billing.seam import (
    Allow,
    Billing,
    Deny,
    RateLimits,
    TurnUsage,
    UnlimitedPlan,
    Verdict,
)

__all__ = ["Allow", "Billing", "Deny", "RateLimits", "TurnUsage", "UnlimitedPlan", "Verdict"]
