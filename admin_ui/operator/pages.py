"""The tenant pages: the searchable table, one tenant, and what the operator does to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin_ui.operator.chart import usage_chart
from admin_ui.operator.console import Console
from admin_ui.operator.errors import ConsoleError, InputError, NotFound
from admin_ui.operator.lockout import Operator
from admin_ui.operator.tenantactions import usage_range
from admin_ui.operator.tenants import TenantFilter
from admin_ui.operator.web import Gate, Renderer, actor_of, form_fields, redirect
from billing import BillingError, UnknownPlan, UsageTotals, list_plans
from billing.schema import SUBSCRIPTION_STATES
from tenants.schema import TENANT_STATUSES

HOLDS = {"suspend": "suspended", "resume": "resumed"}
Action = Callable[[dict[str, str]], Awaitable[str]]  # a change; returns its notice key


class TenantPages:
    def __init__(self, console: Console, renderer: Renderer, gate: Gate) -> None:
        self.c = console
        self._renderer = renderer
        self._gate = gate

    def routes(self) -> list[Route]:
        page = self._gate.page
        one = "/tenants/{tenant_id:int}"
        return [
            Route("/", page(self.home), methods=["GET"]),
            Route("/tenants", page(self.tenants), methods=["GET"]),
            Route(one, page(self.tenant), methods=["GET"]),
            Route(f"{one}/plan", page(self.change_plan), methods=["POST"]),
            Route(f"{one}/trial", page(self.extend_trial), methods=["POST"]),
            Route(one + "/{hold:str}", page(self.confirm_hold), methods=["GET"]),
            Route(one + "/{hold:str}", page(self.hold), methods=["POST"]),
            Route(one + "/dead-letters/{entry_id:str}/replay", page(self.replay), methods=["POST"]),
        ]

    async def home(self, request: Request, operator: Operator) -> Response:
        return redirect("/operator/tenants")

    async def tenants(self, request: Request, operator: Operator) -> Response:
        q = request.query_params
        page_number = q.get("page", "1")
        wanted = TenantFilter(
            query=q.get("q", ""),
            status=q.get("status", ""),
            state=q.get("state", ""),
            plan=q.get("plan", ""),
            page=int(page_number) if page_number.isdigit() else 1,
        ).cleaned()
        found = await self.c.directory.search(wanted)
        return await self._renderer.render(
            request,
            "tenants.html",
            operator=operator,
            section="tenants",
            found=found,
            wanted=wanted,
            statuses=TENANT_STATUSES,
            states=SUBSCRIPTION_STATES,
            plans=await list_plans(self.c.engine),
        )

    async def tenant(self, request: Request, operator: Operator) -> Response:
        return await self._tenant_page(request, operator)

    async def change_plan(self, request: Request, operator: Operator) -> Response:
        async def act(form: dict[str, str]) -> str:
            tenant = await self.c.directory.get(_tenant_id(request))
            await self.c.actions.change_plan(actor_of(operator), tenant, form.get("plan", ""))
            return "plan_changed"

        return await self._act(request, operator, "plan", act)

    async def extend_trial(self, request: Request, operator: Operator) -> Response:
        async def act(form: dict[str, str]) -> str:
            tenant = await self.c.directory.get(_tenant_id(request))
            raw = form.get("days", "").strip()
            if not raw.isdigit() or len(raw) > 4:
                raise InputError("extend a trial by a whole number of days", {"days": "1 to 365"})
            await self.c.actions.extend_trial(actor_of(operator), tenant, int(raw))
            return "trial_extended"

        return await self._act(request, operator, "trial", act)

    async def confirm_hold(self, request: Request, operator: Operator) -> Response:
        hold = _hold(request)
        tenant = await self.c.directory.get(_tenant_id(request))
        return await self._renderer.render(
            request,
            "confirm.html",
            operator=operator,
            section="tenants",
            tenant=tenant,
            hold=hold,
            account=await self.c.actions.account(tenant.id),
        )

    async def hold(self, request: Request, operator: Operator) -> Response:
        hold = _hold(request)

        async def act(form: dict[str, str]) -> str:
            tenant = await self.c.directory.get(_tenant_id(request))
            change = self.c.actions.suspend if hold == "suspend" else self.c.actions.resume
            await change(actor_of(operator), tenant)
            return HOLDS[hold]

        return await self._act(request, operator, "hold", act)

    async def replay(self, request: Request, operator: Operator) -> Response:
        async def act(form: dict[str, str]) -> str:
            tenant = await self.c.directory.get(_tenant_id(request))
            entry_id = str(request.path_params["entry_id"])
            await self.c.actions.replay(actor_of(operator), tenant, entry_id)
            return "replayed"

        return await self._act(request, operator, "dead_letters", act)

    async def _act(self, request: Request, operator: Operator, part: str, act: Action) -> Response:
        """Run ``act``; on success back to the tenant page, on refusal the page with the reason."""
        tenant_id = _tenant_id(request)
        try:
            done = await act(await form_fields(request))
        except ConsoleError as error:
            if error.status == 404:
                raise
            return await self._tenant_page(request, operator, error.status, {part: error.message})
        except BillingError as error:
            status = 404 if isinstance(error, UnknownPlan) else 409
            return await self._tenant_page(request, operator, status, {part: str(error)})
        return redirect(f"/operator/tenants/{tenant_id}", done)

    async def _tenant_page(
        self,
        request: Request,
        operator: Operator,
        status: int = 200,
        errors: dict[str, str] | None = None,
    ) -> Response:
        tenant = await self.c.directory.get(_tenant_id(request))
        account = await self.c.actions.account(tenant.id)
        period = self.c.actions.period(account)
        errors = dict(errors or {})
        try:
            span = usage_range(
                request.query_params.get("from", ""), request.query_params.get("to", ""), period
            )
        except InputError as error:
            span, errors["usage"] = period, "; ".join(error.fields.values())
        daily = await self.c.actions.usage(tenant.id, span)
        total = sum((item.usage for item in daily), UsageTotals())
        letters = await self.c.actions.dead_letters(tenant.id)
        return await self._renderer.render(
            request,
            "tenant.html",
            operator=operator,
            section="tenants",
            status=status if status != 200 or not errors.get("usage") else 400,
            tenant=tenant,
            account=account,
            plans=await list_plans(self.c.engine, active_only=True),
            span=span,
            period=period,
            chart=usage_chart(span.days, daily),
            total=total,
            bots=await self.c.directory.bots(tenant.id),
            dead_letters=letters,
            received={d.entry_id: datetime.fromtimestamp(d.received_at, UTC) for d in letters},
            errors=errors,
        )


def _tenant_id(request: Request) -> int:
    return int(request.path_params["tenant_id"])


def _hold(request: Request) -> str:
    hold = str(request.path_params["hold"])
    if hold not in HOLDS:
        raise NotFound("no such page")
    return hold
