"""Alembic environment: runs on a connection handed over by ``tenants.migrate``, or on its own
engine (from ``DATABASE_URL``) when a developer calls ``alembic`` directly."""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa
from alembic import context

import admin_ui.operator.schema  # noqa: F401  (registers the operator console's table)
import billing.schema  # noqa: F401  (registers the billing tables on the metadata)
from tenants.db import create_engine
from tenants.schema import metadata
from tenants.settings import load_settings

# Several pods may run `bitbot migrate` at once during a rollout; PostgreSQL serializes them.
MIGRATION_LOCK_ID = 0x0B17B07


def run_on(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    engine = create_engine(load_settings(os.environ).database_url)
    async with engine.begin() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    run_on(given)
else:
    asyncio.run(run_standalone())
