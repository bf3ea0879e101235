"""The usage CSV: its rows, its range, formula injection, and the chart of the tenant page."""

from __future__ import annotations

import csv
import io
from datetime import date

import httpx2
import pytest
import sqlalchemy as sa

from admin_ui.operator.chart import nice_ceiling, usage_chart
from admin_ui.operator.export import cell
from billing import DailyUsage, Meter, TurnUsage, UsageTotals
from tenants.runtime import Runtime
from tenants.schema import tenants
from tests.conftest import SteppedClock
from tests.operator_kit import a_tenant, audit_rows, signed_in

DAY = 86_400.0


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("https://evil.example")', '\'=HYPERLINK("https://evil.example")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("acme.bitrix24.com", "acme.bitrix24.com"),
        (42, 42),
        (None, ""),
    ],
)
def test_cells_that_look_like_formulas_are_made_text(value: object, written: object) -> None:
    assert cell(value) == written


async def test_the_export_has_a_row_per_tenant_and_day_with_use(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    acme = await a_tenant(migrated, "acme")
    evil = await a_tenant(migrated, "evil", domain="=cmd|' /C calc'!A0")
    idle = await a_tenant(migrated, "idle")
    meter = Meter(migrated.redis, migrated.engine, clock)
    await meter.add(acme, TurnUsage(messages_in=5, replies_out=4, prompt_tokens=100))
    await meter.flush()
    clock.fake.advance(DAY)
    await meter.add(acme, TurnUsage(messages_in=1))  # not flushed: still counted
    await meter.add(evil, TurnUsage(messages_in=2, replies_out=2, completion_tokens=7))
    await meter.flush()
    async with migrated.engine.begin() as connection:  # usage outlives a deleted tenant
        await connection.execute(sa.delete(tenants).where(tenants.c.id == evil))
    await meter.add(evil, TurnUsage(messages_in=1))
    async with signed_in(migrated, http, clock) as operator:
        response = await operator.get(
            "/operator/export/usage.csv", **{"from": "2026-01-01", "to": "2026-01-31"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = 'attachment; filename="bitbot-usage-20260101-20260131.csv"'
    assert response.headers["content-disposition"] == disposition
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows == [
        [
            "tenant_id",
            "member_id",
            "domain",
            "day",
            "messages_in",
            "replies_out",
            "prompt_tokens",
            "completion_tokens",
        ],
        [str(acme), "acme-member", "acme.bitrix24.com", "2026-01-01", "5", "4", "100", "0"],
        [str(acme), "acme-member", "acme.bitrix24.com", "2026-01-02", "1", "0", "0", "0"],
        [str(evil), "", "(deleted)", "2026-01-02", "3", "2", "0", "7"],
    ]
    assert idle not in [int(row[0]) for row in rows[1:]]
    (export,) = await audit_rows(migrated, "usage.export")
    assert export["details"]["from"] == "2026-01-01"


async def test_formulas_in_portal_names_stay_text(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    evil = await a_tenant(migrated, "evil", domain="=cmd|' /C calc'!A0")
    await Meter(migrated.redis, migrated.engine, clock).add(evil, TurnUsage(messages_in=1))
    async with signed_in(migrated, http, clock) as operator:
        response = await operator.get("/operator/export/usage.csv")
    (_, row) = list(csv.reader(io.StringIO(response.text)))
    assert row[2] == "'=cmd|' /C calc'!A0"


async def test_a_bad_range_shows_the_form_with_the_reason(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        form = await operator.get("/operator/export")
        assert 'value="2026-01-01"' in form.text
        bad = await operator.get(
            "/operator/export/usage.csv", **{"from": "2026-02-01", "to": "2026-01-01"}
        )
        assert bad.status_code == 400
        assert "the end comes before the start" in bad.text
        assert bad.headers["content-type"].startswith("text/html")
    assert await audit_rows(migrated, "usage.export") == []


def test_the_chart_scales_to_round_numbers() -> None:
    assert [nice_ceiling(v) for v in (0, 3, 5, 9, 41, 300, 999, 1234)] == [
        4,
        4,
        8,
        20,
        80,
        400,
        1000,
        2000,
    ]
    days = [date(2026, 1, d) for d in range(1, 4)]
    svg = usage_chart(days, [DailyUsage(days[1], UsageTotals(messages_in=7, replies_out=6))])
    assert svg.count('class="bar messages_in"') == 3
    assert "2026-01-02: 7 messages in" in svg
    assert "2026-01-02: 6 replies out" in svg
    assert "Usage from 2026-01-01 to 2026-01-03: 7 messages in, 6 replies out" in svg
    assert "<script" not in svg
    assert "http" not in svg.replace("http://www.w3.org", "")
