"""What every process holds once: settings, database engine, Redis, vault and token hasher."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.db import create_engine
from tenants.errors import SettingsError
from tenants.redis import connect_redis
from tenants.settings import Settings
from tenants.tokenhash import TokenHasher
from tenants.vault import Vault


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    vault: Vault
    hasher: TokenHasher

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)
        await self.engine.dispose()


def build_runtime(settings: Settings) -> Runtime:
    """Connections open lazily, so building is cheap; close() releases them."""
    settings.require("BITBOT_SECRET_KEYS", "BITBOT_HASH_KEY")
    if settings.hash_key is None:
        raise SettingsError("BITBOT_HASH_KEY must be set")
    return Runtime(
        settings=settings,
        engine=create_engine(settings.database_url),
        redis=connect_redis(settings.redis_url),
        vault=Vault(settings.secret_keys),
        hasher=TokenHasher(settings.hash_key),
    )
