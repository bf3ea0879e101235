"""Migration 0004 (``bots.handoff_on_failure``) on both backends, and that it matches the schema.

The downgrade must keep the bots and their commands: a table copy on SQLite (Alembic's batch
mode) drops ``bots``, and with foreign keys on that would delete the commands with it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tenants.migrate import current_revision, downgrade, head_revision, upgrade
from tenants.runtime import Runtime
from tenants.schema import bots, commands, connectors, metadata, providers, utcnow
from tests.test_billing_plans import a_tenant


async def bot_columns(runtime: Runtime) -> set[str]:
    async with runtime.engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: {column["name"] for column in sa.inspect(sync).get_columns("bots")}
        )


async def a_bot_with_a_command(runtime: Runtime) -> int:
    tenant_id = await a_tenant(runtime)
    stamps = {"created_at": utcnow(), "updated_at": utcnow()}
    async with runtime.engine.begin() as connection:
        provider_id = await connection.scalar(
            sa.insert(providers)
            .values(name="Dify", type="dify_chatflow", base_url="https://dify.example/v1", **stamps)
            .returning(providers.c.id)
        )
        connector_id = await connection.scalar(
            sa.insert(connectors)
            .values(tenant_id=tenant_id, provider_id=provider_id, name="Flow", **stamps)
            .returning(connectors.c.id)
        )
        bot_id = await connection.scalar(
            sa.insert(bots)
            .values(
                tenant_id=tenant_id,
                connector_id=connector_id,
                name="Helper",
                code="bitbot_helper",
                type="openline",
                api_version=2,
                **stamps,
            )
            .returning(bots.c.id)
        )
        await connection.execute(
            sa.insert(commands).values(
                tenant_id=tenant_id,
                bot_id=bot_id,
                command="help",
                texts=[{"language": "en", "title": "Help", "params": ""}],
                **stamps,
            )
        )
    return int(bot_id)


async def test_upgrade_downgrade_upgrade_keeps_bots_and_commands(runtime: Runtime) -> None:
    await upgrade(runtime.engine, "0003")
    assert "handoff_on_failure" not in await bot_columns(runtime)
    bot_id = await a_bot_with_a_command(runtime)

    await upgrade(runtime.engine, "0004")
    assert await current_revision(runtime.engine) == "0004"
    assert "handoff_on_failure" in await bot_columns(runtime)
    async with runtime.engine.connect() as connection:
        # Existing bots keep today's behaviour: no handoff until the admin turns it on.
        value = await connection.scalar(
            sa.text("SELECT handoff_on_failure FROM bots WHERE id = :id"), {"id": bot_id}
        )
    assert value in (False, 0)

    await downgrade(runtime.engine, "0003")
    assert await current_revision(runtime.engine) == "0003"
    assert "handoff_on_failure" not in await bot_columns(runtime)
    async with runtime.engine.connect() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM bots")) == 1
        assert await connection.scalar(sa.text("SELECT count(*) FROM commands")) == 1

    await upgrade(runtime.engine)
    assert await current_revision(runtime.engine) == head_revision()
    async with runtime.engine.begin() as connection:
        await connection.execute(
            sa.update(bots).where(bots.c.id == bot_id).values(handoff_on_failure=True)
        )
        assert await connection.scalar(
            sa.select(bots.c.handoff_on_failure).where(bots.c.id == bot_id)
        )


async def test_the_migration_adds_the_column_the_schema_describes(migrated: Runtime) -> None:
    def differences(sync: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        diffs = compare_metadata(context, metadata)
        return [d for d in diffs if "handoff_on_failure" in repr(d)]

    async with migrated.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
