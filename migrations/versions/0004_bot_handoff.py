"""bots: hand the chat to an operator when the bot cannot answer (off by default)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00.000000

Plain ``ADD COLUMN`` / ``DROP COLUMN`` on both backends, not a batch table copy: SQLite's copy
drops and renames ``bots``, and with foreign keys on that would cascade into ``commands``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "bots",
        sa.Column("handoff_on_failure", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("bots", "handoff_on_failure")
