"""What the pipeline needs to know about a bot, loaded with its connector and provider.

Profiles are cached in each process for a short time: a changed bot takes effect within
``CACHE_TTL_S`` everywhere, and the hot path does not query the database per message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.schema import bots, connectors, providers
from tenants.singleflight import SingleFlight
from tenants.vault import Vault, tenant_context

CACHE_TTL_S = 30.0
CACHE_SIZE = 10_000


@dataclass(frozen=True)
class BotProfile:
    id: int
    tenant_id: int
    b24_bot_id: int | None
    code: str
    name: str
    type: str
    api_version: int
    event_mode: str
    batch_delay_ms: int
    session_ttl_s: int
    pass_tokens: bool
    fallback_text: str
    handoff_on_failure: bool
    provider_type: str
    base_url: str
    api_key: str | None = field(repr=False)
    typebot_start_url: str | None


_COLUMNS = [
    bots.c.id,
    bots.c.tenant_id,
    bots.c.b24_bot_id,
    bots.c.code,
    bots.c.name,
    bots.c.type,
    bots.c.api_version,
    bots.c.event_mode,
    bots.c.batch_delay_ms,
    bots.c.session_ttl_s,
    bots.c.pass_tokens,
    bots.c.fallback_text,
    bots.c.handoff_on_failure,
    providers.c.type.label("provider_type"),
    sa.func.coalesce(connectors.c.base_url, providers.c.base_url).label("base_url"),
    connectors.c.api_key,
    connectors.c.typebot_start_url,
]


class BotDirectory:
    def __init__(self, engine: AsyncEngine, vault: Vault, ttl_s: float = CACHE_TTL_S) -> None:
        self._engine = engine
        self._vault = vault
        self._ttl_s = ttl_s
        self._cache: dict[tuple[int, int], tuple[float, BotProfile | None]] = {}
        self._loading: SingleFlight[tuple[int, int], BotProfile | None] = SingleFlight()

    async def by_bitrix24_id(self, tenant_id: int, b24_bot_id: int) -> BotProfile | None:
        key = (tenant_id, b24_bot_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        profile = await self._loading.run(
            key, lambda: self._load(bots.c.tenant_id == tenant_id, bots.c.b24_bot_id == b24_bot_id)
        )
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self._ttl_s, profile)
        return profile

    async def by_id(self, tenant_id: int, bot_id: int) -> BotProfile | None:
        """Uncached: the admin side's test chat wants the configuration as just saved."""
        return await self._load(bots.c.tenant_id == tenant_id, bots.c.id == bot_id)

    def forget(self, tenant_id: int) -> None:
        for key in [key for key in self._cache if key[0] == tenant_id]:
            del self._cache[key]

    async def _load(self, *where: sa.ColumnElement[bool]) -> BotProfile | None:
        query = (
            sa.select(*_COLUMNS).select_from(bots.join(connectors).join(providers)).where(*where)
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        values = dict(row._mapping)
        sealed = values.pop("api_key")
        context = tenant_context(row.tenant_id, "connectors", "api_key")
        api_key = None if sealed is None else self._vault.open(sealed, context)
        return BotProfile(api_key=api_key, **values)
