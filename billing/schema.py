"""Billing tables, on the same ``MetaData`` as the rest of the schema (migration 0002).

- ``plans``: what the operator sells. ``monthly_messages`` / ``max_bots`` NULL = unlimited.
  A partial unique index allows at most one default trial plan; ``billing.plans`` keeps exactly one.
- ``subscriptions``: one per tenant. ``state`` is derived from the facts beside it (trial end,
  licence lapse and grace, an operator's suspension, cancellation) by ``billing.periods``.
- ``usage_daily``: per tenant and UTC day; no foreign key, so usage outlives a deleted tenant
  (DESIGN §7: usage stays for billing).
- ``usage_flushes``: the ledger of applied metering flushes; a flush id is applied once, so a
  flush that died after its database commit is never counted twice (``billing.metering``).
- ``quota_notices``: one row per tenant, period and threshold; its unique key makes each
  80 % / 100 % notice go out once per period, whichever process sees the crossing.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from tenants.schema import Json, UTCDateTime, metadata

SUBSCRIPTION_STATES = ("trial", "active", "past_due", "suspended", "cancelled")
SUSPEND_REASONS = ("operator", "trial_ended", "licence_lapsed")
QUOTA_THRESHOLDS = (80, 100)
USAGE_FIELDS = ("messages_in", "replies_out", "prompt_tokens", "completion_tokens")


def _stamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def _allowed(column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=f"{column}_allowed")


plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("monthly_messages", sa.Integer),
    sa.Column("max_bots", sa.Integer),
    sa.Column("events_per_minute_tenant", sa.Integer, nullable=False),
    sa.Column("events_per_minute_dialog", sa.Integer, nullable=False),
    sa.Column("features", Json, nullable=False),
    # {"en": "…", "ru": "…"}: what a customer is told once the quota is used up.
    sa.Column("over_quota_text", Json, nullable=False),
    sa.Column("is_default_trial", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("trial_days", sa.Integer, nullable=False, server_default="0"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    *_stamps(),
    sa.CheckConstraint(
        "monthly_messages IS NULL OR monthly_messages >= 0", name="monthly_messages_non_negative"
    ),
    sa.CheckConstraint("max_bots IS NULL OR max_bots >= 0", name="max_bots_non_negative"),
    sa.CheckConstraint("events_per_minute_tenant > 0", name="events_per_minute_tenant_positive"),
    sa.CheckConstraint("events_per_minute_dialog > 0", name="events_per_minute_dialog_positive"),
    sa.CheckConstraint("trial_days >= 0", name="trial_days_non_negative"),
)
sa.Index(
    "ix_plans_one_default_trial",
    plans.c.is_default_trial,
    unique=True,
    postgresql_where=sa.text("is_default_trial"),
    sqlite_where=sa.text("is_default_trial"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "tenant_id",
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column(
        "plan_id", sa.ForeignKey("plans.id", ondelete="RESTRICT"), nullable=False, index=True
    ),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("suspend_reason", sa.String(16)),
    # Periods run from midnight UTC on this day of the month (clamped to short months).
    sa.Column("billing_day", sa.SmallInteger, nullable=False),
    sa.Column("period_start", UTCDateTime(), nullable=False),
    sa.Column("period_end", UTCDateTime(), nullable=False),
    sa.Column("trial_end", UTCDateTime()),
    sa.Column("grace_until", UTCDateTime()),
    sa.Column("licence_lapsed_at", UTCDateTime()),
    sa.Column("cancelled_at", UTCDateTime()),
    *_stamps(),
    _allowed("state", SUBSCRIPTION_STATES),
    _allowed("suspend_reason", SUSPEND_REASONS),
    sa.CheckConstraint("billing_day BETWEEN 1 AND 31", name="billing_day_in_month"),
    sa.CheckConstraint("period_end > period_start", name="period_not_empty"),
)

usage_daily = sa.Table(
    "usage_daily",
    metadata,
    sa.Column("tenant_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in USAGE_FIELDS),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

usage_flushes = sa.Table(
    "usage_flushes",
    metadata,
    sa.Column("flush_id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.Integer, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False, index=True),
)

quota_notices = sa.Table(
    "quota_notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    sa.Column("period_start", UTCDateTime(), nullable=False),
    sa.Column("threshold", sa.SmallInteger, nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "period_start", "threshold"),
    sa.CheckConstraint("threshold IN (80, 100)", name="threshold_allowed"),
)
