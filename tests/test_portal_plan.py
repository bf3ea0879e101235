"""The plan page and ``GET /b24/api/plan``: what a tenant on a trial, on a paid plan and over its
quota is shown; the JSON shape; the words in Russian; only the session's own tenant."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import unescape
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from admin_ui.portal.i18n import Translator
from admin_ui.portal.plan import Quota, axis_top, days_word, short_number
from billing import Deny, Meter, PlanBilling, Subscriptions, TurnUsage
from billing.schema import subscriptions
from tenants.runtime import Runtime
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.fakes.clock import FakeClock
from tests.portal_kit import PortalClient, admin_app, install, open_app, signed_in

START = datetime(2026, 1, 1, tzinfo=UTC)  # FakeClock's start: installs happen at this moment
OVER_QUOTA_EN = "Sorry, the assistant cannot answer right now. Our team will get back to you soon."


@dataclass
class World:
    url: str
    runtime: Runtime
    clock: SteppedClock
    bitrix24: FakeBitrix24
    http: httpx2.AsyncClient

    async def tenant(self, domain: str, language: str = "en") -> Portal:
        portal = self.bitrix24.add_portal(domain, language=language)
        await install(self.url, portal)
        return portal

    async def sign_in(self, portal: Portal, lang: str | None = None) -> PortalClient:
        """After moving the clock: a session lasts an hour."""
        tokens = portal.issue_tokens()  # the install pair has expired by then
        return await signed_in(self.url, portal, self.http, lang=lang, tokens=tokens)

    def at(self, day: date) -> None:
        """Move the shared clock to noon (UTC) of ``day``."""
        target = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()
        self.clock.fake.advance(target - self.clock.now())

    async def use(self, tenant_id: int, day: date, *, flush: bool = False, **counts: int) -> None:
        """Meter a turn on ``day``; flushed to the database, or left in Redis."""
        clock = SteppedClock(FakeClock(datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
                                       .timestamp()))  # fmt: skip
        meter = Meter(self.runtime.redis, self.runtime.engine, clock)
        await meter.add(tenant_id, TurnUsage(**counts))
        if flush:
            await meter.flush()

    def subscriptions(self) -> Subscriptions:
        return Subscriptions(self.runtime.engine, self.clock)


@pytest.fixture
async def world(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[World]:
    assert clock.now() == START.timestamp()
    async with admin_app(b24_runtime, http, clock) as url:
        yield World(url, b24_runtime, clock, bitrix24, http)


async def plan_of(client: PortalClient) -> dict[str, Any]:
    response = await client.get("/b24/api/plan")
    assert response.status_code == 200, response.text
    return dict(response.json())


def text_of(html: str) -> str:
    """The page's words, tags dropped and spaces folded, for plain assertions."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


