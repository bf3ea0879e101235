"""Quota notices to a portal's admins: once per period and threshold, in the portal's language.

``quota_notices`` holds a claim per (tenant, period, threshold); whoever inserts it sends the
notice, so several workers crossing the same threshold together notify once. A notice that could
not be delivered gives its claim back and is tried again on the next recorded turn.

Recipients: the admin who installed the app (``credentials.user_id``), the one admin BitBot knows
without an extra scope-hungry user search.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.schema import quota_notices
from tenants.bitrix24 import Bitrix24Client, Services

_TEXTS = {
    "en": {
        80: "BitBot: your bots have used {used} of the {quota} messages of this month's "
        "{plan} plan (80 %). When the limit is reached, customers get a notice instead of "
        "answers until {renews}.",
        100: "BitBot: your bots have used all {quota} messages of this month's {plan} plan. "
        "Until {renews} customers get a notice instead of answers; a bigger plan lifts the "
        "limit now.",
    },
    "ru": {
        80: "BitBot: ваши боты израсходовали {used} из {quota} сообщений тарифа «{plan}» в этом "
        "месяце (80 %). Когда лимит закончится, до {renews} клиенты будут получать уведомление "
        "вместо ответов.",
        100: "BitBot: ваши боты израсходовали все {quota} сообщений тарифа «{plan}» в этом "
        "месяце. До {renews} клиенты получают уведомление вместо ответов; тариф побольше снимет "
        "ограничение сразу.",
    },
}


def quota_notice_text(
    threshold: int, language: str | None, *, used: int, quota: int, plan: str, renews: datetime
) -> str:
    texts = _TEXTS.get((language or "").lower()[:2], _TEXTS["en"])
    return texts[threshold].format(used=used, quota=quota, plan=plan, renews=f"{renews:%Y-%m-%d}")


class AdminNotifier(Protocol):
    async def notify_admins(self, tenant_id: int, message: str) -> int:
        """Send ``message`` to the portal's admins; returns how many were notified."""
        ...


class Bitrix24AdminNotifier:
    """``im.notify.system.add`` to the installing admin, through the tenant's REST client."""

    def __init__(self, services: Services) -> None:
        self._s = services

    async def notify_admins(self, tenant_id: int, message: str) -> int:
        tenant = await self._s.store.get(tenant_id)
        tokens = await self._s.store.tokens(tenant_id)
        if tenant is None or tokens is None or tokens.user_id is None:
            return 0
        client = Bitrix24Client(tenant, self._s)
        await client.call("im.notify.system.add", {"USER_ID": tokens.user_id, "MESSAGE": message})
        return 1


class QuotaNotices:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(
        self, tenant_id: int, period_start: datetime, threshold: int, now: datetime
    ) -> bool:
        """True for the one caller that may send this notice."""
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        async with self._engine.begin() as connection:
            claimed = await connection.scalar(
                insert(quota_notices)
                .values(
                    tenant_id=tenant_id,
                    period_start=period_start,
                    threshold=threshold,
                    sent_at=now,
                )
                .on_conflict_do_nothing()
                .returning(quota_notices.c.id)
            )
        return claimed is not None

    async def give_back(self, tenant_id: int, period_start: datetime, threshold: int) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.delete(quota_notices).where(
                    quota_notices.c.tenant_id == tenant_id,
                    quota_notices.c.period_start == period_start,
                    quota_notices.c.threshold == threshold,
                )
            )

    async def sent(self, tenant_id: int, period_start: datetime) -> set[int]:
        async with self._engine.connect() as connection:
            rows = await connection.scalars(
                sa.select(quota_notices.c.threshold).where(
                    quota_notices.c.tenant_id == tenant_id,
                    quota_notices.c.period_start == period_start,
                )
            )
            return set(rows)
