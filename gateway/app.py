"""The gateway service: the edge Bitrix24 posts bot events to."""

from __future__ import annotations

from starlette.applications import Starlette

from tenants.health import health_routes
from tenants.runtime import Runtime


def create_gateway_app(runtime: Runtime) -> Starlette:
    return Starlette(routes=health_routes(runtime))
