"""Shared set-up for the benchmarks: settings, a migrated database, installed fake portals."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2

from billing import Subscriptions
from tenants.runtime import Runtime
from tenants.store import Portal as PortalInstall
from tenants.store import Tenant, TenantStore, TokenPair
from tests.fakes.bitrix24 import Portal

BENCH_REDIS_URL = os.environ.get("BITBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
# Production runs on PostgreSQL; the benches measure that configuration.
BENCH_PG_ADMIN_URL = os.environ.get(
    "BITBOT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BENCH_DATABASE = "bitbot_bench"


def bench_database_url() -> str:
    return BENCH_PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"


async def fresh_database() -> None:
    import asyncpg

    connection = await asyncpg.connect(BENCH_PG_ADMIN_URL)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    finally:
        await connection.close()


def bench_env(data: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": bench_database_url(),
        "BITBOT_DATA_DIR": str(data),
        "REDIS_URL": BENCH_REDIS_URL,
        "BITBOT_SECRET_KEYS": "bench:" + base64.b64encode(b"k" * 32).decode(),
        "BITBOT_HASH_KEY": base64.b64encode(b"h" * 32).decode(),
        "BITBOT_B24_CLIENT_ID": "bench",
        "BITBOT_B24_CLIENT_SECRET": "bench-secret",
        "BITBOT_PUBLIC_URL": "https://bitbot.example.com",
        "BITBOT_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        **extra,
    }


async def install(runtime: Runtime, portal: Portal) -> Tenant:
    """As the marketplace install does: the tenant with its tokens, then its trial."""
    store = TenantStore(runtime.engine, runtime.vault, runtime.hasher)
    tenant = await store.install(
        PortalInstall(
            portal.member_id,
            portal.domain,
            portal.client_endpoint,
            portal.server_endpoint,
            portal.scope,
            portal.application_token,
        ),
        TokenPair(
            portal.auth.access_token,
            portal.auth.refresh_token,
            datetime.fromtimestamp(time.time() + 3600, UTC),
            portal.admin.id,
        ),
    )
    await Subscriptions(runtime.engine).installed(tenant.id)
    return tenant


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BITBOT_")} | env
    return subprocess.Popen(
        [sys.executable, *args], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
