"""Keeping Bitrix24 in step with a tenant's bots: register, update, re-register, unregister.

Registration itself is the Registrar's (``tenants.registration``); this adds what an edit needs.
A change is saved first and synced after; a failed sync is recorded on the bot in words and the
next save (or "register again") retries it. Steps that must succeed before anything is saved —
unregistering for a type change or a delete — raise instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.bitrix24 import Bitrix24Client, Bitrix24Error, MethodError, Services
from tenants.registration import BotRow, Registrar, describe
from tenants.schema import bots, commands, utcnow
from tenants.store import Tenant

NO_PUBLIC_URL = "BITBOT_PUBLIC_URL is not set, so Bitrix24 cannot reach BitBot"
GONE_CODES = ("BOT_ID_ERROR", "BOT_NOT_FOUND")


class BotSync:
    def __init__(self, engine: AsyncEngine, services: Services, public_url: str | None) -> None:
        self._engine = engine
        self._services = services
        self.registrar = Registrar(engine, public_url) if public_url else None
        self.events_url = f"{(public_url or '').rstrip('/')}/b24/events"

    def client(self, tenant: Tenant) -> Bitrix24Client:
        return Bitrix24Client(tenant, self._services)

    async def register(self, tenant: Tenant, bot_id: int, avatar: str | None) -> None:
        """Register (with its commands); the outcome is recorded on the bot."""
        if self.registrar is None:
            await self._record(bot_id, "failed", NO_PUBLIC_URL)
            return
        if await self.registrar.register(self.client(tenant), tenant.id, bot_id) and avatar:
            await self.update(tenant, bot_id, avatar)

    async def update(self, tenant: Tenant, bot_id: int, avatar: str | None) -> None:
        bot = await bot_row(self._engine, tenant.id, bot_id)
        if bot.b24_bot_id is None or self.registrar is None:
            await self.register(tenant, bot_id, avatar)
            return
        method, params = self._update_call(bot, avatar)
        try:
            await self.client(tenant).call(method, params)
        except MethodError as error:
            if error.code not in GONE_CODES:
                await self._record(bot_id, "failed", describe(error))
                return
            await self.forget(bot_id)  # removed in the portal meanwhile: register it afresh
            await self.register(tenant, bot_id, avatar)
            return
        except Bitrix24Error as error:
            await self._record(bot_id, "failed", describe(error))
            return
        await self._record(bot_id, "registered", None)

    async def unregister(self, tenant: Tenant, bot_id: int) -> None:
        """Remove the bot from the portal; raises Bitrix24Error unless it is gone already."""
        if self.registrar is not None:
            await self.registrar.unregister(self.client(tenant), tenant.id, bot_id)
            return
        bot = await bot_row(self._engine, tenant.id, bot_id)
        if bot.b24_bot_id is not None:
            raise Bitrix24Error("NO_PUBLIC_URL", NO_PUBLIC_URL)

    async def forget(self, bot_id: int) -> None:
        """The portal no longer has the bot: it and its commands are unregistered here too."""
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(bots)
                .where(bots.c.id == bot_id)
                .values(b24_bot_id=None, registration_state="pending", fetch_offset=None)
            )
            await connection.execute(
                sa.update(commands).where(commands.c.bot_id == bot_id).values(b24_command_id=None)
            )

    def _update_call(self, bot: BotRow, avatar: str | None) -> tuple[str, dict[str, Any]]:
        if bot.api_version == 2:
            properties: dict[str, Any] = {"name": bot.name}
            if bot.color:
                properties["color"] = bot.color
            if avatar:
                properties["avatar"] = avatar
            fields: dict[str, Any] = {"properties": properties, "eventMode": bot.event_mode}
            if bot.event_mode == "webhook":
                fields["webhookUrl"] = self.events_url
            return "imbot.v2.Bot.update", {"botId": bot.b24_bot_id, "fields": fields}
        legacy: dict[str, Any] = {"NAME": bot.name}
        if bot.color:
            legacy["COLOR"] = bot.color
        if avatar:
            legacy["PERSONAL_PHOTO"] = avatar
        handlers = ("EVENT_MESSAGE_ADD", "EVENT_WELCOME_MESSAGE", "EVENT_BOT_DELETE")
        v1_fields = {"PROPERTIES": legacy, **dict.fromkeys(handlers, self.events_url)}
        return "imbot.update", {"BOT_ID": bot.b24_bot_id, "FIELDS": v1_fields}

    async def _record(self, bot_id: int, state: str, error: str | None) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(bots)
                .where(bots.c.id == bot_id)
                .values(registration_state=state, registration_error=error, updated_at=utcnow())
            )


async def bot_row(engine: AsyncEngine, tenant_id: int, bot_id: int) -> BotRow:
    columns = [bots.c[name] for name in BotRow.__dataclass_fields__]
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(*columns).where(bots.c.id == bot_id, bots.c.tenant_id == tenant_id)
            )
        ).one()
    return BotRow(**row._mapping)
