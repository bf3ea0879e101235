"""The worker process: serves health while it runs, and stops cleanly on SIGTERM.

The queue consumers that run the conversation pipeline plug in here (issue #4); until then the
worker holds no work of its own.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette

from tenants.health import health_routes
from tenants.runtime import Runtime


def create_worker_health_app(runtime: Runtime) -> Starlette:
    return Starlette(routes=health_routes(runtime))


async def run_consumers(runtime: Runtime, stop: asyncio.Event) -> None:
    await stop.wait()
