"""The operator's trail: one ``audit_log`` row per console or API action, and its search.

Billing changes commit in their own transaction (``billing`` owns it), so their row is written
right after; a provider or token change writes its row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tenants.schema import audit_log, operators, utcnow

PER_PAGE = 50


@dataclass(frozen=True)
class Actor:
    """The operator acting, and through which door (``console`` or ``api`` with a token id)."""

    operator_id: int
    email: str
    via: str = "console"
    token_id: int | None = None

    def details(self) -> dict[str, Any]:
        if self.token_id is None:
            return {"via": self.via}
        return {"via": self.via, "token": self.token_id}


async def record(
    connection: AsyncConnection,
    actor: Actor,
    action: str,
    target: str = "",
    *,
    tenant_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await connection.execute(
        sa.insert(audit_log).values(
            at=utcnow(),
            actor_type="operator",
            actor_id=str(actor.operator_id),
            tenant_id=tenant_id,
            action=action,
            target=target[:128],
            details={**actor.details(), **(details or {})},
        )
    )


async def record_now(
    engine: AsyncEngine,
    actor: Actor,
    action: str,
    target: str = "",
    *,
    tenant_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    async with engine.begin() as connection:
        await record(connection, actor, action, target, tenant_id=tenant_id, details=details)


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    actor_type: str = ""
    operator: str = ""  # an operator's e-mail (or part of it)
    tenant_id: int | None = None
    page: int = 1


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_type: str
    actor_id: str
    actor_email: str | None
    tenant_id: int | None
    action: str
    target: str
    details: dict[str, Any]


async def search(
    engine: AsyncEngine, wanted: AuditFilter, per_page: int = PER_PAGE
) -> tuple[list[AuditEntry], int]:
    """Newest first; ``(entries of the page, total matching)``."""
    joined = audit_log.outerjoin(
        operators,
        sa.and_(
            audit_log.c.actor_type == "operator",
            audit_log.c.actor_id == sa.cast(operators.c.id, sa.String),
        ),
    )
    where: list[sa.ColumnElement[bool]] = []
    if wanted.action:
        where.append(audit_log.c.action == wanted.action)
    if wanted.actor_type:
        where.append(audit_log.c.actor_type == wanted.actor_type)
    if wanted.operator:
        where.append(operators.c.email.contains(wanted.operator.lower(), autoescape=True))
    if wanted.tenant_id is not None:
        where.append(audit_log.c.tenant_id == wanted.tenant_id)
    query = (
        sa.select(audit_log, operators.c.email.label("actor_email"))
        .select_from(joined)
        .where(*where)
        .order_by(audit_log.c.id.desc())
        .limit(per_page)
        .offset((max(wanted.page, 1) - 1) * per_page)
    )
    count = sa.select(sa.func.count()).select_from(joined).where(*where)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
        total = int(await connection.scalar(count) or 0)
    return [AuditEntry(**row._mapping) for row in rows], total


async def known_actions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        found = await connection.scalars(
            sa.select(audit_log.c.action).distinct().order_by(audit_log.c.action)
        )
        return list(found)
