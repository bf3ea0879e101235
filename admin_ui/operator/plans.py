"""Plans as the operator edits them: form and JSON input turned into a ``PlanSpec``, and the
billing functions wrapped with the audit trail.

``billing.plans`` keeps the invariants and says in words what a refused edit would break
(``PlanError``); this module only reads the input and names the field a refusal is about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.operator.audit import Actor, record_now
from admin_ui.operator.errors import InputError
from billing import Plan, PlanSpec, create_plan, delete_plan, get_plan, list_plans, update_plan
from billing.schema import subscriptions

FEATURE = re.compile(r"[a-z][a-z0-9_]{0,39}")
TEXT_FIELD = "over_quota_text."
FORM_LANGUAGES = ("en", "ru")
_FIELD_OF_REFUSAL = {
    "plan code": "code",
    "name of": "name",
    "monthly message quota": "monthly_messages",
    "maximum number of bots": "max_bots",
    "per tenant": "events_per_minute_tenant",
    "per dialog": "events_per_minute_dialog",
    "trial days": "trial_days",
    "already has the code": "code",
    "over-quota text": "over_quota_text",
}


@dataclass(frozen=True)
class PlanRow:
    plan: Plan
    subscriptions: int


def refused_field(message: str) -> dict[str, str]:
    """The form field a ``PlanError`` message is about, so the page can mark it."""
    for words, name in _FIELD_OF_REFUSAL.items():
        if words in message:
            return {name: message}
    return {}


def spec_from_form(form: Mapping[str, str]) -> PlanSpec:
    errors: dict[str, str] = {}
    counts = {
        name: _count(form.get(name, ""), name, errors, optional=optional)
        for name, optional in (
            ("monthly_messages", True),
            ("max_bots", True),
            ("events_per_minute_tenant", False),
            ("events_per_minute_dialog", False),
            ("trial_days", False),
        )
    }
    texts = {
        key.removeprefix(TEXT_FIELD): value.strip()
        for key, value in form.items()
        if key.startswith(TEXT_FIELD) and value.strip()
    }
    features = _features(form.get("features", ""), errors)
    if errors:
        raise InputError("some fields need attention", errors)
    return PlanSpec(
        code=form.get("code", "").strip(),
        name=form.get("name", "").strip(),
        monthly_messages=counts["monthly_messages"],
        max_bots=counts["max_bots"],
        events_per_minute_tenant=counts["events_per_minute_tenant"] or 0,
        events_per_minute_dialog=counts["events_per_minute_dialog"] or 0,
        trial_days=counts["trial_days"] or 0,
        features=features,
        over_quota_text=texts,
        is_default_trial=form.get("is_default_trial") == "on",
        active=form.get("active") == "on",
    )


def spec_from_json(body: Any) -> PlanSpec:
    if not isinstance(body, dict):
        raise InputError("send the plan as a JSON object")
    known = set(PlanSpec.__dataclass_fields__)
    unknown = sorted(set(body) - known)
    if unknown:
        raise InputError("unknown fields", dict.fromkeys(unknown, "not a plan field"))
    kinds: dict[str, tuple[type, ...]] = {
        "code": (str,),
        "name": (str,),
        "monthly_messages": (int, type(None)),
        "max_bots": (int, type(None)),
        "events_per_minute_tenant": (int,),
        "events_per_minute_dialog": (int,),
        "features": (dict,),
        "over_quota_text": (dict,),
        "is_default_trial": (bool,),
        "trial_days": (int,),
        "active": (bool,),
    }
    required = {"code", "name", "events_per_minute_tenant", "events_per_minute_dialog"}
    errors = {name: "required" for name in sorted(required - set(body))}
    for name, value in body.items():
        ok = isinstance(value, kinds[name]) and not (
            isinstance(value, bool) and bool not in kinds[name]
        )
        if not ok:
            errors[name] = "wrong type: " + " or ".join(k.__name__ for k in kinds[name])
    texts = body.get("over_quota_text", {})
    if isinstance(texts, dict) and not all(isinstance(t, str) for t in texts.values()):
        errors["over_quota_text"] = "map two-letter languages to texts"
    if errors:
        raise InputError("the plan is not valid", errors)
    values = {"monthly_messages": None, "max_bots": None, **body}
    return PlanSpec(**values)


def spec_to_json(plan: Plan) -> dict[str, Any]:
    values = asdict(plan)
    for name in ("created_at", "updated_at"):
        values[name] = values[name].isoformat()
    return values


def features_text(features: Mapping[str, bool]) -> str:
    return "\n".join(f"{name} = {'on' if on else 'off'}" for name, on in sorted(features.items()))


def text_languages(plan: Plan | None) -> list[str]:
    given = set(plan.over_quota_text) if plan is not None else set()
    return [*FORM_LANGUAGES, *sorted(given - set(FORM_LANGUAGES))]


class PlanDesk:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def rows(self) -> list[PlanRow]:
        query = sa.select(subscriptions.c.plan_id, sa.func.count()).group_by(
            subscriptions.c.plan_id
        )
        async with self._engine.connect() as connection:
            used = {plan_id: int(n) for plan_id, n in await connection.execute(query)}
        return [PlanRow(plan, used.get(plan.id, 0)) for plan in await list_plans(self._engine)]

    async def get(self, plan_id: int) -> Plan:
        return await get_plan(self._engine, plan_id)

    async def create(self, actor: Actor, spec: PlanSpec) -> Plan:
        plan = await create_plan(self._engine, spec)
        await record_now(self._engine, actor, "plan.create", plan.code, details=_audited(spec))
        return plan

    async def update(self, actor: Actor, plan_id: int, spec: PlanSpec) -> Plan:
        before = await get_plan(self._engine, plan_id)
        plan = await update_plan(self._engine, plan_id, spec)
        old, new = _audited(before.spec), _audited(spec)
        changes = {name: [old[name], new[name]] for name in old if old[name] != new[name]}
        await record_now(self._engine, actor, "plan.update", plan.code, details=changes)
        return plan

    async def delete(self, actor: Actor, plan_id: int) -> None:
        plan = await get_plan(self._engine, plan_id)
        await delete_plan(self._engine, plan_id)
        await record_now(self._engine, actor, "plan.delete", plan.code, details=_audited(plan.spec))


def _count(raw: str, name: str, errors: dict[str, str], *, optional: bool) -> int | None:
    raw = raw.strip().replace(" ", "")
    if not raw:
        if not optional:
            errors[name] = "required"
        return None
    try:
        return int(raw)
    except ValueError:
        errors[name] = "a whole number" + (", or empty for unlimited" if optional else "")
        return None


def _features(raw: str, errors: dict[str, str]) -> dict[str, bool]:
    features: dict[str, bool] = {}
    for line in raw.splitlines():
        if not line.strip():
            continue
        name, _, value = line.partition("=")
        name, value = name.strip().lower(), value.strip().lower() or "on"
        if not FEATURE.fullmatch(name) or value not in ("on", "off", "true", "false"):
            errors["features"] = f"write one flag per line as 'name = on' or 'name = off': {line}"
            break
        features[name] = value in ("on", "true")
    return features


def _audited(spec: PlanSpec) -> dict[str, Any]:
    values = asdict(spec)
    values["features"] = dict(spec.features)
    values["over_quota_text"] = dict(spec.over_quota_text)
    return values
