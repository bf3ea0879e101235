"""The console's own table, on the shared ``MetaData`` (migration 0003).

``operator_tokens``: API tokens for automation. Only an HMAC of the token is stored (keyed by a
key derived from ``BITBOT_HASH_KEY``); the token itself is shown once, when it is created.
"""

from __future__ import annotations

import sqlalchemy as sa

from tenants.schema import UTCDateTime, metadata

operator_tokens = sa.Table(
    "operator_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "operator_id",
        sa.ForeignKey("operators.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime()),
    sa.Column("revoked_at", UTCDateTime()),
)
