"""CSV export of usage: one row per tenant and UTC day with any use, for a range of days.

Counts include what workers metered but have not flushed yet (``Meter.daily``). Text cells that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) get a leading apostrophe, so a portal named ``=HYPERLINK(…)`` stays text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.operator.tenantactions import UsageRange
from billing import Meter
from billing.schema import USAGE_FIELDS, usage_daily
from tenants.schema import tenants

HEADER = ("tenant_id", "member_id", "domain", "day", *USAGE_FIELDS)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_line(values: Iterable[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([cell(value) for value in values])
    return out.getvalue()


def filename(span: UsageRange) -> str:
    return f"bitbot-usage-{span.first:%Y%m%d}-{span.last:%Y%m%d}.csv"


async def usage_csv(engine: AsyncEngine, meter: Meter, span: UsageRange) -> AsyncIterator[str]:
    """The CSV text, a tenant at a time; tenants deleted since keep their usage rows."""
    yield csv_line(HEADER)
    end = span.last + timedelta(days=1)
    known = sa.select(tenants.c.id)
    used = sa.select(usage_daily.c.tenant_id).where(
        usage_daily.c.day >= span.first, usage_daily.c.day < end
    )
    async with engine.connect() as connection:
        ids = sorted(set(await connection.scalars(known)) | set(await connection.scalars(used)))
        names = {
            row.id: (row.member_id, row.domain)
            for row in await connection.execute(
                sa.select(tenants.c.id, tenants.c.member_id, tenants.c.domain)
            )
        }
    for tenant_id in ids:
        member_id, domain = names.get(tenant_id, ("", "(deleted)"))
        for daily in await meter.daily(tenant_id, span.first, end):
            counts = [getattr(daily.usage, name) for name in USAGE_FIELDS]
            yield csv_line([tenant_id, member_id, domain, daily.day.isoformat(), *counts])
