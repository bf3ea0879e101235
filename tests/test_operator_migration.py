"""Migration 0003 (``operator_tokens``) on both backends, and that it matches the schema."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import admin_ui.operator.schema  # noqa: F401  (the table on the metadata)
from tenants.migrate import current_revision, downgrade, upgrade
from tenants.runtime import Runtime
from tenants.schema import metadata


async def table_names(runtime: Runtime) -> set[str]:
    async with runtime.engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


async def test_upgrade_downgrade_upgrade(runtime: Runtime) -> None:
    await upgrade(runtime.engine, "0003")
    assert await current_revision(runtime.engine) == "0003"
    assert "operator_tokens" in await table_names(runtime)
    await downgrade(runtime.engine, "0002")
    names = await table_names(runtime)
    assert "operator_tokens" not in names
    assert {"operators", "plans"} <= names
    await upgrade(runtime.engine)
    assert "operator_tokens" in await table_names(runtime)


async def test_the_migration_creates_the_table_the_schema_describes(migrated: Runtime) -> None:
    def differences(sync: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        diffs = compare_metadata(context, metadata)
        return [d for d in diffs if "operator_tokens" in repr(d)]

    async with migrated.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
