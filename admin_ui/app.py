"""The admin service: marketplace lifecycle, the in-portal app page, the operator console."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from admin_ui.errors import http_error
from tenants.health import health_routes
from tenants.runtime import Runtime

TEMPLATES = Path(__file__).parent / "templates"


def create_admin_app(runtime: Runtime) -> Starlette:
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(), enable_async=True
    )

    async def home(_: Request) -> HTMLResponse:
        page = templates.get_template("home.html")
        return HTMLResponse(await page.render_async(public_url=runtime.settings.public_url))

    return Starlette(
        routes=[Route("/", home), *health_routes(runtime)],
        exception_handlers={HTTPException: http_error},
    )
