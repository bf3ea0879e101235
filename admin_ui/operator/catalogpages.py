"""What BitBot offers: the plans pages and the providers pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin_ui.operator.console import Console
from admin_ui.operator.errors import ConsoleError
from admin_ui.operator.lockout import Operator
from admin_ui.operator.plans import features_text, refused_field, spec_from_form, text_languages
from admin_ui.operator.providers import TYPE_LABELS, Provider, ProviderSpec
from admin_ui.operator.web import Gate, Renderer, actor_of, form_fields, redirect
from billing import Plan, PlanError, UnknownPlan

NEW_PLAN = {
    "active": "on",
    "events_per_minute_tenant": "60",
    "events_per_minute_dialog": "20",
    "trial_days": "0",
}


class CatalogPages:
    def __init__(self, console: Console, renderer: Renderer, gate: Gate) -> None:
        self.c = console
        self._renderer = renderer
        self._gate = gate

    def routes(self) -> list[Route]:
        page = self._gate.page
        plan = "/plans/{plan_id:int}"
        provider = "/providers/{provider_id:int}"
        return [
            Route("/plans", page(self.plans), methods=["GET"]),
            Route("/plans/new", page(self.plan), methods=["GET"]),
            Route("/plans", page(self.save_plan), methods=["POST"]),
            Route(plan, page(self.plan), methods=["GET"]),
            Route(plan, page(self.save_plan), methods=["POST"]),
            Route(f"{plan}/delete", page(self.delete_plan), methods=["POST"]),
            Route("/providers", page(self.providers), methods=["GET"]),
            Route("/providers/new", page(self.provider), methods=["GET"]),
            Route("/providers", page(self.save_provider), methods=["POST"]),
            Route(provider, page(self.provider), methods=["GET"]),
            Route(provider, page(self.save_provider), methods=["POST"]),
            Route(f"{provider}/delete", page(self.delete_provider), methods=["POST"]),
        ]

    async def plans(self, request: Request, operator: Operator) -> Response:
        return await self._renderer.render(
            request,
            "plans.html",
            operator=operator,
            section="plans",
            rows=await self.c.plans.rows(),
        )

    async def plan(self, request: Request, operator: Operator) -> Response:
        plan_id = request.path_params.get("plan_id")
        plan = None if plan_id is None else await self.c.plans.get(int(plan_id))
        return await self._plan_form(request, operator, plan)

    async def save_plan(self, request: Request, operator: Operator) -> Response:
        plan_id = request.path_params.get("plan_id")
        plan = None if plan_id is None else await self.c.plans.get(int(plan_id))
        form = await form_fields(request)
        try:
            spec = spec_from_form(form)
            if plan is None:
                saved = await self.c.plans.create(actor_of(operator), spec)
            else:
                saved = await self.c.plans.update(actor_of(operator), plan.id, spec)
        except ConsoleError as error:
            return await self._plan_form(
                request, operator, plan, error.status, error.message, error.fields, form
            )
        except UnknownPlan:
            raise
        except PlanError as error:
            message = str(error)
            return await self._plan_form(
                request, operator, plan, 422, message, refused_field(message), form
            )
        return redirect(
            f"/operator/plans/{saved.id}", "plan_created" if plan is None else "plan_saved"
        )

    async def delete_plan(self, request: Request, operator: Operator) -> Response:
        plan = await self.c.plans.get(int(request.path_params["plan_id"]))
        try:
            await self.c.plans.delete(actor_of(operator), plan.id)
        except UnknownPlan:
            raise
        except PlanError as error:
            return await self._plan_form(request, operator, plan, 409, str(error))
        return redirect("/operator/plans", "plan_deleted")

    async def providers(self, request: Request, operator: Operator) -> Response:
        return await self._renderer.render(
            request,
            "providers.html",
            operator=operator,
            section="providers",
            providers=await self.c.providers.list(),
            labels=TYPE_LABELS,
        )

    async def provider(self, request: Request, operator: Operator) -> Response:
        provider_id = request.path_params.get("provider_id")
        provider = None if provider_id is None else await self.c.providers.get(int(provider_id))
        return await self._provider_form(request, operator, provider)

    async def save_provider(self, request: Request, operator: Operator) -> Response:
        provider_id = request.path_params.get("provider_id")
        current = None if provider_id is None else await self.c.providers.get(int(provider_id))
        form = await form_fields(request)
        spec = ProviderSpec(form.get("name", ""), form.get("type", ""), form.get("base_url", ""))
        try:
            if current is None:
                await self.c.providers.create(actor_of(operator), spec)
            else:
                await self.c.providers.update(actor_of(operator), current.id, spec)
        except ConsoleError as error:
            if error.status == 404:
                raise
            return await self._provider_form(
                request, operator, current, error.status, error.message, error.fields, form
            )
        return redirect(
            "/operator/providers", "provider_created" if current is None else "provider_saved"
        )

    async def delete_provider(self, request: Request, operator: Operator) -> Response:
        provider = await self.c.providers.get(int(request.path_params["provider_id"]))
        try:
            await self.c.providers.delete(actor_of(operator), provider.id)
        except ConsoleError as error:
            if error.status == 404:
                raise
            return await self._provider_form(
                request, operator, provider, error.status, error.message
            )
        return redirect("/operator/providers", "provider_deleted")

    async def _plan_form(
        self,
        request: Request,
        operator: Operator,
        plan: Plan | None,
        status: int = 200,
        error: str = "",
        fields: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        if form is None and plan is not None:
            form = _plan_values(plan)
        return await self._renderer.render(
            request,
            "plan.html",
            operator=operator,
            section="plans",
            status=status,
            plan=plan,
            form=form or dict(NEW_PLAN),
            languages=text_languages(plan),
            error=error,
            fields=fields or {},
        )

    async def _provider_form(
        self,
        request: Request,
        operator: Operator,
        provider: Provider | None,
        status: int = 200,
        error: str = "",
        fields: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        if form is None and provider is not None:
            form = {k: str(getattr(provider, k)) for k in ("name", "type", "base_url")}
        return await self._renderer.render(
            request,
            "provider.html",
            operator=operator,
            section="providers",
            status=status,
            provider=provider,
            form=form or {},
            labels=TYPE_LABELS,
            error=error,
            fields=fields or {},
        )


def _plan_values(plan: Plan) -> dict[str, str]:
    values = {
        "code": plan.code,
        "name": plan.name,
        "monthly_messages": "" if plan.monthly_messages is None else str(plan.monthly_messages),
        "max_bots": "" if plan.max_bots is None else str(plan.max_bots),
        "events_per_minute_tenant": str(plan.events_per_minute_tenant),
        "events_per_minute_dialog": str(plan.events_per_minute_dialog),
        "trial_days": str(plan.trial_days),
        "features": features_text(plan.features),
        "is_default_trial": "on" if plan.is_default_trial else "",
        "active": "on" if plan.active else "",
    }
    for language, text in plan.over_quota_text.items():
        values[f"over_quota_text.{language}"] = text
    return values
