"""Tenant lookup for the intake: an in-process cache in front of the database.

The cache keeps the tenant and its token hash for a short time; the token is compared on every
request, in constant time, whether the tenant came from the cache or not. Unknown member ids are
remembered briefly too, so a flood of forged events does not become a flood of queries.
"""

from __future__ import annotations

import time

from tenants.store import Tenant, TenantStore
from tenants.tokenhash import TokenHasher

TTL_S = 15.0
UNKNOWN_TTL_S = 5.0
MAX_ENTRIES = 50_000


class TenantCache:
    def __init__(self, store: TenantStore, hasher: TokenHasher) -> None:
        self._store = store
        self._hasher = hasher
        self._entries: dict[str, tuple[float, tuple[Tenant, bytes | None] | None]] = {}

    async def authenticate(self, member_id: str, application_token: str) -> Tenant | None:
        found = await self._lookup(member_id)
        stored = found[1] if found else None
        if not self._hasher.matches(application_token, stored) or found is None:
            return None
        return found[0]

    async def _lookup(self, member_id: str) -> tuple[Tenant, bytes | None] | None:
        now = time.monotonic()
        cached = self._entries.get(member_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._store.with_token_hash(member_id)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[member_id] = (now + (TTL_S if found else UNKNOWN_TTL_S), found)
        return found
