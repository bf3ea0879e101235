"""The tenants as the operator sees them: a searchable table, and one tenant's facts, bots,
subscription, and recent errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.operator.errors import NotFound
from billing.schema import SUBSCRIPTION_STATES, plans, subscriptions
from tenants.schema import TENANT_STATUSES, bots, connectors, providers, tenants
from tenants.store import Tenant, TenantStore

PER_PAGE = 25


@dataclass(frozen=True)
class TenantFilter:
    query: str = ""
    status: str = ""  # the portal's install status
    state: str = ""  # the subscription's state
    plan: str = ""  # a plan code
    page: int = 1

    def cleaned(self) -> TenantFilter:
        return TenantFilter(
            query=self.query.strip()[:255],
            status=self.status if self.status in TENANT_STATUSES else "",
            state=self.state if self.state in SUBSCRIPTION_STATES else "",
            plan=self.plan.strip()[:32],
            page=max(self.page, 1),
        )


@dataclass(frozen=True)
class TenantRow:
    id: int
    member_id: str
    domain: str
    status: str
    attention_reason: str | None
    installed_at: datetime | None
    state: str | None
    suspend_reason: str | None
    plan_code: str | None
    plan_name: str | None


@dataclass(frozen=True)
class TenantPage:
    rows: list[TenantRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


@dataclass(frozen=True)
class BotRow:
    id: int
    name: str
    code: str
    type: str
    api_version: int
    event_mode: str
    b24_bot_id: int | None
    registration_state: str
    registration_error: str | None
    handoff_on_failure: bool
    connector: str
    provider: str
    provider_type: str


class TenantDirectory:
    def __init__(self, engine: AsyncEngine, store: TenantStore) -> None:
        self._engine = engine
        self._store = store

    async def search(self, wanted: TenantFilter, per_page: int = PER_PAGE) -> TenantPage:
        wanted = wanted.cleaned()
        joined = tenants.outerjoin(
            subscriptions, subscriptions.c.tenant_id == tenants.c.id
        ).outerjoin(plans, plans.c.id == subscriptions.c.plan_id)
        where = _conditions(wanted)
        query = (
            sa.select(
                tenants.c.id,
                tenants.c.member_id,
                tenants.c.domain,
                tenants.c.status,
                tenants.c.attention_reason,
                tenants.c.installed_at,
                subscriptions.c.state,
                subscriptions.c.suspend_reason,
                plans.c.code.label("plan_code"),
                plans.c.name.label("plan_name"),
            )
            .select_from(joined)
            .where(*where)
            .order_by(tenants.c.id.desc())
            .limit(per_page)
            .offset((wanted.page - 1) * per_page)
        )
        count = sa.select(sa.func.count()).select_from(joined).where(*where)
        async with self._engine.connect() as connection:
            rows = [TenantRow(**row._mapping) for row in await connection.execute(query)]
            total = int(await connection.scalar(count) or 0)
        return TenantPage(rows, total, wanted.page, per_page)

    async def get(self, tenant_id: int) -> Tenant:
        tenant = await self._store.get(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant has id {tenant_id}")
        return tenant

    async def bots(self, tenant_id: int) -> list[BotRow]:
        query = (
            sa.select(
                bots.c.id,
                bots.c.name,
                bots.c.code,
                bots.c.type,
                bots.c.api_version,
                bots.c.event_mode,
                bots.c.b24_bot_id,
                bots.c.registration_state,
                bots.c.registration_error,
                bots.c.handoff_on_failure,
                connectors.c.name.label("connector"),
                providers.c.name.label("provider"),
                providers.c.type.label("provider_type"),
            )
            .select_from(
                bots.join(connectors, connectors.c.id == bots.c.connector_id).join(
                    providers, providers.c.id == connectors.c.provider_id
                )
            )
            .where(bots.c.tenant_id == tenant_id)
            .order_by(bots.c.id)
        )
        async with self._engine.connect() as connection:
            return [BotRow(**row._mapping) for row in await connection.execute(query)]


def _conditions(wanted: TenantFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if wanted.query:
        text = wanted.query.lower()
        where.append(
            sa.or_(
                sa.func.lower(tenants.c.domain).contains(text, autoescape=True),
                tenants.c.member_id == wanted.query,
                _id_match(wanted.query),
            )
        )
    if wanted.status:
        where.append(tenants.c.status == wanted.status)
    if wanted.state:
        where.append(subscriptions.c.state == wanted.state)
    if wanted.plan == "-":
        where.append(subscriptions.c.id.is_(None))
    elif wanted.plan:
        where.append(plans.c.code == wanted.plan)
    return where


def _id_match(query: str) -> sa.ColumnElement[bool]:
    digits = query.lstrip("#")
    if digits.isdigit() and len(digits) < 10:
        return tenants.c.id == int(digits)
    return sa.false()


def row_dict(row: Any) -> dict[str, Any]:
    """A dataclass row as JSON-ready values (datetimes as ISO 8601)."""
    values: dict[str, Any] = dict(row.__dict__)
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.isoformat()
    return values
