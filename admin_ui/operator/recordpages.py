"""The audit log, the usage export and the API tokens pages."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from admin_ui.operator.audit import PER_PAGE, AuditFilter, known_actions, record_now, search
from admin_ui.operator.console import Console
from admin_ui.operator.errors import InputError
from admin_ui.operator.export import filename, usage_csv
from admin_ui.operator.lockout import Operator
from admin_ui.operator.tenantactions import UsageRange, usage_range
from admin_ui.operator.web import Gate, Renderer, actor_of, form_fields, redirect, secured
from tenants.schema import ACTOR_TYPES


class RecordPages:
    def __init__(self, console: Console, renderer: Renderer, gate: Gate) -> None:
        self.c = console
        self._renderer = renderer
        self._gate = gate

    def routes(self) -> list[Route]:
        page = self._gate.page
        return [
            Route("/audit", page(self.audit), methods=["GET"]),
            Route("/export", page(self.export), methods=["GET"]),
            Route("/export/usage.csv", page(self.usage_csv), methods=["GET"]),
            Route("/tokens", page(self.tokens), methods=["GET"]),
            Route("/tokens", page(self.create_token), methods=["POST"]),
            Route("/tokens/{token_id:int}/revoke", page(self.revoke), methods=["POST"]),
        ]

    async def audit(self, request: Request, operator: Operator) -> Response:
        q = request.query_params
        tenant, page_number = q.get("tenant", "").strip(), q.get("page", "1")
        wanted = AuditFilter(
            action=q.get("action", "")[:64],
            actor_type=q.get("actor_type", "") if q.get("actor_type") in ACTOR_TYPES else "",
            operator=q.get("operator", "").strip()[:254],
            tenant_id=int(tenant) if tenant.isdigit() and len(tenant) < 10 else None,
            page=int(page_number) if page_number.isdigit() else 1,
        )
        entries, total = await search(self.c.engine, wanted)
        return await self._renderer.render(
            request,
            "audit.html",
            operator=operator,
            section="audit",
            entries=entries,
            total=total,
            pages=max(1, math.ceil(total / PER_PAGE)),
            wanted=wanted,
            actions=await known_actions(self.c.engine),
            actor_types=ACTOR_TYPES,
        )

    async def export(self, request: Request, operator: Operator) -> Response:
        return await self._export_form(request, operator, self._this_month(), {})

    async def usage_csv(self, request: Request, operator: Operator) -> Response:
        q = request.query_params
        try:
            span = usage_range(q.get("from", ""), q.get("to", ""), self._this_month())
        except InputError as error:
            return await self._export_form(request, operator, self._this_month(), error.fields)
        await record_now(
            self.c.engine,
            actor_of(operator),
            "usage.export",
            filename(span),
            details={"from": span.first.isoformat(), "to": span.last.isoformat()},
        )
        response = StreamingResponse(
            usage_csv(self.c.engine, self.c.meter, span), media_type="text/csv; charset=utf-8"
        )
        response.headers["Content-Disposition"] = f'attachment; filename="{filename(span)}"'
        return secured(response)

    async def tokens(self, request: Request, operator: Operator) -> Response:
        return await self._tokens_page(request, operator)

    async def create_token(self, request: Request, operator: Operator) -> Response:
        form = await form_fields(request)
        try:
            token, plain = await self.c.tokens.create(actor_of(operator), form.get("name", ""))
        except InputError as error:
            return await self._tokens_page(request, operator, 400, error.fields, form)
        return await self._tokens_page(request, operator, 201, created=(token.name, plain))

    async def revoke(self, request: Request, operator: Operator) -> Response:
        await self.c.tokens.revoke(actor_of(operator), int(request.path_params["token_id"]))
        return redirect("/operator/tokens", "token_revoked")

    async def _tokens_page(
        self,
        request: Request,
        operator: Operator,
        status: int = 200,
        fields: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        created: tuple[str, str] | None = None,
    ) -> Response:
        return await self._renderer.render(
            request,
            "tokens.html",
            operator=operator,
            section="tokens",
            status=status,
            tokens=await self.c.tokens.list(),
            fields=fields or {},
            form=form or {},
            created=created,
        )

    async def _export_form(
        self, request: Request, operator: Operator, span: UsageRange, fields: dict[str, str]
    ) -> Response:
        return await self._renderer.render(
            request,
            "export.html",
            operator=operator,
            section="export",
            status=400 if fields else 200,
            span=span,
            form={k: request.query_params.get(k, "") for k in ("from", "to")},
            fields=fields,
        )

    def _this_month(self) -> UsageRange:
        today = self.c.actions.today()
        return UsageRange(today.replace(day=1), today)
