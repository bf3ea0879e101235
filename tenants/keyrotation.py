"""Re-encrypt every sealed column to the vault's newest key (``bitbot keys rotate``).

Rows are walked by primary key in batches; each update only applies if the row still holds the
ciphertext that was read, so a value written concurrently by a service is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.schema import connectors, credentials
from tenants.vault import Vault, tenant_context

BATCH_SIZE = 500


@dataclass(frozen=True)
class SealedColumn:
    table: sa.Table
    column: str

    @property
    def key(self) -> sa.Column[int]:
        return self.table.c.id if "id" in self.table.c else self.table.c.tenant_id


SEALED_COLUMNS = (
    SealedColumn(credentials, "access_token"),
    SealedColumn(credentials, "refresh_token"),
    SealedColumn(connectors, "api_key"),
)

Progress = Callable[[int, int], None]


@dataclass
class RotationReport:
    examined: int = 0
    rotated: int = 0


async def count_sealed(engine: AsyncEngine) -> int:
    total = 0
    async with engine.connect() as connection:
        for sealed in SEALED_COLUMNS:
            column = sealed.table.c[sealed.column]
            query = sa.select(sa.func.count()).where(column.is_not(None))
            total += (await connection.execute(query)).scalar_one()
    return total


async def rotate(engine: AsyncEngine, vault: Vault, progress: Progress) -> RotationReport:
    total = await count_sealed(engine)
    report = RotationReport()
    progress(0, total)
    for sealed in SEALED_COLUMNS:
        await _rotate_column(engine, vault, sealed, report, lambda done: progress(done, total))
    return report


async def _rotate_column(
    engine: AsyncEngine,
    vault: Vault,
    sealed: SealedColumn,
    report: RotationReport,
    progress: Callable[[int], None],
) -> None:
    table, column, key = sealed.table, sealed.table.c[sealed.column], sealed.key
    after = -1
    while True:
        async with engine.begin() as connection:
            rows = (
                await connection.execute(
                    sa.select(key, table.c.tenant_id, column)
                    .where(key > after, column.is_not(None))
                    .order_by(key)
                    .limit(BATCH_SIZE)
                )
            ).all()
            for row_key, tenant_id, value in rows:
                if vault.needs_rotation(value):
                    context = tenant_context(tenant_id, table.name, sealed.column)
                    fresh = vault.seal(vault.open(value, context), context)
                    await connection.execute(
                        sa.update(table)
                        .where(key == row_key, column == value)
                        .values({sealed.column: fresh})
                    )
                    report.rotated += 1
        if not rows:
            return
        after = rows[-1][0]
        report.examined += len(rows)
        progress(report.examined)
