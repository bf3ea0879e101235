"""Plans, subscriptions, usage metering and quota checks; the gateway sees only the seam."""

from billing.enforcement import PlanBilling, build_billing
from billing.errors import (
    BillingError,
    NoSubscription,
    PlanError,
    SubscriptionError,
    UnknownPlan,
)
from billing.jobs import run_billing_jobs
from billing.metering import DailyUsage, Meter, UsageTotals
from billing.notices import AdminNotifier, Bitrix24AdminNotifier
from billing.plans import (
    Plan,
    PlanSpec,
    create_plan,
    default_trial_plan,
    delete_plan,
    get_plan,
    list_plans,
    plan_by_code,
    update_plan,
)
from billing.seam import (
    Allow,
    Billing,
    Deny,
    RateLimits,
    TurnUsage,
    UnlimitedPlan,
    Verdict,
)
from billing.states import Subscription
from billing.subscriptions import Subscriptions

__all__ = [
    "AdminNotifier",
    "Allow",
    "Billing",
    "BillingError",
    "Bitrix24AdminNotifier",
    "DailyUsage",
    "Deny",
    "Meter",
    "NoSubscription",
    "Plan",
    "PlanBilling",
    "PlanError",
    "PlanSpec",
    "RateLimits",
    "Subscription",
    "SubscriptionError",
    "Subscriptions",
    "TurnUsage",
    "UnknownPlan",
    "UnlimitedPlan",
    "UsageTotals",
    "Verdict",
    "build_billing",
    "create_plan",
    "default_trial_plan",
    "delete_plan",
    "get_plan",
    "list_plans",
    "plan_by_code",
    "run_billing_jobs",
    "update_plan",
]
