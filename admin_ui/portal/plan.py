"""The tenant's own plan page and ``GET /b24/api/plan``: the plan, the subscription's state, this
period's usage against the quota, the limits, and the usage per day for the chart.

Everything is read, nothing is written: the subscription is shown as ``billing.states.effective``
makes it at this moment (the periodic tick may not have stored the rolled period or the ended
trial yet), and usage includes counts still in Redis (``Meter.daily``), so the page agrees with
what the pipeline enforces. A portal installed before billing existed has no subscription until
its first customer message starts the trial (``PlanBilling``); then there are no facts to show.

The chart is drawn by the template from the geometry here: bars placed in percent of the width
and pixels of the height, so the labels keep their size from 360 px up and no script is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.portal.i18n import Translator
from billing import Meter, Plan, Subscription, Subscriptions, UsageTotals, get_plan
from billing.schema import QUOTA_THRESHOLDS
from billing.states import days_of, effective
from tenants.clock import Clock
from tenants.schema import bots
from tenants.store import Tenant

WARNING_PERCENT = min(QUOTA_THRESHOLDS)  # the admins' first notice; the page warns from here
UNLIMITED, OK, WARNING, OVER = "unlimited", "ok", "warning", "over"
DAY_S = 86_400

# Chart geometry: y in pixels (fixed height), x in percent of the width.
PLOT_TOP, PLOT_HEIGHT, CHART_HEIGHT = 10, 150, 184
BAR_SHARE = 0.62  # of a day's slot


@dataclass(frozen=True)
class DayUsage:
    day: date
    messages_in: int
    replies_out: int
    tokens: int


@dataclass(frozen=True)
class Quota:
    limit: int | None  # None: unlimited
    used: int

    @property
    def percent(self) -> int | None:
        """Whole percent used (floored, so 100 means all used); None when unlimited."""
        if self.limit is None:
            return None
        if self.limit <= 0:
            return 100
        return self.used * 100 // self.limit

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def level(self) -> str:
        if self.limit is None:
            return UNLIMITED
        if self.used >= self.limit:
            return OVER  # the pipeline answers with the over-quota text from here (enforcement)
        if self.used * 100 >= WARNING_PERCENT * self.limit:
            return WARNING
        return OK

    @property
    def bar_percent(self) -> float:
        """The progress bar's fill, 0-100, shown at least as a sliver once anything is used."""
        if self.limit is None:
            return 0.0
        if self.limit <= 0:
            return 100.0
        share = min(self.used * 100 / self.limit, 100.0)
        return max(share, 1.0) if self.used else 0.0


@dataclass(frozen=True)
class PlanFacts:
    plan: Plan
    subscription: Subscription  # effective now: period rolled, state derived
    now: datetime
    first_day: date
    last_day: date  # the period's last day, included
    usage: UsageTotals
    quota: Quota
    bots: int
    days: list[DayUsage]  # every day of the period, days without use as zeros
    over_quota_text: str  # what customers receive over the quota, in the portal's language

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def renews_on(self) -> date:
        return self.last_day + timedelta(days=1)

    @property
    def tokens(self) -> int:
        return self.usage.prompt_tokens + self.usage.completion_tokens

    @property
    def trial_days_left(self) -> int | None:
        """Whole days until the trial ends, rounded up (0 once it has ended)."""
        end = self.subscription.trial_end
        if end is None:
            return None
        return max(0, math.ceil((end - self.now).total_seconds() / DAY_S))

    def as_json(self) -> dict[str, Any]:
        plan, sub, usage, quota = self.plan, self.subscription, self.usage, self.quota
        return {
            "plan": {
                "code": plan.code,
                "name": plan.name,
                "monthly_messages": plan.monthly_messages,
                "max_bots": plan.max_bots,
                "events_per_minute_tenant": plan.events_per_minute_tenant,
                "events_per_minute_dialog": plan.events_per_minute_dialog,
                "features": dict(plan.features),
            },
            "subscription": {
                "state": sub.state,
                "suspend_reason": sub.suspend_reason,
                "served": sub.served,
                "trial_end": _iso(sub.trial_end),
                "trial_days_left": self.trial_days_left,
                "grace_until": _iso(sub.grace_until),
                "period_start": _iso(sub.period_start),
                "period_end": _iso(sub.period_end),
            },
            "period": {
                "first_day": self.first_day.isoformat(),
                "last_day": self.last_day.isoformat(),
                "today": self.today.isoformat(),
            },
            "usage": {
                "messages_in": usage.messages_in,
                "replies_out": usage.replies_out,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "tokens": self.tokens,
            },
            "quota": {
                "messages": quota.limit,
                "used": quota.used,
                "left": quota.left,
                "percent": quota.percent,
                "level": quota.level,
                "over_quota_text": self.over_quota_text,
            },
            "bots": {"used": self.bots, "max": plan.max_bots},
            "daily": [
                {
                    "day": item.day.isoformat(),
                    "messages_in": item.messages_in,
                    "replies_out": item.replies_out,
                    "tokens": item.tokens,
                }
                for item in self.days
            ],
        }


