"""Alembic migrations run from code, on the same async engine the services use."""

from __future__ import annotations

from importlib.resources import files
from typing import cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.errors import SchemaError


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return cast(str, head)


def is_known_revision(revision: str) -> bool:
    return revision in {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; running it again at that revision changes nothing."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


def _upgrade(connection: sa.Connection, revision: str) -> None:
    try:
        command.upgrade(alembic_config(connection), revision)
    except CommandError as error:
        current = MigrationContext.configure(connection).get_current_revision()
        raise SchemaError(
            f"cannot migrate the database from revision {current!r} to {revision!r}: {error}."
            " A database migrated by a newer BitBot cannot be run by this one."
        ) from None


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