async def test_a_new_tenant_sees_its_trial(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    world.at(date(2026, 1, 4))  # 10.5 days of the 14 left: shown as 11
    client = await world.sign_in(portal)
    facts = await plan_of(client)
    assert facts["plan"] == {
        "code": "trial", "name": "Free trial", "monthly_messages": 300, "max_bots": 1,
        "events_per_minute_tenant": 60, "events_per_minute_dialog": 20, "features": {},
    }  # fmt: skip
    assert facts["subscription"] == {
        "state": "trial", "suspend_reason": None, "served": True,
        "trial_end": "2026-01-15T00:00:00+00:00", "trial_days_left": 11, "grace_until": None,
        "period_start": "2026-01-01T00:00:00+00:00", "period_end": "2026-02-01T00:00:00+00:00",
    }  # fmt: skip
    assert facts["period"] == {"first_day": "2026-01-01", "last_day": "2026-01-31",
                               "today": "2026-01-04"}  # fmt: skip
    assert facts["quota"] == {"messages": 300, "used": 0, "left": 300, "percent": 0,
                              "level": "ok", "over_quota_text": OVER_QUOTA_EN}  # fmt: skip
    assert facts["bots"] == {"used": 0, "max": 1}
    assert [d["day"] for d in facts["daily"]][::10] == ["2026-01-01", "2026-01-11", "2026-01-21",
                                                        "2026-01-31"]  # fmt: skip
    page = await client.get("/b24/ui/plan")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Free trial: 11 days left, it ends on 15 Jan 2026." in words
    assert "This period: 1 Jan 2026 \u2013 31 Jan 2026 (UTC)." in words
    assert "0 of 300 0%" in words
    assert "Bots 0 of 1" in words  # bots used of max bots
    assert "Events per minute, whole portal 60" in words
    assert "Events per minute, one dialog 20" in words
    assert '<a href="/b24/ui/plan" class="on">Plan</a>' in page.text
    assert "quota-note" not in page.text  # no warning at 0 %


async def test_an_active_tenant_sees_this_periods_usage_and_a_calm_warning(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    world.at(date(2026, 1, 5))
    active = await world.subscriptions().change_plan(1, "starter")  # a period from Jan 5
    assert active.state == "active"
    await world.use(1, date(2026, 1, 3), flush=True, messages_in=500)  # the trial's period
    await world.use(1, date(2026, 1, 5), flush=True, messages_in=1200, replies_out=1100,
                    prompt_tokens=4000, completion_tokens=1500)  # fmt: skip
    await world.use(1, date(2026, 1, 6), flush=True, messages_in=900, replies_out=880)
    await world.use(1, date(2026, 1, 6), messages_in=100, replies_out=90)  # not flushed yet
    await world.use(1, date(2026, 1, 8), messages_in=300, prompt_tokens=10)  # Redis only
    world.at(date(2026, 1, 8))
    client = await world.sign_in(portal)
    facts = await plan_of(client)
    assert facts["subscription"]["state"] == "active"
    assert facts["subscription"]["trial_days_left"] is None
    assert facts["period"] == {"first_day": "2026-01-05", "last_day": "2026-02-04",
                               "today": "2026-01-08"}  # fmt: skip
    assert facts["usage"] == {"messages_in": 2500, "replies_out": 2070, "prompt_tokens": 4010,
                              "completion_tokens": 1500, "tokens": 5510}  # fmt: skip
    assert facts["quota"] | {"over_quota_text": ""} == {
        "messages": 3000, "used": 2500, "left": 500, "percent": 83, "level": "warning",
        "over_quota_text": "",
    }  # fmt: skip
    daily = {d["day"]: d for d in facts["daily"]}
    assert len(daily) == 31
    assert daily["2026-01-06"] == {"day": "2026-01-06", "messages_in": 1000,
                                   "replies_out": 970, "tokens": 0}  # fmt: skip
    assert daily["2026-01-07"]["messages_in"] == 0
    assert "2026-01-03" not in daily
    page = await client.get("/b24/ui/plan")
    words = text_of(page.text)
    assert "Active. The next period starts on 5 Feb 2026." in words
    assert "2,500 of 3,000 83%" in words
    assert "83% of this period's 3,000 messages are used." in words
    assert "Replies sent 2,070" in words
    assert "Provider tokens 5,510" in words
    assert 'aria-valuenow="83"' in page.text
    assert 'class="fill" width="83.33%"' in page.text
    assert OVER_QUOTA_EN not in page.text  # said only once the quota is used up


async def test_over_the_quota_the_page_shows_what_customers_receive(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    await world.use(1, date(2026, 1, 2), flush=True, messages_in=250)
    await world.use(1, date(2026, 1, 3), messages_in=50)  # exactly the 300 of the trial
    world.at(date(2026, 1, 3))
    client = await world.sign_in(portal)
    facts = await plan_of(client)
    assert (facts["quota"]["percent"], facts["quota"]["level"]) == (100, "over")
    assert facts["quota"]["left"] == 0
    # the pipeline agrees: the next customer message gets this text, not the flow
    meter = Meter(world.runtime.redis, world.runtime.engine, world.clock)
    billing = PlanBilling(world.runtime.engine, meter, Silent(), clock=world.clock)
    verdict = await billing.check_turn(1)
    assert isinstance(verdict, Deny)
    assert verdict.text == facts["quota"]["over_quota_text"] == OVER_QUOTA_EN
    page = await client.get("/b24/ui/plan")
    words = text_of(page.text)
    assert "All 300 messages of this period are used. Until 1 Feb 2026, customers" in words
    assert OVER_QUOTA_EN in words
    assert 'class="fill" width="100.00%"' in page.text
    await world.use(1, date(2026, 1, 3), messages_in=30)  # 110 %: the bar stays full
    over = await plan_of(client)
    assert over["quota"]["percent"] == 110
    assert 'width="100.00%"' in (await client.get("/b24/ui/plan")).text


class Silent:
    async def notify_admins(self, tenant_id: int, message: str) -> int:
        return 0


async def test_the_chart_is_inline_svg_with_a_bar_per_used_day(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    for day, count in ((2, 40), (3, 120), (9, 75)):
        await world.use(1, date(2026, 1, day), flush=day < 9, messages_in=count)
    world.at(date(2026, 1, 10))
    client = await world.sign_in(portal)
    page = await client.get("/b24/ui/plan")
    svg = re.search(r'<svg class="day-bars".*?</svg>', page.text, re.S)
    assert svg is not None
    chart = svg.group(0).replace("\u00a0", " ")  # dates keep together with no-break spaces
    assert 'role="img"' in chart
    assert 'aria-labelledby="plan-chart-title"' in chart
    assert (
        '<title id="plan-chart-title">Customer messages per day from 1 Jan 2026 to'
        " 31 Jan 2026: 235 in all. The busiest day was 3 Jan 2026 with 120.</title>"
    ) in chart
    bars = re.findall(r'<rect class="bar"[^>]*><title>([^<]+)</title>', chart)
    assert bars == ["2 Jan 2026: 40 messages", "3 Jan 2026: 120 messages",
                    "9 Jan 2026: 75 messages"]  # fmt: skip
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]*height="([\d.]+)"', chart)]
    assert heights[1] == max(heights)
    assert heights[1] == 150.0  # the plot's full height
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', chart)
    assert ticks == ["0", "30", "60", "90", "120"]  # the busiest day reaches the top line
    assert len(re.findall(r'class="axis day', chart)) == 31
    assert 'class="axis day rank-2 today"' in chart  # the 10th, index 9
    # what the page's Content-Security-Policy allows: no inline style or script at all
    assert "style=" not in page.text
    assert "<script>" not in page.text
    assert "style-src 'self'" in page.headers["content-security-policy"]


async def test_the_json_shape(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    facts = await plan_of(await world.sign_in(portal))
    assert set(facts) == {"plan", "subscription", "period", "usage", "quota", "bots", "daily"}
    assert set(facts["plan"]) == {"code", "name", "monthly_messages", "max_bots",
                                  "events_per_minute_tenant", "events_per_minute_dialog",
                                  "features"}  # fmt: skip
    assert set(facts["subscription"]) == {"state", "suspend_reason", "served", "trial_end",
                                          "trial_days_left", "grace_until", "period_start",
                                          "period_end"}  # fmt: skip
    assert set(facts["usage"]) == {"messages_in", "replies_out", "prompt_tokens",
                                   "completion_tokens", "tokens"}  # fmt: skip
    assert set(facts["quota"]) == {"messages", "used", "left", "percent", "level",
                                   "over_quota_text"}  # fmt: skip
    assert set(facts["daily"][0]) == {"day", "messages_in", "replies_out", "tokens"}


async def test_unlimited_plans_and_paused_tenants(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    async with world.runtime.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE plans SET monthly_messages = NULL, max_bots ="
                                         " NULL WHERE code = 'trial'"))  # fmt: skip
    await world.use(1, date(2026, 1, 1), messages_in=12_345)
    client = await world.sign_in(portal)
    facts = await plan_of(client)
    assert facts["quota"] | {"over_quota_text": ""} == {
        "messages": None, "used": 12345, "left": None, "percent": None, "level": "unlimited",
        "over_quota_text": "",
    }  # fmt: skip
    page = await client.get("/b24/ui/plan")
    words = text_of(page.text)
    assert "12,345 unlimited: this plan has no monthly limit" in words
    assert "Bots 0 (no limit)" in words
    assert "progressbar" not in page.text
    await world.subscriptions().payment_required(1)
    words = text_of((await client.get("/b24/ui/plan")).text)
    assert "Payment overdue" in words
    assert "Your bots keep answering until 8 Jan 2026;" in words
    await world.subscriptions().suspend(1)
    words = text_of((await client.get("/b24/ui/plan")).text)
    assert "Paused by your BitBot provider: your bots do not answer for now." in words
    # the trial's end is applied on reading, before the periodic tick stores it
    await world.subscriptions().resume(1)
    await world.subscriptions().payment_ok(1)
    world.at(date(2026, 1, 20))
    client = await world.sign_in(portal)
    facts = await plan_of(client)
    assert (facts["subscription"]["state"], facts["subscription"]["suspend_reason"]) == (
        "suspended", "trial_ended",
    )  # fmt: skip
    words = text_of((await client.get("/b24/ui/plan")).text)
    assert "The free trial has ended, so your bots do not answer." in words


async def test_russian_words_numbers_and_dates(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.ru", language="ru")
    await world.use(1, date(2026, 1, 2), messages_in=290)
    world.at(date(2026, 1, 13))  # 1.5 days left: 2
    client = await world.sign_in(portal, lang="ru")
    facts = await plan_of(client)
    assert facts["quota"]["over_quota_text"].startswith("Извините")  # the portal's language
    page = await client.get("/b24/ui/plan")
    words = text_of(page.text)
    assert "Пробный период: осталось 2 дня, он заканчивается 15 янв. 2026." in words
    assert "290 из 300 96 %" in words
    assert "Текущий период: 1 янв. 2026 \u2013 31 янв. 2026 (UTC)." in words
    assert '<a href="/b24/ui/plan" class="on">Тариф</a>' in page.text


def test_plurals_short_numbers_and_quota_levels() -> None:
    en, ru = Translator("en"), Translator("ru")
    assert [days_word(en, n) for n in (1, 2, 11)] == ["1 day", "2 days", "11 days"]
    assert [days_word(ru, n) for n in (1, 2, 5, 11, 12, 21, 22, 25, 111)] == [
        "1 день", "2 дня", "5 дней", "11 дней", "12 дней", "21 день", "22 дня", "25 дней",
        "111 дней",
    ]  # fmt: skip
    assert [short_number(en, n) for n in (950, 2500, 10_000, 1_250_000)] == [
        "950", "2.5k", "10k", "1.2M",
    ]  # fmt: skip
    assert short_number(ru, 2500) == "2,5 тыс."
    assert [Quota(100, used).level for used in (0, 79, 80, 99, 100, 150)] == [
        "ok", "ok", "warning", "warning", "over", "over",
    ]  # fmt: skip
    assert (Quota(None, 5).level, Quota(None, 5).percent) == ("unlimited", None)
    assert (Quota(0, 0).level, Quota(0, 0).percent, Quota(0, 0).bar_percent) == ("over", 100, 100)
    assert Quota(10_000, 1).bar_percent == 1.0  # a sliver once anything is used
    tops = [axis_top(n) for n in (0, 3, 5, 7, 120, 121, 999, 2612, 30_000, 40_000)]
    assert tops == [4, 4, 8, 8, 120, 160, 1000, 3200, 32_000, 40_000]


async def test_a_tenant_without_a_subscription_is_told_the_trial_starts_later(
    world: World,
) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    async with world.runtime.engine.begin() as connection:
        await connection.execute(sa.delete(subscriptions))
    client = await world.sign_in(portal)
    assert await plan_of(client) == {"plan": None, "subscription": None}
    words = text_of((await client.get("/b24/ui/plan")).text)
    assert "BitBot has no plan for this portal yet." in words
    async with world.runtime.engine.connect() as connection:  # reading started no trial
        assert await connection.scalar(sa.select(sa.func.count()).select_from(subscriptions)) == 0


async def test_only_the_sessions_tenant_is_shown(world: World) -> None:
    acme = await world.tenant("acme.bitrix24.com")
    other = await world.tenant("other.bitrix24.com")
    await world.subscriptions().change_plan(2, "business")
    await world.use(1, date(2026, 1, 1), flush=True, messages_in=7)
    await world.use(2, date(2026, 1, 1), flush=True, messages_in=900)
    await world.use(2, date(2026, 1, 1), messages_in=99, replies_out=5)
    mine = await plan_of(await world.sign_in(acme))
    theirs = await plan_of(await world.sign_in(other))
    assert (mine["plan"]["code"], mine["usage"]["messages_in"]) == ("trial", 7)
    assert (theirs["plan"]["code"], theirs["usage"]["messages_in"]) == ("business", 999)
    # nothing in the request chooses the tenant: a query parameter changes nothing
    client = await world.sign_in(acme)
    assert (await client.get("/b24/api/plan", tenant_id=2)).json() == mine
    assert "999" not in (await client.get("/b24/ui/plan", tenant_id=2)).text


async def test_non_admins_see_it_read_only_and_no_session_sees_nothing(world: World) -> None:
    portal = await world.tenant("acme.bitrix24.com")
    bob = portal.add_user("Bob")
    page = await open_app(world.url, portal, tokens=portal.issue_tokens(bob.id))
    token = re.findall(r'content="(v1\.[^"]+)"', page.text)[0]
    viewer = PortalClient(world.url, token, world.http)
    plan_page = await viewer.get("/b24/ui/plan")
    assert plan_page.status_code == 200
    assert "only portal administrators can change BitBot" in plan_page.text
    assert (await viewer.get("/b24/api/plan")).json()["plan"]["code"] == "trial"
    anonymous = await world.http.get(f"{world.url}/b24/api/plan")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "no_session"
    assert (await world.http.get(f"{world.url}/b24/ui/plan")).status_code == 401
