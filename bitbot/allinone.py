"""The embedded default: gateway and admin routes on one port, the worker in the same process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from admin_ui import create_admin_app
from gateway import create_gateway_app
from tenants.runtime import Runtime

GATEWAY_PATHS = ("/b24/events",)


def create_all_in_one_app(runtime: Runtime) -> Starlette:
    gateway = create_gateway_app(runtime)
    admin = create_admin_app(runtime)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for app in (gateway, admin):
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    routes = [Route(path, gateway) for path in GATEWAY_PATHS]
    return Starlette(routes=[*routes, Mount("/", admin)], lifespan=lifespan)
