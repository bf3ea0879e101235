from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from admin_ui import create_admin_app
from gateway import create_gateway_app, create_worker_health_app
from tenants.runtime import Runtime, build_runtime
from tenants.settings import load_settings
from tests.conftest import Backend
from tests.fakes.server import free_port

FACTORIES = [create_gateway_app, create_admin_app, create_worker_health_app]


async def get(app: Starlette, path: str) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://bitbot") as client:
        return await client.get(path)


@pytest.mark.parametrize("factory", FACTORIES)
async def test_ready_once_migrated(
    migrated: Runtime, factory: Callable[[Runtime], Starlette]
) -> None:
    app = factory(migrated)
    assert (await get(app, "/healthz")).json() == {"status": "ok"}
    ready = await get(app, "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_not_ready_before_migration(runtime: Runtime) -> None:
    ready = await get(create_gateway_app(runtime), "/readyz")
    assert ready.status_code == 503
    assert "run `bitbot migrate`" in ready.json()["checks"]["database"]


async def test_not_ready_without_redis(backend: Backend, tmp_path: Path) -> None:
    env = backend.env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    runtime = build_runtime(load_settings(env))
    try:
        ready = await get(create_admin_app(runtime), "/readyz")
    finally:
        await runtime.close()
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("unreachable")
    assert (await get(create_admin_app(runtime), "/healthz")).status_code == 200


async def test_not_ready_without_database(tmp_path: Path, backend: Backend) -> None:
    env = backend.env(tmp_path, DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    runtime = build_runtime(load_settings(env))
    try:
        ready = await get(create_gateway_app(runtime), "/readyz")
    finally:
        await runtime.close()
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")


async def test_ready_while_a_newer_release_has_migrated(migrated: Runtime) -> None:
    async with migrated.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE alembic_version SET version_num = 'future1'"))
    ready = await get(create_gateway_app(migrated), "/readyz")
    assert ready.status_code == 200
