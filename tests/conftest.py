"""Shared fixtures: the two storage configurations, settings and a runtime for each.

Tests marked ``pg`` / ``redis`` use real services. Outside CI they skip when the service is down;
with ``CI=true`` they fail instead, so CI can never pass without having run them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx2
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from gateway.providers.http import ProviderHttp
from tenants.runtime import Runtime, build_runtime
from tenants.settings import Settings, load_settings
from tests.fakes.bitrix24 import FakeBitrix24
from tests.fakes.clock import FakeClock

PG_ADMIN_URL = os.environ.get("BITBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _redis_url_of_this_process(base: str) -> str:
    """Each pytest-xdist worker (``gw0``, ``gw1``, ...) flushes a database of its own: the base
    URL's database for ``gw0``, the one below it for ``gw1``, and so on."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    if offset == 0:
        return base
    head, _, database = base.rpartition("/")
    if not database.isdecimal() or int(database) < offset:
        raise RuntimeError(f"BITBOT_TEST_REDIS_URL must end in a database number >= {offset}")
    return f"{head}/{int(database) - offset}"


REDIS_URL = _redis_url_of_this_process(
    os.environ.get("BITBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
)
IN_CI = os.environ.get("CI") == "true"

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
HASH_KEY = base64.b64encode(b"H" * 32).decode()
B24_CLIENT_ID = "app.bitbot.test"
B24_SECRET = "b24-client-secret-value"
PUBLIC_URL = "https://bitbot.example.com"


def service_unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if IN_CI:
        pytest.fail(f"{message}; CI must run these tests against the real service")
    pytest.skip(message)


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    redis_url: str | None

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "BITBOT_SECRET_KEYS": f"a:{KEY_A}",
            "BITBOT_HASH_KEY": HASH_KEY,
            "BITBOT_DATA_DIR": str(data_dir),
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env | extra


async def _create_pg_database() -> str:
    name = f"bitbot_test_{uuid.uuid4().hex[:12]}"
    try:
        connection = await asyncpg.connect(PG_ADMIN_URL)
    except (OSError, asyncpg.PostgresError) as error:
        service_unavailable("PostgreSQL", error)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return str(make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))


async def _drop_pg_database(url: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        name = make_url(url).database
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _fresh_redis() -> str:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    except OSError as error:
        service_unavailable("Redis", error)
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("services", marks=[pytest.mark.pg, pytest.mark.redis]),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """SQLite + in-process Redis, and PostgreSQL + Redis: the two configurations BitBot runs on."""
    if request.param == "embedded":
        yield Backend("embedded", f"sqlite:///{tmp_path / 'bitbot.db'}", None)
        return
    redis_url = await _fresh_redis()
    database_url = await _create_pg_database()
    try:
        yield Backend("services", database_url, redis_url)
    finally:
        await _drop_pg_database(database_url)


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return load_settings(backend.env(tmp_path))


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def migrated(runtime: Runtime) -> Runtime:
    from tenants.migrate import upgrade

    await upgrade(runtime.engine)
    return runtime


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BitBot variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("BITBOT_") or name in ("DATABASE_URL", "REDIS_URL", "SENTRY_DSN"):
            monkeypatch.delenv(name)


class SteppedClock:
    """The product's Clock over the fakes' FakeClock: sleeping moves fake time, not real time."""

    def __init__(self, fake: FakeClock) -> None:
        self.fake = fake
        self.slept = 0.0

    def now(self) -> float:
        return self.fake.now()

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.fake.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(FakeClock())


@pytest.fixture
async def bitrix24(clock: SteppedClock) -> AsyncIterator[FakeBitrix24]:
    cloud = FakeBitrix24(clock=clock.fake, client_id=B24_CLIENT_ID, client_secret=B24_SECRET)
    async with cloud.serve():
        yield cloud


@pytest.fixture
def b24_settings(backend: Backend, tmp_path: Path, bitrix24: FakeBitrix24) -> Settings:
    return load_settings(
        backend.env(
            tmp_path,
            BITBOT_B24_OAUTH_URL=bitrix24.base_url,
            BITBOT_B24_CLIENT_ID=B24_CLIENT_ID,
            BITBOT_B24_CLIENT_SECRET=B24_SECRET,
            BITBOT_PUBLIC_URL=PUBLIC_URL,
            BITBOT_ALLOW_PRIVATE_HOSTS="127.0.0.1",
        )
    )


@pytest.fixture
async def b24_runtime(b24_settings: Settings) -> AsyncIterator[Runtime]:
    from tenants.migrate import upgrade

    runtime = build_runtime(b24_settings)
    await upgrade(runtime.engine)
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    # Generous: on a busy two-core machine a request that syncs with the fakes can take seconds.
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
async def provider_http() -> AsyncIterator[ProviderHttp]:
    """The provider adapters' HTTP client, without a host guard: the fakes live on loopback."""
    client = ProviderHttp()
    try:
        yield client
    finally:
        await client.aclose()
