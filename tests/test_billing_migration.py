"""Migration 0002 on both backends: upgrade, downgrade with data in the tables, upgrade again."""

from __future__ import annotations

import sqlalchemy as sa

from billing import Meter, Subscriptions, TurnUsage, list_plans
from tenants.migrate import current_revision, downgrade, head_revision, upgrade
from tenants.runtime import Runtime
from tests.test_billing_plans import a_tenant

BILLING_TABLES = {"plans", "subscriptions", "usage_daily", "usage_flushes", "quota_notices"}


async def table_names(runtime: Runtime) -> set[str]:
    async with runtime.engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


async def test_upgrade_downgrade_upgrade(runtime: Runtime) -> None:
    await upgrade(runtime.engine, "0002")
    assert await current_revision(runtime.engine) == "0002"
    assert await table_names(runtime) >= BILLING_TABLES

    tenant_id = await a_tenant(runtime)
    await Subscriptions(runtime.engine).start_trial(tenant_id)
    meter = Meter(runtime.redis, runtime.engine)
    await meter.add(tenant_id, TurnUsage(messages_in=3))
    await meter.flush()

    await downgrade(runtime.engine, "0001")
    assert await current_revision(runtime.engine) == "0001"
    names = await table_names(runtime)
    assert not BILLING_TABLES & names
    assert {"tenants", "credentials", "bots"} <= names

    await upgrade(runtime.engine)
    assert await current_revision(runtime.engine) == head_revision()
    assert await table_names(runtime) >= BILLING_TABLES
    assert [plan.code for plan in await list_plans(runtime.engine)] == [
        "trial",
        "starter",
        "business",
    ]
    assert await Subscriptions(runtime.engine).get(tenant_id) is None
