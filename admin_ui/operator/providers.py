"""Providers: the Dify and Typebot services portals connect to (name, type, default base URL).

Portal admins see them as ``Name (Type)`` when they create a connector. A provider some connector
uses cannot be deleted, and its type cannot change under those connectors (their API keys and
start URLs belong to that type): create another provider instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin_ui.operator.audit import Actor, record
from admin_ui.operator.errors import InputError, NotFound, Refused
from tenants.schema import PROVIDER_TYPES, connectors, providers, utcnow

TYPE_LABELS = {
    "dify_chatflow": "Dify Chatflow",
    "dify_workflow": "Dify Workflow",
    "typebot": "Typebot",
}


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    type: str
    base_url: str

    def checked(self) -> ProviderSpec:
        name, base_url = self.name.strip(), self.base_url.strip()
        errors: dict[str, str] = {}
        if not name or len(name) > 100:
            errors["name"] = "a name of 1 to 100 characters"
        if self.type not in PROVIDER_TYPES:
            errors["type"] = "one of " + ", ".join(PROVIDER_TYPES)
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(base_url) > 512:
            errors["base_url"] = "an http(s) URL of at most 512 characters"
        elif parts.query or parts.fragment or parts.username or parts.password:
            errors["base_url"] = "a URL without credentials, query or fragment"
        if errors:
            raise InputError("the provider is not valid", errors)
        return ProviderSpec(name, self.type, base_url.rstrip("/"))


@dataclass(frozen=True)
class Provider:
    id: int
    name: str
    type: str
    base_url: str
    created_at: datetime
    updated_at: datetime
    connectors: int  # how many connectors use it
    tenants: int  # in how many portals

    @property
    def label(self) -> str:
        return f"{self.name} ({TYPE_LABELS.get(self.type, self.type)})"


class ProviderCatalog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def list(self) -> list[Provider]:
        async with self._engine.connect() as connection:
            return [_provider(row) for row in await connection.execute(_query())]

    async def get(self, provider_id: int) -> Provider:
        async with self._engine.connect() as connection:
            return await _load(connection, provider_id)

    async def create(self, actor: Actor, spec: ProviderSpec) -> Provider:
        spec = spec.checked()
        now = utcnow()
        try:
            async with self._engine.begin() as connection:
                await _refuse_taken_name(connection, spec.name, None)
                provider_id = await connection.scalar(
                    sa.insert(providers)
                    .values(**_values(spec), created_at=now, updated_at=now)
                    .returning(providers.c.id)
                )
                await record(connection, actor, "provider.create", spec.name, details=_values(spec))
                return await _load(connection, int(provider_id))
        except IntegrityError:
            raise Refused(f"a provider named {spec.name!r} was just created; reload") from None

    async def update(self, actor: Actor, provider_id: int, spec: ProviderSpec) -> Provider:
        spec = spec.checked()
        try:
            async with self._engine.begin() as connection:
                current = await _load(connection, provider_id)
                await _refuse_taken_name(connection, spec.name, provider_id)
                if spec.type != current.type and current.connectors:
                    raise Refused(
                        f"provider {current.name!r} is used by {current.connectors} connector(s):"
                        " its type cannot change under them; create a new provider instead",
                        {"type": "in use; cannot change"},
                    )
                await connection.execute(
                    sa.update(providers)
                    .where(providers.c.id == provider_id)
                    .values(**_values(spec), updated_at=utcnow())
                )
                await record(
                    connection,
                    actor,
                    "provider.update",
                    spec.name,
                    details={"before": _values(current), "after": _values(spec)},
                )
                return await _load(connection, provider_id)
        except IntegrityError:
            raise Refused(f"a provider named {spec.name!r} was just created; reload") from None

    async def delete(self, actor: Actor, provider_id: int) -> None:
        try:
            async with self._engine.begin() as connection:
                current = await _load(connection, provider_id)
                if current.connectors:
                    raise Refused(
                        f"provider {current.name!r} is used by {current.connectors} connector(s)"
                        f" in {current.tenants} portal(s); it can be deleted once no connector"
                        " uses it"
                    )
                await connection.execute(sa.delete(providers).where(providers.c.id == provider_id))
                await record(
                    connection, actor, "provider.delete", current.name, details=_values(current)
                )
        except IntegrityError:
            raise Refused("a connector started using the provider meanwhile") from None


def _query() -> sa.Select[Any]:
    usage = (
        sa.select(
            connectors.c.provider_id,
            sa.func.count().label("connectors"),
            sa.func.count(sa.distinct(connectors.c.tenant_id)).label("tenants"),
        )
        .group_by(connectors.c.provider_id)
        .subquery()
    )
    return (
        sa.select(
            providers,
            sa.func.coalesce(usage.c.connectors, 0).label("connectors"),
            sa.func.coalesce(usage.c.tenants, 0).label("tenants"),
        )
        .select_from(providers.outerjoin(usage, usage.c.provider_id == providers.c.id))
        .order_by(providers.c.name)
    )


async def _load(connection: AsyncConnection, provider_id: int) -> Provider:
    row = (await connection.execute(_query().where(providers.c.id == provider_id))).first()
    if row is None:
        raise NotFound(f"no provider has id {provider_id}")
    return _provider(row)


async def _refuse_taken_name(connection: AsyncConnection, name: str, own_id: int | None) -> None:
    query = sa.select(providers.c.id).where(sa.func.lower(providers.c.name) == name.lower())
    if own_id is not None:
        query = query.where(providers.c.id != own_id)
    if await connection.scalar(query) is not None:
        raise Refused(f"another provider is already named {name!r}", {"name": "already taken"})


def _provider(row: sa.Row[Any]) -> Provider:
    return Provider(**row._mapping)


def _values(spec: ProviderSpec | Provider) -> dict[str, str]:
    return {"name": spec.name, "type": spec.type, "base_url": spec.base_url}
