"""A tenant's bots: validated, saved, and registered, updated or unregistered in Bitrix24.

New bots use Chatbots 2.0 when the portal has it, the classic API otherwise. A type change
unregisters the bot first (the classic API cannot change ``TYPE``), so if Bitrix24 refuses,
nothing is saved. A bot whose registration failed stays editable and deletable.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin_ui.portal.audit import Actor, record
from admin_ui.portal.avatar import AvatarError, Avatars
from admin_ui.portal.sync import BotSync
from admin_ui.portal.validation import Bitrix24Refused, Form, Message, NotFound
from tenants.bitrix24 import Bitrix24Error
from tenants.netguard import HostGuard
from tenants.registration import describe
from tenants.schema import BOT_TYPES, EVENT_MODES, bots, commands, connectors, utcnow
from tenants.store import Tenant, TenantStore

COLORS = (
    "RED", "GREEN", "MINT", "LIGHT_BLUE", "DARK_BLUE", "PURPLE", "AQUA", "PINK",
    "LIME", "BROWN", "AZURE", "KHAKI", "SAND", "MARENGO", "GRAY", "GRAPHITE",
)  # fmt: skip
NAME_LIMIT = 100
AVATAR_URL_LIMIT = 1024
FALLBACK_LIMIT = 2000
MAX_BATCH_DELAY_MS = 30_000
MIN_TTL_S = 60
MAX_TTL_S = 30 * 86400
EDITABLE = (
    "name", "type", "event_mode", "color", "avatar_url", "connector_id",
    "batch_delay_ms", "session_ttl_s", "pass_tokens", "fallback_text", "handoff_on_failure",
)  # fmt: skip


@dataclass(frozen=True)
class BotView:
    id: int
    name: str
    code: str
    type: str
    api_version: int
    event_mode: str
    color: str | None
    avatar_url: str | None
    connector_id: int
    connector_name: str
    batch_delay_ms: int
    session_ttl_s: int
    pass_tokens: bool
    fallback_text: str
    handoff_on_failure: bool
    b24_bot_id: int | None
    registration_state: str
    registration_error: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def editable(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in EDITABLE}


_COLUMNS = [
    *(bots.c[name] for name in BotView.__dataclass_fields__ if name != "connector_name"),
    connectors.c.name.label("connector_name"),
]


class BotService:
    def __init__(
        self,
        engine: AsyncEngine,
        store: TenantStore,
        guard: HostGuard,
        avatars: Avatars,
        sync: BotSync,
    ) -> None:
        self._engine = engine
        self._store = store
        self._guard = guard
        self._avatars = avatars
        self.sync = sync

    async def tenant(self, actor: Actor) -> Tenant:
        tenant = await self._store.get(actor.tenant_id)
        if tenant is None:
            raise NotFound(Message("error.no_tenant"))
        return tenant

    async def list(self, actor: Actor) -> list[BotView]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                _query().where(bots.c.tenant_id == actor.tenant_id).order_by(bots.c.name)
            )
            return [BotView(**row._mapping) for row in rows]

    async def get(self, actor: Actor, bot_id: int) -> BotView:
        async with self._engine.connect() as connection:
            return await _get(connection, actor, bot_id)

    async def create(self, actor: Actor, data: dict[str, Any]) -> BotView:
        tenant = await self.tenant(actor)
        api_version = 2 if tenant.bot_api_version == 2 else 1
        values, avatar = await self._read(actor, data, api_version, None)
        now = utcnow()
        async with self._engine.begin() as connection:
            bot_id = await connection.scalar(
                sa.insert(bots)
                .values(
                    tenant_id=actor.tenant_id,
                    code=f"bitbot_{secrets.token_hex(6)}",
                    api_version=api_version,
                    registration_state="pending",
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                .returning(bots.c.id)
            )
            await record(connection, actor, "bot.create", f"bot:{bot_id}", _details(values))
        await self.sync.register(tenant, int(bot_id), avatar)
        return await self.get(actor, int(bot_id))

    async def update(self, actor: Actor, bot_id: int, data: dict[str, Any]) -> BotView:
        current = await self.get(actor, bot_id)
        tenant = await self.tenant(actor)
        changes = {k: v for k, v in data.items() if k in EDITABLE}
        values, avatar = await self._read(
            actor, {**current.editable(), **changes}, current.api_version, current
        )
        retype = values["type"] != current.type and current.b24_bot_id is not None
        if retype:
            await self._unregister(tenant, bot_id)
            await self.sync.forget(bot_id)
        changed = {k: v for k, v in values.items() if getattr(current, k) != v}
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(bots)
                .where(bots.c.id == bot_id, bots.c.tenant_id == actor.tenant_id)
                .values(updated_at=utcnow(), **values)
            )
            await record(connection, actor, "bot.update", f"bot:{bot_id}", _details(changed))
        if retype and avatar is None and values["avatar_url"]:
            avatar = await self._avatar_or_none(values["avatar_url"])
        await self.sync.update(tenant, bot_id, avatar)
        return await self.get(actor, bot_id)

    async def register_again(self, actor: Actor, bot_id: int) -> BotView:
        current = await self.get(actor, bot_id)
        avatar = await self._avatar_or_none(current.avatar_url) if current.avatar_url else None
        await self.sync.update(await self.tenant(actor), bot_id, avatar)
        registered = await self.get(actor, bot_id)
        async with self._engine.begin() as connection:
            details = {"state": registered.registration_state}
            await record(connection, actor, "bot.register", f"bot:{bot_id}", details)
        return registered

    async def delete(self, actor: Actor, bot_id: int, *, force: bool = False) -> None:
        current = await self.get(actor, bot_id)
        if current.b24_bot_id is not None:
            try:
                await self._unregister(await self.tenant(actor), bot_id)
            except Bitrix24Refused:
                if not force:
                    raise
        async with self._engine.begin() as connection:
            where = (commands.c.bot_id == bot_id, commands.c.tenant_id == actor.tenant_id)
            await connection.execute(sa.delete(commands).where(*where))
            await connection.execute(
                sa.delete(bots).where(bots.c.id == bot_id, bots.c.tenant_id == actor.tenant_id)
            )
            details = {"name": current.name, "forced": force}
            await record(connection, actor, "bot.delete", f"bot:{bot_id}", details)

    async def _unregister(self, tenant: Tenant, bot_id: int) -> None:
        try:
            await self.sync.unregister(tenant, bot_id)
        except Bitrix24Error as error:
            message = Message("bot.unregister_failed", {"error": describe(error)})
            raise Bitrix24Refused(message) from None

    async def _read(
        self, actor: Actor, data: dict[str, Any], api_version: int, current: BotView | None
    ) -> tuple[dict[str, Any], str | None]:
        form = Form(data)
        values = {
            "name": form.text("name", limit=NAME_LIMIT, required=True),
            "type": form.choice("type", BOT_TYPES),
            "event_mode": form.choice("event_mode", EVENT_MODES),
            "color": form.text("color", limit=16).upper() or None,
            "avatar_url": await form.url("avatar_url", self._guard, limit=AVATAR_URL_LIMIT) or None,
            "connector_id": await self._connector(form, actor),
            "batch_delay_ms": form.integer("batch_delay_ms", low=0, high=MAX_BATCH_DELAY_MS),
            "session_ttl_s": form.integer("session_ttl_s", low=MIN_TTL_S, high=MAX_TTL_S),
            "pass_tokens": form.boolean("pass_tokens"),
            "fallback_text": form.text("fallback_text", limit=FALLBACK_LIMIT),
            "handoff_on_failure": form.boolean("handoff_on_failure"),
        }
        if values["color"] is not None and values["color"] not in COLORS:
            form.fail("color", "field.choice", options=", ".join(COLORS))
        if api_version == 1 and values["event_mode"] == "fetch":
            form.fail("event_mode", "bot.fetch_needs_v2")
        avatar = None
        url = values["avatar_url"]
        if (
            url
            and (current is None or current.avatar_url != url)
            and "avatar_url" not in form.errors
        ):
            try:
                avatar = await self._avatars.fetch(str(url))
            except AvatarError as error:
                form.errors["avatar_url"] = error.message
        form.check()
        return values, avatar

    async def _connector(self, form: Form, actor: Actor) -> int:
        raw = str(form.data.get("connector_id", "")).strip()
        if not raw.isdigit():
            form.fail("connector_id", "field.required")
            return 0
        async with self._engine.connect() as connection:
            found = await connection.scalar(
                sa.select(connectors.c.id).where(
                    connectors.c.id == int(raw), connectors.c.tenant_id == actor.tenant_id
                )
            )
        if found is None:
            form.fail("connector_id", "bot.unknown_connector")
            return 0
        return int(found)

    async def _avatar_or_none(self, url: str) -> str | None:
        try:
            return await self._avatars.fetch(url)
        except AvatarError:
            return None


def _query() -> sa.Select[Any]:
    return sa.select(*_COLUMNS).select_from(bots.join(connectors))


async def _get(connection: AsyncConnection, actor: Actor, bot_id: int) -> BotView:
    row = (
        await connection.execute(
            _query().where(bots.c.id == bot_id, bots.c.tenant_id == actor.tenant_id)
        )
    ).first()
    if row is None:
        raise NotFound(Message("bot.not_found"))
    return BotView(**row._mapping)


def _details(values: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps: the changed settings (there are no secrets among them)."""
    return {"changed": sorted(values), **{k: values[k] for k in ("name", "type") if k in values}}
