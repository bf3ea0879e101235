"""The operator JSON API under ``/operator/api/``, for automation (see docs/operator-console.md).

Authenticated by ``Authorization: Bearer bbo_…`` only; the console's cookie opens nothing here,
so a cross-site page cannot act through it. Errors are ``{"error": {"code", "message",
"fields"}}``; every change is in the audit log with ``"via": "api"`` and the token's id.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from admin_ui.errors import error_response
from admin_ui.operator.audit import Actor, AuditFilter, record_now, search
from admin_ui.operator.console import Console
from admin_ui.operator.errors import ConsoleError, InputError
from admin_ui.operator.export import filename, usage_csv
from admin_ui.operator.plans import spec_from_json, spec_to_json
from admin_ui.operator.providers import Provider, ProviderSpec
from admin_ui.operator.tenantactions import UsageRange, usage_range
from admin_ui.operator.tenants import TenantFilter, row_dict
from admin_ui.operator.web import MAX_FORM_BYTES
from billing import BillingError, PlanError, SubscriptionError, UnknownPlan
from tenants.forms import BodyTooLarge, read_body

Handler = Callable[[Request, Actor], Awaitable[Response]]
BASE = "/api"  # under the /operator mount


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_plain(value), status_code=status)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    return value


async def _body(request: Request) -> Any:
    try:
        raw = await read_body(request, MAX_FORM_BYTES)
        return json.loads(raw or b"{}")
    except BodyTooLarge:
        raise InputError("the body is larger than 64 KiB") from None
    except (ValueError, UnicodeDecodeError):
        raise InputError("the body is not valid JSON") from None


def _billing_error(error: BillingError) -> Response:
    if isinstance(error, UnknownPlan):
        return error_response(404, "not_found", str(error))
    if isinstance(error, PlanError):
        return error_response(422, "plan_refused", str(error))
    assert isinstance(error, SubscriptionError)
    return error_response(409, "subscription_refused", str(error))


class OperatorApi:
    def __init__(self, console: Console) -> None:
        self.c = console

    def routes(self) -> list[Route]:
        t = BASE + "/tenants/{tenant_id:int}"
        table: list[tuple[str, Handler, str]] = [
            (BASE + "/tenants", self.tenants, "GET"),
            (t, self.tenant, "GET"),
            (t + "/usage", self.usage, "GET"),
            (t + "/plan", self.change_plan, "POST"),
            (t + "/trial", self.extend_trial, "POST"),
            (t + "/suspend", self.suspend, "POST"),
            (t + "/resume", self.resume, "POST"),
            (t + "/dead-letters", self.dead_letters, "GET"),
            (t + "/dead-letters/{entry_id:str}/replay", self.replay, "POST"),
            (BASE + "/plans", self.plans, "GET"),
            (BASE + "/plans", self.create_plan, "POST"),
            (BASE + "/plans/{plan_id:int}", self.plan, "GET"),
            (BASE + "/plans/{plan_id:int}", self.update_plan, "PUT"),
            (BASE + "/plans/{plan_id:int}", self.delete_plan, "DELETE"),
            (BASE + "/providers", self.providers, "GET"),
            (BASE + "/providers", self.create_provider, "POST"),
            (BASE + "/providers/{provider_id:int}", self.provider, "GET"),
            (BASE + "/providers/{provider_id:int}", self.update_provider, "PUT"),
            (BASE + "/providers/{provider_id:int}", self.delete_provider, "DELETE"),
            (BASE + "/audit", self.audit, "GET"),
            (BASE + "/usage.csv", self.usage_csv, "GET"),
        ]
        return [Route(path, self._endpoint(h), methods=[m]) for path, h, m in table]

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return error_response(401, "unauthorized", "send Authorization: Bearer <token>")
            holder = await self.c.tokens.holder(token.strip())
            if holder is None:
                return error_response(401, "invalid_token", "the token is unknown or revoked")
            actor = Actor(holder.operator_id, holder.email, via="api", token_id=holder.token_id)
            try:
                return await handler(request, actor)
            except ConsoleError as error:
                return error_response(error.status, error.code, error.message, error.fields)
            except BillingError as error:
                return _billing_error(error)

        return run

    async def tenants(self, request: Request, actor: Actor) -> Response:
        q = request.query_params
        page = q.get("page", "1")
        found = await self.c.directory.search(
            TenantFilter(
                query=q.get("q", ""),
                status=q.get("status", ""),
                state=q.get("state", ""),
                plan=q.get("plan", ""),
                page=int(page) if page.isdigit() else 1,
            )
        )
        return _json(
            {
                "tenants": [row_dict(row) for row in found.rows],
                "total": found.total,
                "page": found.page,
                "pages": found.pages,
            }
        )

    async def tenant(self, request: Request, actor: Actor) -> Response:
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        account = await self.c.actions.account(tenant.id)
        return _json(
            {
                "tenant": tenant,
                "subscription": account.subscription,
                "plan": None if account.plan is None else spec_to_json(account.plan),
                "bots": await self.c.directory.bots(tenant.id),
            }
        )

    async def usage(self, request: Request, actor: Actor) -> Response:
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        default = self.c.actions.period(await self.c.actions.account(tenant.id))
        q = request.query_params
        span = usage_range(q.get("from", ""), q.get("to", ""), default)
        daily = await self.c.actions.usage(tenant.id, span)
        return _json(
            {
                "from": span.first.isoformat(),
                "to": span.last.isoformat(),
                "days": [{"day": d.day.isoformat(), **asdict(d.usage)} for d in daily],
            }
        )

    async def change_plan(self, request: Request, actor: Actor) -> Response:
        body = await _body(request)
        plan = body.get("plan") if isinstance(body, dict) else None
        if not isinstance(plan, str) or not plan:
            raise InputError("name the plan by its code", {"plan": "a plan code"})
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        return _json(await self.c.actions.change_plan(actor, tenant, plan))

    async def extend_trial(self, request: Request, actor: Actor) -> Response:
        body = await _body(request)
        days = body.get("days") if isinstance(body, dict) else None
        if not isinstance(days, int) or isinstance(days, bool):
            raise InputError("say by how many days", {"days": "a whole number from 1 to 365"})
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        return _json(await self.c.actions.extend_trial(actor, tenant, days))

    async def suspend(self, request: Request, actor: Actor) -> Response:
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        return _json(await self.c.actions.suspend(actor, tenant))

    async def resume(self, request: Request, actor: Actor) -> Response:
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        return _json(await self.c.actions.resume(actor, tenant))

    async def dead_letters(self, request: Request, actor: Actor) -> Response:
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        return _json({"dead_letters": await self.c.actions.dead_letters(tenant.id)})

    async def replay(self, request: Request, actor: Actor) -> Response:
        tenant = await self.c.directory.get(_id(request, "tenant_id"))
        entry_id = str(request.path_params["entry_id"])
        queued = await self.c.actions.replay(actor, tenant, entry_id)
        return _json({"replayed": entry_id, "queued": queued})

    async def plans(self, request: Request, actor: Actor) -> Response:
        rows = await self.c.plans.rows()
        return _json(
            {"plans": [spec_to_json(r.plan) | {"subscriptions": r.subscriptions} for r in rows]}
        )

    async def plan(self, request: Request, actor: Actor) -> Response:
        return _json(spec_to_json(await self.c.plans.get(_id(request, "plan_id"))))

    async def create_plan(self, request: Request, actor: Actor) -> Response:
        plan = await self.c.plans.create(actor, spec_from_json(await _body(request)))
        return _json(spec_to_json(plan), 201)

    async def update_plan(self, request: Request, actor: Actor) -> Response:
        spec = spec_from_json(await _body(request))
        return _json(spec_to_json(await self.c.plans.update(actor, _id(request, "plan_id"), spec)))

    async def delete_plan(self, request: Request, actor: Actor) -> Response:
        await self.c.plans.delete(actor, _id(request, "plan_id"))
        return Response(status_code=204)

    async def providers(self, request: Request, actor: Actor) -> Response:
        return _json({"providers": [_provider(p) for p in await self.c.providers.list()]})

    async def provider(self, request: Request, actor: Actor) -> Response:
        return _json(_provider(await self.c.providers.get(_id(request, "provider_id"))))

    async def create_provider(self, request: Request, actor: Actor) -> Response:
        provider = await self.c.providers.create(actor, _provider_spec(await _body(request)))
        return _json(_provider(provider), 201)

    async def update_provider(self, request: Request, actor: Actor) -> Response:
        spec = _provider_spec(await _body(request))
        provider = await self.c.providers.update(actor, _id(request, "provider_id"), spec)
        return _json(_provider(provider))

    async def delete_provider(self, request: Request, actor: Actor) -> Response:
        await self.c.providers.delete(actor, _id(request, "provider_id"))
        return Response(status_code=204)

    async def audit(self, request: Request, actor: Actor) -> Response:
        q = request.query_params
        tenant, page = q.get("tenant", ""), q.get("page", "1")
        wanted = AuditFilter(
            action=q.get("action", "")[:64],
            actor_type=q.get("actor_type", "")[:16],
            operator=q.get("operator", "")[:254],
            tenant_id=int(tenant) if tenant.isdigit() and len(tenant) < 10 else None,
            page=int(page) if page.isdigit() else 1,
        )
        entries, total = await search(self.c.engine, wanted)
        return _json({"entries": entries, "total": total, "page": wanted.page})

    async def usage_csv(self, request: Request, actor: Actor) -> Response:
        today = self.c.actions.today()
        q = request.query_params
        span = usage_range(q.get("from", ""), q.get("to", ""), UsageRange(today, today))
        await record_now(
            self.c.engine,
            actor,
            "usage.export",
            filename(span),
            details={"from": span.first.isoformat(), "to": span.last.isoformat()},
        )
        response = StreamingResponse(
            usage_csv(self.c.engine, self.c.meter, span), media_type="text/csv; charset=utf-8"
        )
        response.headers["Content-Disposition"] = f'attachment; filename="{filename(span)}"'
        return response


def _id(request: Request, name: str) -> int:
    return int(request.path_params[name])


def _provider(provider: Provider) -> dict[str, Any]:
    return {**asdict(provider), "label": provider.label}


def _provider_spec(body: Any) -> ProviderSpec:
    if not isinstance(body, dict):
        raise InputError("send the provider as a JSON object")
    values = {name: body.get(name) for name in ("name", "type", "base_url")}
    wrong = {name: "a string" for name, value in values.items() if not isinstance(value, str)}
    if wrong:
        raise InputError("the provider is not valid", wrong)
    return ProviderSpec(**{name: str(value) for name, value in values.items()})
