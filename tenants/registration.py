"""Registering a tenant's bots and their commands in Bitrix24, in the API version of each bot.

Chatbots 2.0 registration always names ``eventMode`` and, for webhook bots, ``webhookUrl``
(the API's own default is fetch). The classic API cannot change a bot's ``TYPE``, so a type change
there means unregistering and registering again. A failed registration is recorded in words on the
bot so the portal admin can fix it or delete the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.bitrix24 import Bitrix24Client, Bitrix24Error, MethodError
from tenants.schema import bots, commands, utcnow

V1_TYPES = {"openline": "O", "bot": "B"}


@dataclass(frozen=True)
class BotRow:
    id: int
    code: str
    name: str
    type: str
    api_version: int
    event_mode: str
    color: str | None
    avatar_url: str | None
    b24_bot_id: int | None


@dataclass(frozen=True)
class CommandRow:
    id: int
    command: str
    common: bool
    hidden: bool
    extranet: bool
    texts: list[dict[str, str]]
    b24_command_id: int | None


class Registrar:
    def __init__(self, engine: AsyncEngine, public_url: str) -> None:
        self._engine = engine
        self._events_url = f"{public_url.rstrip('/')}/b24/events"

    async def register_pending(self, client: Bitrix24Client, tenant_id: int) -> None:
        """After a reinstall: every bot kept from before gets registered again (new BOT_IDs)."""
        async with self._engine.connect() as connection:
            pending = (
                await connection.execute(
                    sa.select(bots.c.id).where(
                        bots.c.tenant_id == tenant_id, bots.c.b24_bot_id.is_(None)
                    )
                )
            ).scalars()
            bot_ids = list(pending)
        for bot_id in bot_ids:
            await self.register(client, tenant_id, bot_id)

    async def register(self, client: Bitrix24Client, tenant_id: int, bot_id: int) -> bool:
        bot = await self._bot(tenant_id, bot_id)
        try:
            b24_bot_id = await self._register_bot(client, bot)
            await self._save_bot(bot.id, b24_bot_id=b24_bot_id, state="registered", error=None)
            for command in await self._commands(bot.id):
                await self.register_command(client, bot, b24_bot_id, command)
        except Bitrix24Error as error:
            await self._save_bot(bot.id, state="failed", error=describe(error))
            return False
        return True

    async def unregister(self, client: Bitrix24Client, tenant_id: int, bot_id: int) -> None:
        bot = await self._bot(tenant_id, bot_id)
        if bot.b24_bot_id is None:
            return
        try:
            if bot.api_version == 2:
                await client.call("imbot.v2.Bot.unregister", {"botId": bot.b24_bot_id})
            else:
                await client.call("imbot.unregister", {"BOT_ID": bot.b24_bot_id})
        except MethodError as error:
            if "NOT_FOUND" not in error.code and error.code != "BOT_ID_ERROR":
                raise  # gone already is fine; anything else the admin must see

    async def register_command(
        self, client: Bitrix24Client, bot: BotRow, b24_bot_id: int, command: CommandRow
    ) -> None:
        if bot.api_version == 2:
            result = await client.call(
                "imbot.v2.Command.register",
                {
                    "botId": b24_bot_id,
                    "fields": {
                        "command": command.command,
                        "title": {t["language"]: t.get("title", "") for t in command.texts},
                        "params": {t["language"]: t.get("params", "") for t in command.texts},
                        "common": command.common,
                        "hidden": command.hidden,
                        "extranetSupport": command.extranet,
                    },
                },
            )
            command_id = int(result["command"]["id"])
        else:
            command_id = int(
                await client.call(
                    "imbot.command.register",
                    {
                        "BOT_ID": b24_bot_id,
                        "COMMAND": command.command,
                        "COMMON": _yn(command.common),
                        "HIDDEN": _yn(command.hidden),
                        "EXTRANET_SUPPORT": _yn(command.extranet),
                        "EVENT_COMMAND_ADD": self._events_url,
                        "LANG": [
                            {
                                "LANGUAGE_ID": t["language"],
                                "TITLE": t.get("title", ""),
                                "PARAMS": t.get("params", ""),
                            }
                            for t in command.texts
                        ],
                    },
                )
            )
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(commands)
                .where(commands.c.id == command.id)
                .values(b24_command_id=command_id, updated_at=utcnow())
            )

    async def _register_bot(self, client: Bitrix24Client, bot: BotRow) -> int:
        if bot.api_version == 2:
            fields: dict[str, Any] = {
                "code": bot.code,
                "type": bot.type,
                "eventMode": bot.event_mode,
                "properties": _properties(bot, v2=True),
            }
            if bot.event_mode == "webhook":
                fields["webhookUrl"] = self._events_url
            result = await client.call("imbot.v2.Bot.register", {"fields": fields})
            return int(result["bot"]["id"])
        result = await client.call(
            "imbot.register",
            {
                "CODE": bot.code,
                "TYPE": V1_TYPES[bot.type],
                "OPENLINE": _yn(bot.type == "openline"),
                "EVENT_MESSAGE_ADD": self._events_url,
                "EVENT_WELCOME_MESSAGE": self._events_url,
                "EVENT_BOT_DELETE": self._events_url,
                "PROPERTIES": _properties(bot, v2=False),
            },
        )
        return int(result)

    async def _bot(self, tenant_id: int, bot_id: int) -> BotRow:
        columns = [bots.c[name] for name in BotRow.__dataclass_fields__]
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(*columns).where(bots.c.id == bot_id, bots.c.tenant_id == tenant_id)
                )
            ).one()
        return BotRow(**row._mapping)

    async def _commands(self, bot_id: int) -> list[CommandRow]:
        columns = [commands.c[name] for name in CommandRow.__dataclass_fields__]
        async with self._engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(*columns).where(commands.c.bot_id == bot_id).order_by(commands.c.id)
                )
            ).all()
        return [CommandRow(**row._mapping) for row in rows]

    async def _save_bot(self, bot_id: int, *, state: str, error: str | None, **values: Any) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(bots)
                .where(bots.c.id == bot_id)
                .values(
                    registration_state=state,
                    registration_error=error,
                    updated_at=utcnow(),
                    **values,
                )
            )


def describe(error: Bitrix24Error) -> str:
    """Bitrix24's answer in words for the admin; never a token (errors carry none)."""
    return f"Bitrix24 refused: {error.description or error.code} ({error.code})"[:500]


def _properties(bot: BotRow, *, v2: bool) -> dict[str, str]:
    if v2:
        return {"name": bot.name, **({"color": bot.color} if bot.color else {})}
    return {"NAME": bot.name, **({"COLOR": bot.color} if bot.color else {})}


def _yn(value: bool) -> str:
    return "Y" if value else "N"
