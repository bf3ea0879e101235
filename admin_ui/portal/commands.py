"""A bot's slash commands: command, flags, and a title and params hint per language.

Every change is synced with Bitrix24 right after it is saved. A sync problem does not undo the
save: the command shows as not registered, with Bitrix24's words, and saving again retries.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin_ui.portal.audit import Actor, record
from admin_ui.portal.bots import BotService
from admin_ui.portal.commandsync import CommandSync
from admin_ui.portal.validation import Bitrix24Refused, Form, Invalid, Message, NotFound
from tenants.bitrix24 import Bitrix24Error
from tenants.registration import CommandRow, describe
from tenants.schema import commands, utcnow

COMMAND = re.compile(r"^[A-Za-z0-9_]{1,32}$")
LANGUAGE = re.compile(r"^[a-z]{2}$")
MAX_LANGUAGES = 10
TITLE_LIMIT = 100
PARAMS_LIMIT = 100


@dataclass(frozen=True)
class CommandView:
    id: int
    bot_id: int
    command: str
    common: bool
    hidden: bool
    extranet: bool
    texts: list[dict[str, str]]
    b24_command_id: int | None

    @property
    def registered(self) -> bool:
        return self.b24_command_id is not None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "registered": self.registered}

    def row(self) -> CommandRow:
        fields = {k: v for k, v in asdict(self).items() if k != "bot_id"}
        return CommandRow(**fields)


@dataclass(frozen=True)
class Saved:
    command: CommandView
    sync_error: str | None


_COLUMNS = [commands.c[name] for name in CommandView.__dataclass_fields__]


class CommandService:
    def __init__(self, engine: AsyncEngine, bots: BotService, sync: CommandSync) -> None:
        self._engine = engine
        self._bots = bots
        self._sync = sync

    async def list(self, actor: Actor, bot_id: int) -> list[CommandView]:
        await self._bots.get(actor, bot_id)
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                sa.select(*_COLUMNS)
                .where(commands.c.bot_id == bot_id, commands.c.tenant_id == actor.tenant_id)
                .order_by(commands.c.command)
            )
            return [CommandView(**row._mapping) for row in rows]

    async def get(self, actor: Actor, bot_id: int, command_id: int) -> CommandView:
        await self._bots.get(actor, bot_id)
        async with self._engine.connect() as connection:
            return await _get(connection, actor, bot_id, command_id)

    async def create(self, actor: Actor, bot_id: int, data: dict[str, Any]) -> Saved:
        await self._bots.get(actor, bot_id)
        values = _read(data)
        now = utcnow()
        async with self._engine.begin() as connection:
            command_id = await _write(
                connection,
                sa.insert(commands)
                .values(tenant_id=actor.tenant_id, bot_id=bot_id, created_at=now, updated_at=now)
                .returning(commands.c.id),
                values,
            )
            target = f"bot:{bot_id}/command:{command_id}"
            await record(
                connection, actor, "command.create", target, {"command": values["command"]}
            )
            saved = await _get(connection, actor, bot_id, command_id)
        return await self._synced(actor, saved, None)

    async def update(
        self, actor: Actor, bot_id: int, command_id: int, data: dict[str, Any]
    ) -> Saved:
        before = await self.get(actor, bot_id, command_id)
        editable = {k: getattr(before, k) for k in ("command", "common", "hidden", "extranet")}
        values = _read({**editable, "texts": before.texts, **data})
        changed = sorted(k for k, v in values.items() if getattr(before, k) != v)
        async with self._engine.begin() as connection:
            await _write(
                connection,
                sa.update(commands)
                .where(commands.c.id == command_id, commands.c.tenant_id == actor.tenant_id)
                .values(updated_at=utcnow()),
                values,
            )
            target = f"bot:{bot_id}/command:{command_id}"
            await record(connection, actor, "command.update", target, {"changed": changed})
            saved = await _get(connection, actor, bot_id, command_id)
        return await self._synced(actor, saved, before)

    async def delete(
        self, actor: Actor, bot_id: int, command_id: int, *, force: bool = False
    ) -> None:
        current = await self.get(actor, bot_id, command_id)
        try:
            await self._sync.delete(await self._bots.tenant(actor), bot_id, current.row())
        except Bitrix24Error as error:
            if not force:
                message = Message("command.unregister_failed", {"error": describe(error)})
                raise Bitrix24Refused(message) from None
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.delete(commands).where(
                    commands.c.id == command_id, commands.c.tenant_id == actor.tenant_id
                )
            )
            target = f"bot:{bot_id}/command:{command_id}"
            details = {"command": current.command, "forced": force}
            await record(connection, actor, "command.delete", target, details)

    async def _synced(self, actor: Actor, saved: CommandView, before: CommandView | None) -> Saved:
        tenant = await self._bots.tenant(actor)
        problem = await self._sync.saved(
            tenant, saved.bot_id, saved.row(), before.row() if before else None
        )
        return Saved(await self.get(actor, saved.bot_id, saved.id), problem)


def _read(data: dict[str, Any]) -> dict[str, Any]:
    form = Form(data)
    command = form.text("command", limit=33, required=True).removeprefix("/")
    if command and "command" not in form.errors and not COMMAND.match(command):
        form.fail("command", "command.bad_name")
    values = {
        "command": command,
        "common": form.boolean("common"),
        "hidden": form.boolean("hidden"),
        "extranet": form.boolean("extranet"),
        "texts": _texts(form),
    }
    form.check()
    return values


def _texts(form: Form) -> list[dict[str, str]]:
    raw = form.data.get("texts")
    if not isinstance(raw, list) or not raw:
        form.fail("texts", "command.texts_required")
        return []
    if len(raw) > MAX_LANGUAGES:
        form.fail("texts", "command.too_many_languages", limit=MAX_LANGUAGES)
        return []
    texts: list[dict[str, str]] = []
    for index, item in enumerate(raw):
        entry = Form(item if isinstance(item, dict) else {})
        language = entry.text("language", limit=2, required=True).lower()
        if language and "language" not in entry.errors and not LANGUAGE.match(language):
            entry.fail("language", "command.bad_language")
        if language in (t["language"] for t in texts):
            entry.fail("language", "command.language_twice")
        title = entry.text("title", limit=TITLE_LIMIT, required=True)
        params = entry.text("params", limit=PARAMS_LIMIT)
        for name, problem in entry.errors.items():
            form.errors.setdefault(f"texts.{index}.{name}", problem)
        texts.append({"language": language, "title": title, "params": params})
    return texts


async def _write(connection: AsyncConnection, statement: Any, values: dict[str, Any]) -> int:
    try:
        result = await connection.execute(statement.values(**values))
    except IntegrityError:
        raise Invalid({"command": Message("field.taken")}) from None
    returned = result.scalar_one() if result.returns_rows else 0
    return int(returned)


async def _get(
    connection: AsyncConnection, actor: Actor, bot_id: int, command_id: int
) -> CommandView:
    row = (
        await connection.execute(
            sa.select(*_COLUMNS).where(
                commands.c.id == command_id,
                commands.c.bot_id == bot_id,
                commands.c.tenant_id == actor.tenant_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(Message("command.not_found"))
    return CommandView(**row._mapping)
