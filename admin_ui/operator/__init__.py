"""The operator console (``/operator/``): pages for people, a JSON API for scripts.

See ``docs/operator-console.md``. The console has its own sign-in (argon2, lockout, a per-address
limit), its own session cookie, and refuses cross-site requests; the API takes bearer tokens.
"""

from __future__ import annotations

from jinja2 import Environment
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from admin_ui.errors import error_response
from admin_ui.operator.api import OperatorApi
from admin_ui.operator.auth import auth_routes
from admin_ui.operator.catalogpages import CatalogPages
from admin_ui.operator.console import Console, build_console
from admin_ui.operator.csrf import ConsoleCrossSiteGuard
from admin_ui.operator.pages import TenantPages
from admin_ui.operator.recordpages import RecordPages
from admin_ui.operator.web import STATIC, Gate, Renderer
from tenants.clock import Clock, SystemClock
from tenants.runtime import Runtime


def operator_console(runtime: Runtime, templates: Environment, clock: Clock | None = None) -> Mount:
    """Everything under ``/operator``, behind the console's cross-site guard."""
    console = build_console(runtime, clock or SystemClock())
    renderer = Renderer(templates)
    gate = Gate(console, renderer)

    async def not_found(request: Request) -> Response:
        if request.url.path.startswith("/operator/api/"):
            return error_response(404, "not_found", "no such API endpoint")
        return await renderer.render(
            request,
            "message.html",
            operator=None,
            status=404,
            message="No such page.",
            heading="Not found",
        )

    return Mount(
        "/operator",
        routes=[
            *auth_routes(console, renderer, gate),
            *TenantPages(console, renderer, gate).routes(),
            *CatalogPages(console, renderer, gate).routes(),
            *RecordPages(console, renderer, gate).routes(),
            *OperatorApi(console).routes(),
            Mount("/static", StaticFiles(directory=STATIC), name="operator-static"),
            Route("/{rest:path}", not_found),
        ],
        middleware=[Middleware(ConsoleCrossSiteGuard, public_url=runtime.settings.public_url)],
    )


__all__ = ["Console", "build_console", "operator_console"]