NO_SUBSCRIPTION: dict[str, Any] = {"plan": None, "subscription": None}


class PlanReader:
    def __init__(self, engine: AsyncEngine, redis: Redis, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._subscriptions = Subscriptions(engine, clock)
        self._meter = Meter(redis, engine, clock)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def facts(self, tenant: Tenant) -> PlanFacts | None:
        """The facts of ``tenant`` (the session's; never an id from the request)."""
        stored = await self._subscriptions.get(tenant.id)
        if stored is None:
            return None
        now = self.now()
        sub = effective(stored, now)
        plan = await get_plan(self._engine, sub.plan_id)
        first, end = days_of(sub.period_start, sub.period_end)
        daily = {item.day: item.usage for item in await self._meter.daily(tenant.id, first, end)}
        days = [
            _day(first + timedelta(days=n), daily.get(first + timedelta(days=n), UsageTotals()))
            for n in range((end - first).days)
        ]
        usage = sum(daily.values(), UsageTotals())
        async with self._engine.connect() as connection:
            bot_count = await connection.scalar(
                sa.select(sa.func.count()).select_from(bots).where(bots.c.tenant_id == tenant.id)
            )
        return PlanFacts(
            plan=plan,
            subscription=sub,
            now=now,
            first_day=first,
            last_day=end - timedelta(days=1),
            usage=usage,
            quota=Quota(plan.monthly_messages, usage.messages_in),
            bots=int(bot_count or 0),
            days=days,
            over_quota_text=plan.over_quota_text_in(tenant.language),
        )


def _day(day: date, usage: UsageTotals) -> DayUsage:
    return DayUsage(
        day, usage.messages_in, usage.replies_out, usage.prompt_tokens + usage.completion_tokens
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


# -- the chart -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: float  # percent of the width, the bar's left edge
    width: float  # percent of the width
    y: float  # pixels
    height: float  # pixels
    label_x: float  # percent, the slot's centre
    label: str  # the day of the month
    label_rank: int  # 0: always shown; 1: from 600 px; 2: from 900 px
    future: bool


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    ticks: list[Tick]
    baseline: float
    height: int
    top: int
    total: int
    busiest: DayUsage | None


def axis_top(value: int) -> int:
    """The smallest top of four whole-numbered gridline steps (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8
    times a power of ten) that reaches ``value``, so the busiest day fills most of the height."""
    if value <= 4:
        return 4
    step = value / 4
    magnitude = 10 ** math.floor(math.log10(step))
    for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        tick = factor * magnitude
        if tick >= step and float(tick).is_integer():
            return int(tick) * 4
    return math.ceil(step) * 4  # not reached: a factor of 10 always covers the step


def chart(facts: PlanFacts, t: Translator) -> Chart:
    days = facts.days
    top = axis_top(max([0, *(item.messages_in for item in days)]))
    slot = 100 / max(len(days), 1)
    baseline = PLOT_TOP + PLOT_HEIGHT
    bars = []
    for index, item in enumerate(days):
        height = PLOT_HEIGHT * item.messages_in / top
        rank = 0 if index % 7 == 0 else 1 if index % 2 == 0 else 2
        bars.append(
            Bar(
                day=item.day,
                count=item.messages_in,
                x=slot * index + slot * (1 - BAR_SHARE) / 2,
                width=slot * BAR_SHARE,
                y=baseline - height,
                height=height,
                label_x=slot * index + slot / 2,
                label=str(item.day.day),
                label_rank=rank,
                future=item.day > facts.today,
            )
        )
    ticks = [
        Tick(baseline - PLOT_HEIGHT * step / 4, short_number(t, top * step // 4))
        for step in range(5)
    ]
    used = [item for item in days if item.messages_in]
    busiest = max(used, key=lambda item: item.messages_in) if used else None
    total = sum(item.messages_in for item in days)
    return Chart(bars, ticks, baseline, CHART_HEIGHT, top, total, busiest)


# -- words and numbers in the viewer's language ----------------------------------------------


def number(t: Translator, value: int) -> str:
    grouped = f"{value:,}"
    return grouped.replace(",", "\u00a0") if t.language == "ru" else grouped


def short_number(t: Translator, value: int) -> str:
    """Axis labels: 950, 2.5k, 1.2M (English); 950, 2,5 тыс., 1,2 млн (Russian)."""
    for size, key in ((1_000_000, "plan.chart.millions"), (1_000, "plan.chart.thousands")):
        if value >= size:
            amount = f"{value / size:.1f}".removesuffix(".0")
            if t.language == "ru":
                amount = amount.replace(".", ",")
            return t(key, n=amount)
    return str(value)


def day(t: Translator, when: date | datetime) -> str:
    """``1 Mar 2026`` / ``1 мар. 2026`` (UTC)."""
    if isinstance(when, datetime):
        when = when.astimezone(UTC).date()
    return t("plan.date", day=when.day, month=t(f"month.{when.month}"), year=when.year)


def days_word(t: Translator, count: int) -> str:
    """``1 day``, ``3 days``; ``1 день``, ``3 дня``, ``5 дней``."""
    return t(f"plan.days.{_plural(t.language, count)}", n=count)


def _plural(language: str, count: int) -> str:
    if language != "ru":
        return "one" if count == 1 else "many"
    if count % 10 == 1 and count % 100 != 11:
        return "one"
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return "few"
    return "many"


def state_text(facts: PlanFacts, t: Translator) -> str:
    """The subscription's state in one sentence."""
    sub = facts.subscription
    if sub.state == "trial":
        left = facts.trial_days_left or 0
        until = day(t, sub.trial_end) if sub.trial_end else ""
        if left <= 1:
            return t("plan.state.trial_ending", until=until)
        return t("plan.state.trial", left=days_word(t, left), until=until)
    if sub.state == "past_due":
        until = day(t, sub.grace_until) if sub.grace_until else ""
        return t("plan.state.past_due", until=until)
    if sub.state == "suspended":
        reason = sub.suspend_reason or "operator"
        if reason not in ("operator", "trial_ended", "licence_lapsed"):
            reason = "operator"
        return t(f"plan.state.suspended.{reason}")
    if sub.state == "cancelled":
        return t("plan.state.cancelled")
    return t("plan.state.active", renews=day(t, facts.renews_on))


def chart_summary(facts: PlanFacts, drawn: Chart, t: Translator) -> str:
    """The chart in one sentence, for screen readers (the SVG's ``<title>``)."""
    period = t("plan.chart.summary", first=day(t, facts.first_day), last=day(t, facts.last_day),
               total=number(t, drawn.total))  # fmt: skip
    if drawn.busiest is None:
        return period
    busiest = t("plan.chart.busiest", day=day(t, drawn.busiest.day),
                n=number(t, drawn.busiest.messages_in))  # fmt: skip
    return f"{period} {busiest}"
