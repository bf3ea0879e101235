"""The tenant (portal) store: one row per Bitrix24 portal, its OAuth tokens sealed by the vault.

Application tokens are kept only as a keyed hash; access and refresh tokens only as ciphertext.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tenants.schema import bots, credentials, tenants, utcnow
from tenants.tokenhash import TokenHasher
from tenants.vault import Vault, tenant_context


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    user_id: int | None = None


@dataclass(frozen=True)
class Portal:
    """What an install tells us about a portal, after it has been verified."""

    member_id: str
    domain: str
    client_endpoint: str
    server_endpoint: str
    scope: str
    application_token: str = field(repr=False)
    app_status: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Tenant:
    id: int
    member_id: str
    domain: str
    client_endpoint: str
    server_endpoint: str
    status: str
    attention_reason: str | None
    scope: str
    bot_api_version: int | None
    app_status: str | None
    language: str | None
    installed_at: datetime | None
    uninstalled_at: datetime | None


_TENANT_COLUMNS = [tenants.c[name] for name in Tenant.__dataclass_fields__]


class TenantStore:
    def __init__(self, engine: AsyncEngine, vault: Vault, hasher: TokenHasher) -> None:
        self._engine = engine
        self._vault = vault
        self._hasher = hasher

    async def install(self, portal: Portal, tokens: TokenPair) -> Tenant:
        """Create the tenant or bring an existing one back to active; idempotent per member_id."""
        now = utcnow()
        values = {
            "domain": portal.domain,
            "client_endpoint": portal.client_endpoint,
            "server_endpoint": portal.server_endpoint,
            "scope": portal.scope,
            "app_status": portal.app_status,
            "language": portal.language,
            "application_token_hash": self._hasher.digest(portal.application_token),
            "status": "active",
            "attention_reason": None,
            "installed_at": now,
            "uninstalled_at": None,
            "updated_at": now,
        }
        async with self._engine.begin() as connection:
            tenant_id = await connection.scalar(
                sa.select(tenants.c.id).where(tenants.c.member_id == portal.member_id)
            )
            if tenant_id is None:
                tenant_id = await connection.scalar(
                    sa.insert(tenants)
                    .values(member_id=portal.member_id, created_at=now, **values)
                    .returning(tenants.c.id)
                )
            else:
                await connection.execute(
                    sa.update(tenants).where(tenants.c.id == tenant_id).values(**values)
                )
            await self._write_tokens(connection, tenant_id, tokens)
            return await _tenant(connection, tenants.c.id == tenant_id)

    async def find(self, member_id: str) -> Tenant | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(*_TENANT_COLUMNS).where(tenants.c.member_id == member_id)
                )
            ).first()
        return None if row is None else Tenant(**row._mapping)

    async def get(self, tenant_id: int) -> Tenant | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(*_TENANT_COLUMNS).where(tenants.c.id == tenant_id)
                )
            ).first()
        return None if row is None else Tenant(**row._mapping)

    async def forget_bitrix24_bot(self, tenant_id: int, b24_bot_id: int) -> None:
        """Bitrix24 deleted the bot: keep its configuration, mark it for registration again."""
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(bots)
                .where(bots.c.tenant_id == tenant_id, bots.c.b24_bot_id == b24_bot_id)
                .values(b24_bot_id=None, registration_state="pending", updated_at=utcnow())
            )

    async def with_token_hash(self, member_id: str) -> tuple[Tenant, bytes | None] | None:
        """The tenant and its stored application-token hash, for callers that cache both."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(*_TENANT_COLUMNS, tenants.c.application_token_hash).where(
                        tenants.c.member_id == member_id
                    )
                )
            ).first()
        if row is None:
            return None
        fields = dict(row._mapping)
        stored = fields.pop("application_token_hash")
        return Tenant(**fields), stored

    async def authenticate(self, member_id: str, application_token: str) -> Tenant | None:
        """The tenant whose stored hash matches ``application_token``, compared in constant time."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(*_TENANT_COLUMNS, tenants.c.application_token_hash).where(
                        tenants.c.member_id == member_id
                    )
                )
            ).first()
        stored = None if row is None else row.application_token_hash
        if not self._hasher.matches(application_token, stored) or row is None:
            return None
        fields = dict(row._mapping)
        del fields["application_token_hash"]
        return Tenant(**fields)

    async def tokens(self, tenant_id: int) -> TokenPair | None:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(credentials).where(credentials.c.tenant_id == tenant_id)
                )
            ).first()
        if row is None:
            return None
        return TokenPair(
            access_token=self._open(row.access_token, tenant_id, "access_token"),
            refresh_token=self._open(row.refresh_token, tenant_id, "refresh_token"),
            expires_at=row.access_expires_at,
            user_id=row.user_id,
        )

    async def save_tokens(self, tenant_id: int, tokens: TokenPair) -> None:
        async with self._engine.begin() as connection:
            await self._write_tokens(connection, tenant_id, tokens)

    async def _write_tokens(
        self, connection: AsyncConnection, tenant_id: int, tokens: TokenPair
    ) -> None:
        values = {
            "access_token": self._seal(tokens.access_token, tenant_id, "access_token"),
            "refresh_token": self._seal(tokens.refresh_token, tenant_id, "refresh_token"),
            "access_expires_at": tokens.expires_at,
            "user_id": tokens.user_id,
            "updated_at": utcnow(),
        }
        updated = await connection.execute(
            sa.update(credentials).where(credentials.c.tenant_id == tenant_id).values(**values)
        )
        if updated.rowcount == 0:
            await connection.execute(sa.insert(credentials).values(tenant_id=tenant_id, **values))

    def _seal(self, value: str, tenant_id: int, column: str) -> bytes:
        return self._vault.seal(value, tenant_context(tenant_id, "credentials", column))

    def _open(self, value: bytes, tenant_id: int, column: str) -> str:
        return self._vault.open(value, tenant_context(tenant_id, "credentials", column))


async def _tenant(connection: AsyncConnection, where: sa.ColumnElement[bool]) -> Tenant:
    row = (await connection.execute(sa.select(*_TENANT_COLUMNS).where(where))).one()
    return Tenant(**row._mapping)


class TenantUpdates:
    """Changes the Bitrix24 client makes to a tenant it talks for."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def needs_attention(self, tenant_id: int, reason: str) -> None:
        await self._update(tenant_id, status="needs_attention", attention_reason=reason)

    async def resolved(self, tenant_id: int) -> None:
        await self._update(tenant_id, status="active", attention_reason=None)

    async def moved(self, tenant_id: int, domain: str, client_endpoint: str) -> None:
        await self._update(tenant_id, domain=domain, client_endpoint=client_endpoint)

    async def _update(self, tenant_id: int, **values: object) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(tenants)
                .where(tenants.c.id == tenant_id)
                .values(updated_at=utcnow(), **values)
            )
