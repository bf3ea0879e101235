"""Plans the operator sells, edited through plain async functions that keep the invariants:

- quotas and limits are never negative (NULL quota / max bots = unlimited), rates at least 1/min;
- exactly one default trial plan, active, with at least one trial day (making another plan the
  default moves the mark; unmarking or deleting the default is refused);
- a plan some subscription uses cannot be deleted (deactivate it instead).

Every refusal raises ``PlanError`` whose message says what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing.errors import PlanError, UnknownPlan
from billing.schema import plans, subscriptions
from tenants.db import reading
from tenants.schema import utcnow

CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_TEXT = 2000
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True, kw_only=True)
class PlanSpec:
    """What the operator edits."""

    code: str
    name: str
    monthly_messages: int | None
    max_bots: int | None
    events_per_minute_tenant: int
    events_per_minute_dialog: int
    features: Mapping[str, bool] = field(default_factory=dict)
    over_quota_text: Mapping[str, str] = field(default_factory=dict)
    is_default_trial: bool = False
    trial_days: int = 0
    active: bool = True


@dataclass(frozen=True, kw_only=True)
class Plan(PlanSpec):
    id: int
    created_at: datetime
    updated_at: datetime

    @property
    def spec(self) -> PlanSpec:
        return PlanSpec(**{f.name: getattr(self, f.name) for f in fields(PlanSpec)})

    def over_quota_text_in(self, language: str | None) -> str:
        """The over-quota text in ``language``, else English, else any language given."""
        texts = self.over_quota_text
        for candidate in ((language or "").lower()[:2], FALLBACK_LANGUAGE):
            if texts.get(candidate):
                return texts[candidate]
        return next(iter(texts.values()), "")


def validate(spec: PlanSpec) -> None:
    """Raise ``PlanError`` naming the first broken rule."""
    if not CODE.fullmatch(spec.code):
        raise PlanError(
            f"plan code {spec.code!r} must be 1-32 lowercase letters, digits, '-' or '_'"
        )
    if not spec.name.strip() or len(spec.name) > 100:
        raise PlanError("a plan needs a name of 1 to 100 characters")
    for label, value in (
        ("monthly message quota", spec.monthly_messages),
        ("maximum number of bots", spec.max_bots),
    ):
        if value is not None and value < 0:
            raise PlanError(
                f"the {label} cannot be negative (got {value}); leave it empty for unlimited"
            )
    for label, rate in (
        ("events per minute per tenant", spec.events_per_minute_tenant),
        ("events per minute per dialog", spec.events_per_minute_dialog),
    ):
        if rate < 1:
            raise PlanError(f"{label} must be at least 1 (got {rate})")
    if spec.trial_days < 0:
        raise PlanError(f"trial days cannot be negative (got {spec.trial_days})")
    if spec.is_default_trial and (spec.trial_days < 1 or not spec.active):
        raise PlanError("the default trial plan must be active and last at least one day")
    _validate_texts(spec.over_quota_text)
    if not all(isinstance(k, str) and isinstance(v, bool) for k, v in spec.features.items()):
        raise PlanError("feature flags map names to true or false")


def _validate_texts(texts: Mapping[str, str]) -> None:
    if not texts:
        raise PlanError("a plan needs an over-quota text in at least one language")
    for language, text in texts.items():
        if not re.fullmatch(r"[a-z]{2}", language):
            raise PlanError(f"over-quota text language {language!r} must be a two-letter code")
        if not text.strip() or len(text) > MAX_TEXT:
            raise PlanError(f"the over-quota text ({language}) must be 1 to {MAX_TEXT} characters")


async def list_plans(engine: AsyncEngine, *, active_only: bool = False) -> list[Plan]:
    query = sa.select(plans).order_by(plans.c.id)
    if active_only:
        query = query.where(plans.c.active)
    async with engine.connect() as connection:
        return [_plan(row) for row in await connection.execute(query)]


async def get_plan(
    engine: AsyncEngine, plan_id: int, connection: AsyncConnection | None = None
) -> Plan:
    async with reading(engine, connection) as reader:
        return await _load(reader, plans.c.id == plan_id, f"no plan has id {plan_id}")


async def plan_by_code(engine: AsyncEngine, code: str) -> Plan:
    async with engine.connect() as connection:
        return await _load(connection, plans.c.code == code, f"no plan has code {code!r}")


async def default_trial_plan(engine: AsyncEngine) -> Plan:
    async with engine.connect() as connection:
        return await _load(connection, plans.c.is_default_trial, "no default trial plan is set")


async def create_plan(engine: AsyncEngine, spec: PlanSpec) -> Plan:
    validate(spec)
    now = utcnow()
    try:
        async with engine.begin() as connection:
            await _refuse_taken_code(connection, spec.code, None)
            if spec.is_default_trial:
                await _unmark_default(connection, now)
            plan_id = await connection.scalar(
                sa.insert(plans)
                .values(**_columns(spec), created_at=now, updated_at=now)
                .returning(plans.c.id)
            )
            return await _load(connection, plans.c.id == plan_id, "")
    except IntegrityError:
        raise PlanError(f"plan {spec.code!r} conflicts with a concurrent change; retry") from None


async def update_plan(engine: AsyncEngine, plan_id: int, spec: PlanSpec) -> Plan:
    validate(spec)
    now = utcnow()
    try:
        async with engine.begin() as connection:
            current = await _load(
                connection, plans.c.id == plan_id, f"no plan has id {plan_id}", lock=True
            )
            await _refuse_taken_code(connection, spec.code, plan_id)
            if current.is_default_trial and not spec.is_default_trial:
                raise PlanError(
                    f"plan {current.code!r} is the default trial plan and there must be one: "
                    "mark another plan as the default trial instead"
                )
            if spec.is_default_trial and not current.is_default_trial:
                await _unmark_default(connection, now)
            await connection.execute(
                sa.update(plans)
                .where(plans.c.id == plan_id)
                .values(**_columns(spec), updated_at=now)
            )
            return await _load(connection, plans.c.id == plan_id, "")
    except IntegrityError:
        raise PlanError(f"plan {spec.code!r} conflicts with a concurrent change; retry") from None


async def delete_plan(engine: AsyncEngine, plan_id: int) -> None:
    try:
        async with engine.begin() as connection:
            plan = await _load(
                connection, plans.c.id == plan_id, f"no plan has id {plan_id}", lock=True
            )
            if plan.is_default_trial:
                raise PlanError(
                    f"plan {plan.code!r} is the default trial plan: make another plan the "
                    "default before deleting it"
                )
            users = await connection.scalar(
                sa.select(sa.func.count())
                .select_from(subscriptions)
                .where(subscriptions.c.plan_id == plan_id)
            )
            if users:
                raise PlanError(
                    f"plan {plan.code!r} is used by {users} subscription(s), cancelled ones "
                    "included: move them to another plan or deactivate this one"
                )
            await connection.execute(sa.delete(plans).where(plans.c.id == plan_id))
    except IntegrityError:
        raise PlanError("the plan came into use while it was being deleted") from None


async def _refuse_taken_code(connection: AsyncConnection, code: str, plan_id: int | None) -> None:
    query = sa.select(plans.c.id).where(plans.c.code == code)
    if plan_id is not None:
        query = query.where(plans.c.id != plan_id)
    if await connection.scalar(query) is not None:
        raise PlanError(f"another plan already has the code {code!r}")


async def _unmark_default(connection: AsyncConnection, now: datetime) -> None:
    await connection.execute(
        sa.update(plans)
        .where(plans.c.is_default_trial)
        .values(is_default_trial=False, updated_at=now)
    )


async def _load(
    connection: AsyncConnection, where: sa.ColumnElement[bool], missing: str, lock: bool = False
) -> Plan:
    query = sa.select(plans).where(where)
    if lock:
        query = query.with_for_update()
    row = (await connection.execute(query)).first()
    if row is None:
        raise UnknownPlan(missing)
    return _plan(row)


def _plan(row: sa.Row[Any]) -> Plan:
    values = dict(row._mapping)
    values["features"] = dict(values["features"] or {})
    values["over_quota_text"] = dict(values["over_quota_text"] or {})
    return Plan(**values)


def _columns(spec: PlanSpec) -> dict[str, Any]:
    values = {f.name: getattr(spec, f.name) for f in fields(PlanSpec)}
    values["features"] = dict(spec.features)
    values["over_quota_text"] = dict(spec.over_quota_text)
    return values
