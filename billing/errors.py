"""Errors raised by the billing package; every message says what was refused and why.

BillingError
├── PlanError              a plan edit would break an invariant (negative quota, plan in use, …)
│   └── UnknownPlan        no plan has that id or code
└── SubscriptionError      a subscription change that its current state does not allow
    └── NoSubscription     the tenant has no subscription (or does not exist)
"""

from __future__ import annotations

from tenants.errors import BitBotError


class BillingError(BitBotError):
    """Base of the billing errors."""


class PlanError(BillingError):
    pass


class UnknownPlan(PlanError):
    pass


class SubscriptionError(BillingError):
    pass


class NoSubscription(SubscriptionError):
    pass
