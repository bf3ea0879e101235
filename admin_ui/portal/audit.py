"""Who changed what: one ``audit_log`` row per change, written in the change's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenants.schema import audit_log, utcnow


@dataclass(frozen=True)
class Actor:
    """The portal user acting, and the tenant every id they name must belong to."""

    tenant_id: int
    user_id: int
    admin: bool = True
    language: str = "en"


async def record(
    connection: AsyncConnection,
    actor: Actor,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> None:
    await connection.execute(
        sa.insert(audit_log).values(
            at=utcnow(),
            actor_type="portal_user",
            actor_id=str(actor.user_id),
            tenant_id=actor.tenant_id,
            action=action,
            target=target,
            details=details or {},
        )
    )
