"""The plan page in a real Chromium, inside the cross-origin iframe a Bitrix24 portal puts around
the app: a Starter tenant 19 days into its period, at a desktop's width and at 360 px, then over
its quota for a Russian-speaking admin on a phone. Screenshots go to ``tests/artifacts/``.

Time is a fake clock shared by the admin app and the fake Bitrix24, so the period, the usage per
day and the session agree; usage of the last two days is left in Redis, the rest is flushed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from admin_ui import create_admin_app
from admin_ui.portal import PortalOptions
from billing import Meter, Subscriptions, TurnUsage
from tenants.migrate import upgrade
from tenants.runtime import Runtime, build_runtime
from tenants.settings import load_settings
from tests.browser.chromium import ARTIFACTS, CHROMIUM, CROSS_SITE_ARGS, WAIT_MS, need_browser
from tests.browser.harness import certificate, portal_page, serve_tls
from tests.conftest import B24_CLIENT_ID, B24_SECRET, Backend, SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal, installer_frame, open_frame
from tests.fakes.clock import FakeClock
from tests.fakes.server import free_port
from tests.portal_kit import PortalClient, add_provider, install, session_token

pytestmark = pytest.mark.browser

PERIOD_START = datetime(2026, 3, 1, 8, tzinfo=UTC)
TODAY = datetime(2026, 3, 19, 15, tzinfo=UTC)
QUOTA = 3000  # the seeded Starter plan


def messages_on(day: int) -> int:
    """A believable month: busier on weekdays (1 Mar 2026 is a Sunday), growing slowly."""
    weekend = date(2026, 3, day).weekday() >= 5
    return (40 if weekend else 130) + 3 * day


@dataclass
class Scene:
    portal_url: str
    portal: Portal
    runtime: Runtime
    clock: SteppedClock


@pytest.fixture
async def scene(backend: Backend, tmp_path: Path) -> AsyncIterator[Scene]:
    need_browser()
    tls = certificate(tmp_path)
    portal_port, app_port = free_port(), free_port()
    portal_domain = f"portal.localhost:{portal_port}"
    app_url = f"https://bitbot.localhost:{app_port}"
    clock = SteppedClock(FakeClock(PERIOD_START.timestamp()))
    cloud = FakeBitrix24(clock=clock.fake, client_id=B24_CLIENT_ID, client_secret=B24_SECRET)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(cloud.serve())
        env = backend.env(
            tmp_path,
            BITBOT_B24_OAUTH_URL=cloud.base_url,
            BITBOT_B24_CLIENT_ID=B24_CLIENT_ID,
            BITBOT_B24_CLIENT_SECRET=B24_SECRET,
            BITBOT_PUBLIC_URL=app_url,
            BITBOT_ALLOW_PRIVATE_HOSTS="127.0.0.1",
        )
        runtime = build_runtime(load_settings(env))
        stack.push_async_callback(runtime.close)
        await upgrade(runtime.engine)
        http = await stack.enter_async_context(httpx2.AsyncClient())
        admin = create_admin_app(runtime, http=http, clock=clock, portal=PortalOptions())
        await stack.enter_async_context(serve_tls(admin, app_port, tls))
        portal = cloud.add_portal(portal_domain)
        insecure = await stack.enter_async_context(httpx2.AsyncClient(verify=False))
        local = f"https://127.0.0.1:{app_port}"  # no *.localhost names outside the browser
        await install(local, portal, insecure)
        await Subscriptions(runtime.engine, clock).change_plan(1, "starter")  # from 1 Mar
        for day in range(1, TODAY.day + 1):
            await use(
                runtime, date(2026, 3, day), flush=day < TODAY.day - 1, count=messages_on(day)
            )
        clock.fake.advance(TODAY.timestamp() - clock.now())
        portal.auth = portal.issue_tokens()  # what the portal hands the frame today
        await add_provider(runtime, "Dify cloud", "dify_chatflow", "http://127.0.0.1:9/v1")
        opened = await open_frame(f"{local}/b24/app", installer_frame(portal), client=insecure)
        client = PortalClient(local, session_token(opened), insecure)
        connector = await client.post(
            "/b24/api/connectors", {"name": "Support flow", "provider_id": 1, "api_key": "app-1"}
        )
        bot = await client.post(
            "/b24/api/bots",
            {"name": "Concierge", "type": "openline", "event_mode": "webhook",
             "connector_id": connector.json()["id"], "batch_delay_ms": 0, "session_ttl_s": 86400},
        )  # fmt: skip
        assert bot.status_code == 201, bot.text
        await stack.enter_async_context(serve_tls(portal_page(portal, app_url), portal_port, tls))
        yield Scene(f"https://{portal_domain}/", portal, runtime, clock)


async def use(runtime: Runtime, day: date, *, flush: bool, count: int) -> None:
    at = datetime(day.year, day.month, day.day, 11, tzinfo=UTC).timestamp()
    meter = Meter(runtime.redis, runtime.engine, SteppedClock(FakeClock(at)))
    usage = TurnUsage(
        messages_in=count,
        replies_out=count - count // 12,
        prompt_tokens=count * 310,
        completion_tokens=count * 95,
    )
    await meter.add(1, usage)
    if flush:
        await meter.flush()


async def test_the_plan_page_at_desktop_and_phone_widths(scene: Scene) -> None:
    api = need_browser()
    expect = api.expect
    expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    used = sum(messages_on(day) for day in range(1, TODAY.day + 1))
    percent = used * 100 // QUOTA
    assert 80 <= percent < 100  # the calm warning, not yet the over-quota text
    async with api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CROSS_SITE_ARGS
        )
        page = None
        try:
            context = await browser.new_context(
                viewport={"width": 1100, "height": 1400}, ignore_https_errors=True
            )
            context.set_default_timeout(WAIT_MS)
            page = await context.new_page()
            await page.goto(scene.portal_url)
            app = page.frame_locator('iframe[name="bitbot"]')
            await app.get_by_role("link", name="Plan", exact=True).click()
            await expect(app.get_by_role("heading", name="Plan and usage")).to_be_visible()
            await expect(app.locator(".tabs a.on")).to_have_text("Plan")
            await expect(app.get_by_role("heading", name="Starter")).to_be_visible()
            await expect(app.locator(".quota-figure")).to_contain_text(f"{used:,}")
            await expect(app.locator(".quota-figure .percent")).to_have_text(f"{percent}%")
            await expect(app.get_by_role("progressbar")).to_have_attribute(
                "aria-valuenow", str(percent)
            )
            await expect(app.locator(".quota-note")).to_contain_text("of this period's 3,000")
            await expect(app.locator(".facts").nth(1)).to_contain_text("1 of 3")
            chart = app.get_by_role("img", name="Customer messages per day")
            await expect(chart).to_be_visible()
            assert await app.locator("svg.day-bars rect.bar").count() == TODAY.day
            await no_sideways_scroll(app)
            await shot(page, "plan-01-desktop")

            await page.set_viewport_size({"width": 360, "height": 740})
            await expect(app.locator("svg.day-bars")).to_be_visible()
            await no_sideways_scroll(app)
            box = await app.locator("svg.day-bars").bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= 360
            await shot(page, "plan-02-narrow")
            await app.locator("svg.day-bars").scroll_into_view_if_needed()
            await shot(page, "plan-03-narrow-chart")
            await context.close()

            # over the quota, for a Russian-speaking admin on a phone
            await use(scene.runtime, TODAY.date(), flush=False, count=QUOTA - used + 40)
            context = await browser.new_context(
                viewport={"width": 360, "height": 740}, ignore_https_errors=True
            )
            context.set_default_timeout(WAIT_MS)
            page = await context.new_page()
            await page.goto(f"{scene.portal_url}ru")
            app = page.frame_locator('iframe[name="bitbot"]')
            await app.get_by_role("link", name="Тариф", exact=True).click()
            await expect(app.get_by_role("heading", name="Тариф и расход")).to_be_visible()
            note = app.locator(".quota-note")
            await expect(note).to_contain_text("3\u00a0000 сообщений этого периода израсходованы")
            await expect(note.locator(".over-text")).to_contain_text("Sorry, the assistant")
            await expect(app.locator(".quota-figure .percent")).to_have_text("101 %")
            await no_sideways_scroll(app)
            await shot(page, "plan-04-over-quota-ru-narrow")
            await app.locator("svg.day-bars").scroll_into_view_if_needed()
            await shot(page, "plan-05-over-quota-ru-narrow-chart")
            await context.close()
        except BaseException:
            if page is not None and not page.is_closed():
                await page.screenshot(path=str(ARTIFACTS / "plan-failure.png"))
            raise
        finally:
            await browser.close()


async def no_sideways_scroll(app: Any) -> None:
    """The page fits its frame's width: nothing pushes it wider than the iframe."""
    overflow = await app.locator("html").evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0


async def shot(page: Any, name: str) -> None:
    await page.wait_for_timeout(150)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
