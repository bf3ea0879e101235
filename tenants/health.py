"""Liveness and readiness, shared by the gateway, worker and admin services.

Ready means: the database answers and carries the schema this code expects, and Redis answers.
``/metrics`` serves the process's Prometheus metrics (``tenants.metrics``).
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenants.migrate import current_revision, head_revision, is_known_revision
from tenants.runtime import Runtime

PROBE_TIMEOUT_S = 2.0


async def readiness(runtime: Runtime) -> dict[str, str]:
    checks = await asyncio.gather(_database(runtime), _redis(runtime))
    return {"database": checks[0], "redis": checks[1]}


async def _database(runtime: Runtime) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with runtime.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
            revision = await current_revision(runtime.engine)
    except Exception as error:  # any failure means "not ready"; the kind is enough to act on
        return f"unreachable ({type(error).__name__})"
    if revision == head_revision():
        return "ok"
    if revision is not None and not is_known_revision(revision):
        # A rollout migrated ahead of this pod; migrations stay backward compatible, so the old
        # code keeps serving until it is replaced instead of dropping out of traffic at once.
        return "ok"
    expected = head_revision()
    return f"schema at {revision or 'nothing'}, expected {expected}: run `bitbot migrate`"


async def _redis(runtime: Runtime) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await runtime.redis.ping()
    except Exception as error:  # as above
        return f"unreachable ({type(error).__name__})"
    return "ok"


def health_routes(runtime: Runtime) -> list[Route]:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        checks = await readiness(runtime)
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
