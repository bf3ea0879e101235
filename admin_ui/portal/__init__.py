"""The in-portal UI: the page a portal admin opens inside Bitrix24, and its JSON API."""

from __future__ import annotations

import httpx2
from jinja2 import Environment
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from admin_ui.portal.api import api_routes
from admin_ui.portal.csrf import CrossSiteGuard
from admin_ui.portal.options import PortalOptions, load_portal_options
from admin_ui.portal.pages import STATIC, Pages
from admin_ui.portal.wiring import Portal, build_portal
from tenants.bitrix24 import Services
from tenants.runtime import Runtime


def portal_routes(
    runtime: Runtime,
    services: Services,
    http: httpx2.AsyncClient,
    options: PortalOptions,
    templates: Environment,
) -> list[BaseRoute]:
    portal = build_portal(runtime, services, http, options)
    return [
        *Pages(portal, templates).routes(),
        *api_routes(portal),
        Mount("/b24/static", StaticFiles(directory=STATIC), name="portal-static"),
    ]


__all__ = [
    "CrossSiteGuard",
    "Portal",
    "PortalOptions",
    "build_portal",
    "load_portal_options",
    "portal_routes",
]
