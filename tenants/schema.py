"""The database schema (SQLAlchemy Core), one definition for PostgreSQL and SQLite.

Columns typed ``Sealed`` hold vault ciphertext (see ``tenants.vault``); the vault binds each
value to ``tenant:{tenant_id}:{table}.{column}``, so table and column names are part of the format.
Billing tables arrive with the billing package's migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite would otherwise hand back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


Sealed = sa.LargeBinary
Json: sa.types.TypeEngine[Any] = sa.JSON().with_variant(JSONB(), "postgresql")

PROVIDER_TYPES = ("dify_chatflow", "dify_workflow", "typebot")
TENANT_STATUSES = ("installing", "active", "needs_attention", "uninstalled")
BOT_TYPES = ("openline", "bot")
EVENT_MODES = ("webhook", "fetch")
REGISTRATION_STATES = ("pending", "registered", "failed")
ACTOR_TYPES = ("operator", "portal_user", "system")


def _one_of(column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_allowed")


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("member_id", sa.String(64), nullable=False, unique=True),
    sa.Column("domain", sa.String(255), nullable=False),
    sa.Column("client_endpoint", sa.String(512), nullable=False),
    sa.Column("server_endpoint", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attention_reason", sa.String(64)),
    sa.Column("scope", sa.Text, nullable=False, server_default=""),
    sa.Column("bot_api_version", sa.SmallInteger),
    sa.Column("app_status", sa.String(1)),
    sa.Column("language", sa.String(8)),
    # HMAC of auth[application_token]; the token itself is never stored.
    sa.Column("application_token_hash", sa.LargeBinary(32)),
    sa.Column("installed_at", UTCDateTime()),
    sa.Column("uninstalled_at", UTCDateTime()),
    *_timestamps(),
    _one_of("status", TENANT_STATUSES),
    sa.CheckConstraint("bot_api_version IN (1, 2)", name="bot_api_version_allowed"),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("tenant_id", sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.Integer),
    sa.Column("access_token", Sealed, nullable=False),
    sa.Column("refresh_token", Sealed, nullable=False),
    sa.Column("access_expires_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

providers = sa.Table(
    "providers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("base_url", sa.String(512), nullable=False),
    *_timestamps(),
    _one_of("type", PROVIDER_TYPES),
)

connectors = sa.Table(
    "connectors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "tenant_id", sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("provider_id", sa.ForeignKey("providers.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("api_key", Sealed),
    sa.Column("base_url", sa.String(512)),
    sa.Column("typebot_start_url", sa.String(1024)),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "name"),
)

bots = sa.Table(
    "bots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "tenant_id", sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("connector_id", sa.ForeignKey("connectors.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("b24_bot_id", sa.Integer),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("api_version", sa.SmallInteger, nullable=False),
    sa.Column("event_mode", sa.String(16), nullable=False, server_default="webhook"),
    sa.Column("color", sa.String(16)),
    sa.Column("avatar_url", sa.String(1024)),
    sa.Column("batch_delay_ms", sa.Integer, nullable=False, server_default="0"),
    sa.Column("session_ttl_s", sa.Integer, nullable=False, server_default="86400"),
    sa.Column("pass_tokens", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("fallback_text", sa.Text, nullable=False, server_default=""),
    # Open Channels: after the fallback text, hand the chat to an operator (migration 0004).
    sa.Column("handoff_on_failure", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("registration_state", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("registration_error", sa.Text),
    # Fetch mode: the last imbot.v2.Event.get eventId committed after enqueueing.
    sa.Column("fetch_offset", sa.BigInteger),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "code"),
    sa.UniqueConstraint("tenant_id", "b24_bot_id"),
    _one_of("type", BOT_TYPES),
    _one_of("event_mode", EVENT_MODES),
    _one_of("registration_state", REGISTRATION_STATES),
    sa.CheckConstraint("api_version IN (1, 2)", name="api_version_allowed"),
    sa.CheckConstraint("batch_delay_ms >= 0", name="batch_delay_ms_non_negative"),
    sa.CheckConstraint("session_ttl_s > 0", name="session_ttl_s_positive"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # tenant_id repeats the bot's tenant so every lookup can be scoped to the caller's tenant.
    sa.Column(
        "tenant_id", sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("bot_id", sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("common", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("extranet", sa.Boolean, nullable=False, server_default=sa.false()),
    # [{"language": "en", "title": "…", "params": "…"}, …]
    sa.Column("texts", Json, nullable=False),
    sa.Column("b24_command_id", sa.Integer),
    *_timestamps(),
    sa.UniqueConstraint("bot_id", "command"),
)

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", UTCDateTime()),
    *_timestamps(),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("actor_type", sa.String(16), nullable=False),
    sa.Column("actor_id", sa.String(64), nullable=False),
    # No foreign key: the trail outlives a deleted tenant.
    sa.Column("tenant_id", sa.Integer, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(128), nullable=False, server_default=""),
    sa.Column("details", Json, nullable=False),
    _one_of("actor_type", ACTOR_TYPES),
)


def utcnow() -> datetime:
    return datetime.now(UTC)
