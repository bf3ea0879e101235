"""A tenant's connectors: which operator provider a bot talks to, with what key and URLs.

The API key is write-only: it is sealed on the way in, never read back out, and an edit that
leaves it empty keeps the stored one. Dify needs a key; Typebot's public bots do not.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin_ui.portal.audit import Actor, record
from admin_ui.portal.connectorviews import (
    ConnectorSettings,
    ConnectorView,
    Provider,
    changed,
    editable,
    view,
    view_query,
)
from admin_ui.portal.validation import Form, Invalid, Message, NotFound, PortalError
from tenants.netguard import HostGuard
from tenants.schema import bots, connectors, providers, utcnow
from tenants.vault import Vault, tenant_context

NAME_LIMIT = 100
KEY_LIMIT = 512
BASE_URL_LIMIT = 512
START_URL_LIMIT = 1024
START_PATH = re.compile(r"/api/v1/typebots/[A-Za-z0-9_.-]+/(preview/)?startChat$")


class InUse(PortalError):
    status = 409
    code = "in_use"


class ConnectorService:
    def __init__(self, engine: AsyncEngine, vault: Vault, guard: HostGuard) -> None:
        self._engine = engine
        self._vault = vault
        self._guard = guard

    async def providers(self) -> list[Provider]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(
                    providers.c.id, providers.c.name, providers.c.type, providers.c.base_url
                ).order_by(providers.c.name)
            )
            return [Provider(*row) for row in rows]

    async def list(self, actor: Actor) -> list[ConnectorView]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                view_query()
                .where(connectors.c.tenant_id == actor.tenant_id)
                .order_by(connectors.c.name)
            )
            return [view(row._mapping) for row in rows]

    async def get(self, actor: Actor, connector_id: int) -> ConnectorView:
        async with self._engine.connect() as connection:
            return await self._get(connection, actor, connector_id)

    async def create(self, actor: Actor, data: dict[str, Any]) -> ConnectorView:
        values, audit = await self._read(actor, data, None)
        now = utcnow()
        async with self._engine.begin() as connection:
            connector_id = await self._write(
                connection,
                sa.insert(connectors)
                .values(tenant_id=actor.tenant_id, created_at=now, updated_at=now)
                .returning(connectors.c.id),
                values,
                actor,
            )
            await record(connection, actor, "connector.create", f"connector:{connector_id}", audit)
            return await self._get(connection, actor, connector_id)

    async def update(self, actor: Actor, connector_id: int, data: dict[str, Any]) -> ConnectorView:
        current = await self.get(actor, connector_id)
        values, audit = await self._read(actor, {**editable(current), **data}, current)
        async with self._engine.begin() as connection:
            await self._write(
                connection,
                sa.update(connectors)
                .where(connectors.c.id == connector_id, connectors.c.tenant_id == actor.tenant_id)
                .values(updated_at=utcnow()),
                values,
                actor,
                connector_id,
            )
            await record(connection, actor, "connector.update", f"connector:{connector_id}", audit)
            return await self._get(connection, actor, connector_id)

    async def delete(self, actor: Actor, connector_id: int) -> None:
        async with self._engine.begin() as connection:
            await self._get(connection, actor, connector_id)
            users = (
                await connection.execute(
                    sa.select(bots.c.name).where(
                        bots.c.connector_id == connector_id, bots.c.tenant_id == actor.tenant_id
                    )
                )
            ).scalars()
            names = ", ".join(users)
            if names:
                raise InUse(Message("connector.in_use", {"bots": names}))
            await connection.execute(
                sa.delete(connectors).where(
                    connectors.c.id == connector_id, connectors.c.tenant_id == actor.tenant_id
                )
            )
            await record(connection, actor, "connector.delete", f"connector:{connector_id}")

    async def settings(
        self, actor: Actor, data: dict[str, Any], connector_id: int | None = None
    ) -> ConnectorSettings:
        """What a draft (or a stored connector, with its key) would connect with; field errors
        when it could not be saved either."""
        current = None if connector_id is None else await self.get(actor, connector_id)
        draft = {**editable(current), **data} if current else data
        values, _ = await self._read(actor, draft, current, check_name=False)
        api_key = values.get("api_key_plain")
        keeps_stored = current is not None and current.has_api_key and "clear_api_key" not in values
        if api_key is None and keeps_stored and connector_id is not None:
            api_key = await self._stored_key(actor, connector_id)
        provider = values["provider"]
        return ConnectorSettings(
            provider,
            api_key,
            values["base_url"] or provider.base_url,
            values["typebot_start_url"] or "",
        )

    async def _read(
        self,
        actor: Actor,
        data: dict[str, Any],
        current: ConnectorView | None,
        *,
        check_name: bool = True,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        form = Form(data)
        name = form.text("name", limit=NAME_LIMIT, required=check_name)
        provider = await self._provider(form)
        api_key = form.text("api_key", limit=KEY_LIMIT)
        clear_key = form.boolean("clear_api_key")
        base_url = await form.url("base_url", self._guard, limit=BASE_URL_LIMIT)
        start_url = ""
        if provider and provider.type == "typebot":
            start_url = await form.url(
                "typebot_start_url", self._guard, limit=START_URL_LIMIT, required=True
            )
            if start_url and "typebot_start_url" not in form.errors:
                keyed = bool(api_key) or bool(current and current.has_api_key)
                _check_start_url(form, start_url, keyed)
        has_key = bool(api_key) or bool(current and current.has_api_key and not clear_key)
        if provider and provider.needs_key and not has_key:
            form.fail("api_key", "connector.key_required")
        if check_name and name and "name" not in form.errors:
            await self._check_name_free(form, actor, name, current)
        form.check()
        assert provider is not None
        values: dict[str, Any] = {
            "name": name,
            "provider": provider,
            "base_url": base_url or None,
            "typebot_start_url": start_url or None,
        }
        if api_key:
            values["api_key_plain"] = api_key
        elif clear_key and not provider.needs_key:
            values["clear_api_key"] = True
        key_state = "set" if api_key else ("removed" if "clear_api_key" in values else "kept")
        return values, {"fields": changed(current, values), "api_key": key_state}

    async def _provider(self, form: Form) -> Provider | None:
        raw = str(form.data.get("provider_id", "")).strip()
        provider_id = int(raw) if raw.isdigit() else None
        if provider_id is None:
            form.fail("provider_id", "field.required")
            return None
        found = [p for p in await self.providers() if p.id == provider_id]
        if not found:
            form.fail("provider_id", "connector.unknown_provider")
            return None
        return found[0]

    async def _check_name_free(
        self, form: Form, actor: Actor, name: str, current: ConnectorView | None
    ) -> None:
        query = sa.select(connectors.c.id).where(
            connectors.c.tenant_id == actor.tenant_id, connectors.c.name == name
        )
        if current is not None:
            query = query.where(connectors.c.id != current.id)
        async with self._engine.connect() as connection:
            if await connection.scalar(query) is not None:
                form.fail("name", "field.taken")

    async def _write(
        self,
        connection: AsyncConnection,
        statement: Any,
        values: dict[str, Any],
        actor: Actor,
        connector_id: int | None = None,
    ) -> int:
        row = {
            "name": values["name"],
            "provider_id": values["provider"].id,
            "base_url": values["base_url"],
            "typebot_start_url": values["typebot_start_url"],
        }
        if "api_key_plain" in values:
            context = tenant_context(actor.tenant_id, "connectors", "api_key")
            row["api_key"] = self._vault.seal(values["api_key_plain"], context)
        elif values.get("clear_api_key"):
            row["api_key"] = None
        try:
            result = await connection.execute(statement.values(**row))
        except IntegrityError:
            raise Invalid({"name": Message("field.taken")}) from None
        return connector_id if connector_id is not None else int(result.scalar_one())

    async def _get(
        self, connection: AsyncConnection, actor: Actor, connector_id: int
    ) -> ConnectorView:
        row = (
            await connection.execute(
                view_query().where(
                    connectors.c.id == connector_id, connectors.c.tenant_id == actor.tenant_id
                )
            )
        ).first()
        if row is None:
            raise NotFound(Message("connector.not_found"))
        return view(row._mapping)

    async def _stored_key(self, actor: Actor, connector_id: int) -> str | None:
        async with self._engine.connect() as connection:
            sealed = await connection.scalar(
                sa.select(connectors.c.api_key).where(
                    connectors.c.id == connector_id, connectors.c.tenant_id == actor.tenant_id
                )
            )
        if sealed is None:
            return None
        return self._vault.open(sealed, tenant_context(actor.tenant_id, "connectors", "api_key"))


def _check_start_url(form: Form, url: str, has_key: bool) -> None:
    path = url.split("?", 1)[0].split("#", 1)[0]
    match = START_PATH.search(path)
    if match is None:
        form.fail("typebot_start_url", "connector.start_url_shape")
    elif match.group(1) and not has_key:
        form.fail("api_key", "connector.preview_needs_key")


__all__ = ["ConnectorService", "ConnectorSettings", "ConnectorView", "InUse", "Provider"]
