"""Metering: exact counts under concurrency, and a flush killed at any step loses nothing and
counts nothing twice."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from billing import Meter, TurnUsage, UsageTotals
from billing.metering import DIRTY, FLUSHING
from billing.schema import usage_daily
from tenants.runtime import Runtime
from tests.conftest import SteppedClock

TODAY = date(2026, 1, 1)  # the fake clock's day
TURN = TurnUsage(messages_in=1, replies_out=2, prompt_tokens=30, completion_tokens=7)


class Killed(Exception):
    """The process died here."""


class DiesBeforeApplying(Meter):
    async def _apply(self, key: str) -> int:
        raise Killed


class DiesInsideTheTransaction(Meter):
    async def _add_to_day(self, connection: AsyncConnection, *args: object) -> None:
        await super()._add_to_day(connection, *args)  # type: ignore[arg-type]
        raise Killed


class DiesAfterCommitting(Meter):
    async def _release(self, key: str) -> None:
        raise Killed


def meter(runtime: Runtime, clock: SteppedClock, kind: type[Meter] = Meter) -> Meter:
    return kind(runtime.redis, runtime.engine, clock)


def times(n: int) -> UsageTotals:
    return UsageTotals(n, 2 * n, 30 * n, 7 * n)


async def stored(runtime: Runtime, tenant_id: int = 1) -> UsageTotals:
    async with runtime.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(usage_daily).where(
                    usage_daily.c.tenant_id == tenant_id, usage_daily.c.day == TODAY
                )
            )
        ).first()
    return UsageTotals() if row is None else UsageTotals.of(dict(row._mapping))


async def period(m: Meter, tenant_id: int = 1) -> UsageTotals:
    return await m.usage(tenant_id, TODAY, TODAY + timedelta(days=31))


async def test_twenty_workers_times_a_hundred_turns_count_exactly(
    migrated: Runtime, clock: SteppedClock
) -> None:
    workers = [meter(migrated, clock) for _ in range(20)]

    async def turns(worker: Meter) -> None:
        for _ in range(100):
            await worker.add(1, TURN)

    await asyncio.gather(*(turns(worker) for worker in workers))

    assert await period(workers[0]) == times(2000)
    assert await workers[0].flush() == 1
    assert await stored(migrated) == times(2000)
    assert await period(workers[0]) == times(2000)


async def test_flushing_while_workers_count_loses_nothing(
    migrated: Runtime, clock: SteppedClock
) -> None:
    workers = [meter(migrated, clock) for _ in range(20)]
    done = asyncio.Event()

    async def turns(worker: Meter) -> None:
        for _ in range(100):
            await worker.add(1, TURN)
            await asyncio.sleep(0)

    async def flusher(worker: Meter) -> None:
        while not done.is_set():
            await worker.flush()
            await asyncio.sleep(0)

    flushers = [asyncio.create_task(flusher(meter(migrated, clock))) for _ in range(3)]
    await asyncio.gather(*(turns(worker) for worker in workers))
    done.set()
    await asyncio.gather(*flushers)
    await workers[0].flush()

    assert await stored(migrated) == times(2000)
    assert await period(workers[0]) == times(2000)
    assert not await migrated.redis.smembers(DIRTY)
    assert not await migrated.redis.smembers(FLUSHING)


@pytest.mark.parametrize(
    "dying", [DiesBeforeApplying, DiesInsideTheTransaction, DiesAfterCommitting]
)
async def test_a_killed_flush_loses_nothing_and_counts_nothing_twice(
    migrated: Runtime, clock: SteppedClock, dying: type[Meter]
) -> None:
    worker = meter(migrated, clock)
    for _ in range(10):
        await worker.add(1, TURN)
    await worker.add(2, TURN)

    with pytest.raises(Killed):
        await meter(migrated, clock, dying).flush()

    assert await period(worker) == times(10)  # exact while the leftover waits
    assert await period(worker, 2) == times(1)
    for _ in range(5):
        await worker.add(1, TURN)  # the workers go on counting meanwhile

    restarted = meter(migrated, clock)
    await restarted.flush()
    await restarted.flush()

    assert await stored(migrated) == times(15)
    assert await stored(migrated, 2) == times(1)
    assert await period(restarted) == times(15)
    assert not await migrated.redis.smembers(FLUSHING)


async def test_usage_is_kept_per_utc_day(migrated: Runtime, clock: SteppedClock) -> None:
    worker = meter(migrated, clock)
    await worker.add(1, TURN)
    await worker.flush()
    clock.fake.advance(86_400)
    await worker.add(1, TURN)
    await worker.add(1, TurnUsage())  # nothing to count, nothing written

    daily = await worker.daily(1, TODAY, TODAY + timedelta(days=31))
    assert [(d.day, d.usage) for d in daily] == [
        (TODAY, times(1)),
        (TODAY + timedelta(days=1), times(1)),
    ]
    assert await worker.usage(1, TODAY + timedelta(days=1), TODAY + timedelta(days=2)) == times(1)
