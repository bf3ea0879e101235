"""Usage metering: counted in Redis on the hot path, flushed to ``usage_daily`` exactly once.

Hot path: ``HINCRBY bitbot:usage:{tenant}:{yyyymmdd}`` per counter, then ``SADD`` of that key to
``bitbot:usage:dirty``, sent in order in one pipeline shared with concurrent turns. HINCRBY is
atomic, so concurrent workers never lose counts. The pair need not be atomic: a claim (below) that
runs between them takes the increment with the hash, and the SADD then names a key that no longer
exists, which the next claim skips.

Flush, crash-safe and idempotent:

1. claim (one Lua script): RENAME the live hash to ``bitbot:usage:flush:{tenant}:{day}:{uuid}``,
   record it in ``bitbot:usage:flushing``, drop the live key from the dirty set. New increments
   start a fresh live hash.
2. apply (one database transaction): insert the flush id into the ``usage_flushes`` ledger and
   add the hash's counts to the ``usage_daily`` row. An id already in the ledger adds nothing.
3. release: delete the flushing hash and its set entry.

A process that dies after 1 leaves the hash in ``bitbot:usage:flushing``; every flush first
re-applies such leftovers (a death before the commit of 2 rolled it back; a death after it finds the
id in the ledger and only releases). Concurrent flushers are safe for the same reason.

Usage of a period = ``usage_daily`` rows + live hashes + flushing hashes not yet in the ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from billing.schema import USAGE_FIELDS, usage_daily, usage_flushes
from billing.seam import TurnUsage
from tenants.autopipe import AutoPipeline
from tenants.clock import Clock, SystemClock
from tenants.db import reading

PREFIX = "bitbot:usage:"
DIRTY = f"{PREFIX}dirty"
FLUSHING = f"{PREFIX}flushing"
LEDGER_DAYS = 30

# KEYS: live hash, dirty set, flushing set, flushing hash. Returns 1 when claimed.
_CLAIM = """
redis.call('SREM', KEYS[2], KEYS[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[4])
redis.call('SADD', KEYS[3], KEYS[4])
return 1
"""


@dataclass(frozen=True)
class UsageTotals:
    messages_in: int = 0
    replies_out: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(*(getattr(self, f) + getattr(other, f) for f in USAGE_FIELDS))

    @classmethod
    def of(cls, values: dict[str, int]) -> UsageTotals:
        return cls(**{name: int(values.get(name, 0) or 0) for name in USAGE_FIELDS})


@dataclass(frozen=True)
class DailyUsage:
    day: date
    usage: UsageTotals


def live_key(tenant_id: int, day: date) -> str:
    return f"{PREFIX}{tenant_id}:{day:%Y%m%d}"


def _flush_key(tenant_id: int, day: date) -> str:
    return f"{PREFIX}flush:{tenant_id}:{day:%Y%m%d}:{uuid.uuid4()}"


def _parse_flush_key(key: str) -> tuple[int, date, str]:
    tenant, day, flush_id = key.removeprefix(f"{PREFIX}flush:").split(":")
    return int(tenant), datetime.strptime(day, "%Y%m%d").date(), flush_id


class Meter:
    def __init__(self, redis: Redis, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._redis: Any = redis
        self._engine = engine
        self._clock = clock or SystemClock()
        self._claim: Any = redis.register_script(_CLAIM)
        self._batched = AutoPipeline.of(redis)

    def today(self) -> date:
        return datetime.fromtimestamp(self._clock.now(), UTC).date()

    async def add(self, tenant_id: int, usage: TurnUsage) -> None:
        """The hot path: count ``usage`` on today's (UTC) hash."""
        counts = {name: getattr(usage, name) for name in USAGE_FIELDS if getattr(usage, name)}
        if not counts:
            return
        key = live_key(tenant_id, self.today())
        commands: list[tuple[Any, ...]] = [("HINCRBY", key, n, a) for n, a in counts.items()]
        await self._batched.call_many([*commands, ("SADD", DIRTY, key)])

    async def flush(self) -> int:
        """Move every pending count to the database; returns how many hashes were applied."""
        leftovers = sorted(_text(key) for key in await self._redis.smembers(FLUSHING))
        claimed = []
        for live in await self._redis.smembers(DIRTY):
            key = await self._claim_one(_text(live))
            if key is not None:
                claimed.append(key)
        applied = 0
        for key in [*leftovers, *claimed]:
            applied += await self._apply(key)
            await self._release(key)
        await self._prune()
        return applied

    async def daily(
        self,
        tenant_id: int,
        first: date,
        last: date,
        connection: AsyncConnection | None = None,
    ) -> list[DailyUsage]:
        """Usage per day in ``[first, last)``, pending counts included; days without use left
        out."""
        days = [first + timedelta(days=n) for n in range((last - first).days)]
        pending = await self._pending(tenant_id, days)
        async with reading(self._engine, connection) as reader:
            stored = await _stored(reader, tenant_id, first, last)
            unapplied = await _unapplied(reader, [fid for fid, _, _ in pending.flushing])
        totals = dict(stored)
        for day, usage in pending.live:
            totals[day] = totals.get(day, UsageTotals()) + usage
        for flush_id, day, usage in pending.flushing:
            if flush_id in unapplied:
                totals[day] = totals.get(day, UsageTotals()) + usage
        return [DailyUsage(day, totals[day]) for day in sorted(totals)]

    async def usage(
        self,
        tenant_id: int,
        first: date,
        last: date,
        connection: AsyncConnection | None = None,
    ) -> UsageTotals:
        """Totals over the days ``[first, last)``."""
        total = UsageTotals()
        for item in await self.daily(tenant_id, first, last, connection):
            total = total + item.usage
        return total

    async def _claim_one(self, live: str) -> str | None:
        tenant, day = live.removeprefix(PREFIX).split(":")
        target = _flush_key(int(tenant), datetime.strptime(day, "%Y%m%d").date())
        claimed = await self._claim(keys=[live, DIRTY, FLUSHING, target])
        return target if int(claimed) else None

    async def _apply(self, key: str) -> int:
        tenant_id, day, flush_id = _parse_flush_key(key)
        counts = UsageTotals.of(_ints(await self._redis.hgetall(key)))
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        async with self._engine.begin() as connection:
            insert = _insert_for(connection)
            first_time = await connection.scalar(
                insert(usage_flushes)
                .values(flush_id=flush_id, tenant_id=tenant_id, day=day, applied_at=now)
                .on_conflict_do_nothing()
                .returning(usage_flushes.c.flush_id)
            )
            if first_time is None:
                return 0
            await self._add_to_day(connection, tenant_id, day, counts, now)
        return 1

    async def _add_to_day(
        self,
        connection: AsyncConnection,
        tenant_id: int,
        day: date,
        counts: UsageTotals,
        now: datetime,
    ) -> None:
        values = {f.name: getattr(counts, f.name) for f in fields(UsageTotals)}
        statement = _insert_for(connection)(usage_daily).values(
            tenant_id=tenant_id, day=day, updated_at=now, **values
        )
        added = {name: usage_daily.c[name] + statement.excluded[name] for name in values}
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[usage_daily.c.tenant_id, usage_daily.c.day],
                set_={**added, "updated_at": statement.excluded.updated_at},
            )
        )

    async def _release(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.srem(FLUSHING, key)
            await pipe.execute()

    async def _prune(self) -> None:
        horizon = datetime.fromtimestamp(self._clock.now(), UTC) - timedelta(days=LEDGER_DAYS)
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.delete(usage_flushes).where(usage_flushes.c.applied_at < horizon)
            )

    async def _pending(self, tenant_id: int, days: list[date]) -> _Pending:
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(live_key(tenant_id, day))
            pipe.smembers(FLUSHING)
            *live, flushing = await pipe.execute()
        pending = _Pending(
            live=[
                (day, UsageTotals.of(_ints(raw)))
                for day, raw in zip(days, live, strict=True)
                if raw
            ]
        )
        wanted = set(days)
        for key in sorted(_text(k) for k in flushing):
            owner, day, flush_id = _parse_flush_key(key)
            if owner == tenant_id and day in wanted:
                counts = UsageTotals.of(_ints(await self._redis.hgetall(key)))
                pending.flushing.append((flush_id, day, counts))
        return pending


@dataclass
class _Pending:
    live: list[tuple[date, UsageTotals]]
    flushing: list[tuple[str, date, UsageTotals]] = field(default_factory=list)


async def _stored(
    connection: AsyncConnection, tenant_id: int, first: date, last: date
) -> dict[date, UsageTotals]:
    rows = await connection.execute(
        sa.select(usage_daily).where(
            usage_daily.c.tenant_id == tenant_id,
            usage_daily.c.day >= first,
            usage_daily.c.day < last,
        )
    )
    return {row.day: UsageTotals.of(dict(row._mapping)) for row in rows}


async def _unapplied(connection: AsyncConnection, flush_ids: Iterable[str]) -> set[str]:
    wanted = set(flush_ids)
    if not wanted:
        return set()
    applied = await connection.scalars(
        sa.select(usage_flushes.c.flush_id).where(usage_flushes.c.flush_id.in_(wanted))
    )
    return wanted - set(applied)


def _insert_for(connection: AsyncConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ints(raw: dict[Any, Any]) -> dict[str, int]:
    return {_text(name): int(value) for name, value in raw.items()}
