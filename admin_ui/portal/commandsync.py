"""Keeping a bot's slash commands in step with Bitrix24 after every change.

Classic API: ``imbot.command.update`` changes everything but ``COMMON``; a change of ``COMMON``
registers the command again. Chatbots 2.0: the command is registered again on every change (the
update method's parameters are not in our reference), so its Bitrix24 id changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.portal.sync import BotSync, bot_row
from tenants.bitrix24 import Bitrix24Client, Bitrix24Error, MethodError
from tenants.registration import BotRow, CommandRow, describe
from tenants.schema import commands
from tenants.store import Tenant

GONE_CODES = ("COMMAND_ID_ERROR", "COMMAND_NOT_FOUND", "BOT_ID_ERROR", "BOT_NOT_FOUND")


class CommandSync:
    def __init__(self, engine: AsyncEngine, bots: BotSync) -> None:
        self._engine = engine
        self._bots = bots

    async def saved(
        self, tenant: Tenant, bot_id: int, command: CommandRow, before: CommandRow | None
    ) -> str | None:
        """Bring Bitrix24 up to date; the problem in words, or None when it is in step."""
        bot = await bot_row(self._engine, tenant.id, bot_id)
        if bot.b24_bot_id is None or self._bots.registrar is None:
            return None  # registered together with the bot
        client = self._bots.client(tenant)
        try:
            if command.b24_command_id is not None:
                if not _reregister(bot, command, before):
                    try:
                        await self._update(client, command)
                        return None
                    except MethodError as error:
                        if error.code not in GONE_CODES:
                            raise
                else:
                    await self._unregister(client, bot, command)
                await self._forget(command.id)
            await self._bots.registrar.register_command(client, bot, bot.b24_bot_id, command)
        except Bitrix24Error as error:
            return describe(error)
        return None

    async def delete(self, tenant: Tenant, bot_id: int, command: CommandRow) -> None:
        """Unregister before the row goes; raises Bitrix24Error unless it is gone already."""
        bot = await bot_row(self._engine, tenant.id, bot_id)
        if command.b24_command_id is None or bot.b24_bot_id is None:
            return
        await self._unregister(self._bots.client(tenant), bot, command)

    async def _update(self, client: Bitrix24Client, command: CommandRow) -> None:
        fields = {
            "COMMAND": command.command,
            "HIDDEN": _yn(command.hidden),
            "EXTRANET_SUPPORT": _yn(command.extranet),
            "EVENT_COMMAND_ADD": self._bots.events_url,
            "LANG": [
                {"LANGUAGE_ID": t["language"], "TITLE": t["title"], "PARAMS": t.get("params", "")}
                for t in command.texts
            ],
        }
        await client.call(
            "imbot.command.update", {"COMMAND_ID": command.b24_command_id, "FIELDS": fields}
        )

    async def _unregister(self, client: Bitrix24Client, bot: BotRow, command: CommandRow) -> None:
        try:
            if bot.api_version == 2:
                await client.call(
                    "imbot.v2.Command.unregister",
                    {"botId": bot.b24_bot_id, "commandId": command.b24_command_id},
                )
            else:
                await client.call(
                    "imbot.command.unregister", {"COMMAND_ID": command.b24_command_id}
                )
        except MethodError as error:
            if error.code not in GONE_CODES:
                raise

    async def _forget(self, command_id: int) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(commands).where(commands.c.id == command_id).values(b24_command_id=None)
            )


def _reregister(bot: BotRow, command: CommandRow, before: CommandRow | None) -> bool:
    return bot.api_version == 2 or (before is not None and before.common != command.common)


def _yn(value: bool) -> str:
    return "Y" if value else "N"
