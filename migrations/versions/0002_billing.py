"""billing: plans (seeded), subscriptions, daily usage, the flush ledger, quota notices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:41:06.954994
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OVER_QUOTA = {
    "en": "Sorry, the assistant cannot answer right now. Our team will get back to you soon.",
    "ru": "Извините, ассистент сейчас не может ответить. Наши сотрудники скоро ответят вам.",
}
SEED_PLANS = [
    {
        "code": "trial",
        "name": "Free trial",
        "monthly_messages": 300,
        "max_bots": 1,
        "events_per_minute_tenant": 60,
        "events_per_minute_dialog": 20,
        "features": {},
        "is_default_trial": True,
        "trial_days": 14,
    },
    {
        "code": "starter",
        "name": "Starter",
        "monthly_messages": 3000,
        "max_bots": 3,
        "events_per_minute_tenant": 300,
        "events_per_minute_dialog": 30,
        "features": {},
        "is_default_trial": False,
        "trial_days": 0,
    },
    {
        "code": "business",
        "name": "Business",
        "monthly_messages": 30000,
        "max_bots": 20,
        "events_per_minute_tenant": 1200,
        "events_per_minute_dialog": 30,
        "features": {"priority_support": True},
        "is_default_trial": False,
        "trial_days": 0,
    },
]


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("monthly_messages", sa.Integer(), nullable=True),
        sa.Column("max_bots", sa.Integer(), nullable=True),
        sa.Column("events_per_minute_tenant", sa.Integer(), nullable=False),
        sa.Column("events_per_minute_dialog", sa.Integer(), nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("over_quota_text", JSON, nullable=False),
        sa.Column("is_default_trial", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("trial_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "events_per_minute_dialog > 0",
            name=op.f("ck_plans_events_per_minute_dialog_positive"),
        ),
        sa.CheckConstraint(
            "events_per_minute_tenant > 0",
            name=op.f("ck_plans_events_per_minute_tenant_positive"),
        ),
        sa.CheckConstraint(
            "max_bots IS NULL OR max_bots >= 0", name=op.f("ck_plans_max_bots_non_negative")
        ),
        sa.CheckConstraint(
            "monthly_messages IS NULL OR monthly_messages >= 0",
            name=op.f("ck_plans_monthly_messages_non_negative"),
        ),
        sa.CheckConstraint("trial_days >= 0", name=op.f("ck_plans_trial_days_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_plans_code")),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_index(
            "ix_plans_one_default_trial",
            ["is_default_trial"],
            unique=True,
            postgresql_where=sa.text("is_default_trial"),
            sqlite_where=sa.text("is_default_trial"),
        )

    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("messages_in", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("replies_out", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", name=op.f("pk_usage_daily")),
    )
    op.create_table(
        "usage_flushes",
        sa.Column("flush_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("flush_id", name=op.f("pk_usage_flushes")),
    )
    with op.batch_alter_table("usage_flushes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_flushes_applied_at"), ["applied_at"], unique=False
        )

    op.create_table(
        "quota_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("threshold", sa.SmallInteger(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "threshold IN (80, 100)", name=op.f("ck_quota_notices_threshold_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_quota_notices_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_notices")),
        sa.UniqueConstraint(
            "tenant_id",
            "period_start",
            "threshold",
            name=op.f("uq_quota_notices_tenant_id_period_start_threshold"),
        ),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("suspend_reason", sa.String(length=16), nullable=True),
        sa.Column("billing_day", sa.SmallInteger(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("licence_lapsed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('trial', 'active', 'past_due', 'suspended', 'cancelled')",
            name=op.f("ck_subscriptions_state_allowed"),
        ),
        sa.CheckConstraint(
            "suspend_reason IN ('operator', 'trial_ended', 'licence_lapsed')",
            name=op.f("ck_subscriptions_suspend_reason_allowed"),
        ),
        sa.CheckConstraint(
            "billing_day BETWEEN 1 AND 31", name=op.f("ck_subscriptions_billing_day_in_month")
        ),
        sa.CheckConstraint(
            "period_end > period_start", name=op.f("ck_subscriptions_period_not_empty")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_subscriptions_plan_id_plans"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_subscriptions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_subscriptions_tenant_id")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_plan_id"), ["plan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_state"), ["state"], unique=False)

    now = datetime.now(UTC)
    op.bulk_insert(
        plans,
        [
            {
                **plan,
                "over_quota_text": OVER_QUOTA,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
            for plan in SEED_PLANS
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_state"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_plan_id"))

    op.drop_table("subscriptions")
    op.drop_table("quota_notices")
    with op.batch_alter_table("usage_flushes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_flushes_applied_at"))

    op.drop_table("usage_flushes")
    op.drop_table("usage_daily")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_plans_one_default_trial",
            postgresql_where=sa.text("is_default_trial"),
            sqlite_where=sa.text("is_default_trial"),
        )

    op.drop_table("plans")
