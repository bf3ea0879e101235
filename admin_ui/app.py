"""The admin service: marketplace lifecycle, the in-portal app page, the operator console."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from admin_ui.errors import http_error
from admin_ui.lifecycle import lifecycle_routes
from admin_ui.marketplace import Marketplace
from admin_ui.operator import operator_console
from admin_ui.portal import CrossSiteGuard, PortalOptions, load_portal_options, portal_routes
from tenants.bitrix24 import build_services
from tenants.clock import Clock
from tenants.health import health_routes
from tenants.requestid import REQUEST_ID
from tenants.runtime import Runtime

TEMPLATES = Path(__file__).parent / "templates"


def create_admin_app(
    runtime: Runtime,
    *,
    http: httpx2.AsyncClient | None = None,
    clock: Clock | None = None,
    portal: PortalOptions | None = None,
) -> Starlette:
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(), enable_async=True
    )
    own_http = http is None
    http = http or httpx2.AsyncClient(headers={"User-Agent": "BitBot"})
    settings = runtime.settings
    services = build_services(runtime, http, clock)
    marketplace = None
    if settings.b24_client_id and settings.b24_client_secret:
        marketplace = Marketplace(runtime.engine, services, settings.public_url)
    portal = portal or load_portal_options(os.environ)

    async def home(_: Request) -> HTMLResponse:
        page = templates.get_template("home.html")
        return HTMLResponse(await page.render_async(public_url=settings.public_url))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if own_http:
                await http.aclose()

    return Starlette(
        routes=[
            Route("/", home),
            *health_routes(runtime),
            *lifecycle_routes(marketplace, templates),
            *portal_routes(runtime, services, http, portal, templates),
            operator_console(runtime, templates, clock),
        ],
        middleware=[REQUEST_ID, Middleware(CrossSiteGuard, public_url=settings.public_url)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
