"""The operator console in a real Chromium: sign in, find a tenant, change its plan, suspend and
resume it, replay a dead letter, meet a plan invariant, add a provider. Screenshots go to
``tests/artifacts/operator-*.png``.

The console is served over plain HTTP on 127.0.0.1, which Chromium treats as a secure context,
so the ``Secure; SameSite=Strict`` session cookie and ``Sec-Fetch-Site`` behave as in production.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from admin_ui import create_admin_app, create_operator
from admin_ui.portal import PortalOptions
from billing import Subscriptions
from billing.schema import usage_daily
from tenants.migrate import upgrade
from tenants.queue import Queue
from tenants.runtime import Runtime, build_runtime
from tenants.settings import load_settings
from tests.browser.chromium import ARTIFACTS, CHROMIUM, HEADLESS_ARGS, WAIT_MS, need_browser
from tests.conftest import Backend
from tests.fakes.server import serve
from tests.operator_kit import EMAIL, PASSWORD, a_bot, a_dead_letter, a_provider, a_tenant

pytestmark = pytest.mark.browser


@dataclass
class Console:
    url: str
    runtime: Runtime
    acme: int
    letter: str


class DaysAgo:
    """A clock some days behind the real one, so acme's trial began before today."""

    def __init__(self, days: int) -> None:
        self.offset = days * 86_400.0

    def now(self) -> float:
        return time.time() - self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def seed(runtime: Runtime) -> tuple[int, str]:
    """Three portals; acme on a trial for 10 days with usage, a bot, and two dead letters."""
    acme = await a_tenant(runtime, "acme", domain="acme-corp.bitrix24.com")
    await a_tenant(runtime, "globex", domain="globex.bitrix24.de")
    await a_tenant(runtime, "initech", domain="initech.bitrix24.ru")
    sub = await Subscriptions(runtime.engine, DaysAgo(10)).start_trial(acme)
    await a_bot(runtime, acme, await a_provider(runtime, "Dify cloud"))
    today = datetime.now(UTC).date()
    day, rows = sub.period_start.date(), []
    while day <= today:
        n = (day - sub.period_start.date()).days
        messages = 8 + (n * 7) % 17
        rows.append(
            {
                "tenant_id": acme,
                "day": day,
                "messages_in": messages,
                "replies_out": messages - n % 3,
                "prompt_tokens": messages * 120,
                "completion_tokens": messages * 80,
                "updated_at": datetime.now(UTC),
            }
        )
        day += timedelta(days=1)
    async with runtime.engine.begin() as connection:
        await connection.execute(sa.insert(usage_daily), rows)
    early = time.time() - 3 * 3600
    await a_dead_letter(runtime, acme, "acme-member", "provider: Dify answered 504", early)
    letter = await a_dead_letter(runtime, acme, "acme-member", "provider: timeout", time.time())
    return acme, letter


@pytest.fixture
async def console(backend: Backend, tmp_path: Path) -> AsyncIterator[Console]:
    need_browser()
    async with AsyncExitStack() as stack:
        runtime = build_runtime(load_settings(backend.env(tmp_path)))
        stack.push_async_callback(runtime.close)
        await upgrade(runtime.engine)
        await create_operator(runtime.engine, EMAIL, PASSWORD)
        acme, letter = await seed(runtime)
        http = await stack.enter_async_context(httpx2.AsyncClient())
        app = create_admin_app(runtime, http=http, portal=PortalOptions())
        url = await stack.enter_async_context(serve(app))
        yield Console(url, runtime, acme, letter)


async def test_an_operator_runs_the_console(console: Console) -> None:
    api = need_browser()
    expect = api.expect
    expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    async with api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=HEADLESS_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT_MS)
            page = await context.new_page()

            async def shot(name: str, full: bool = False) -> None:
                await page.screenshot(path=str(ARTIFACTS / f"operator-{name}.png"), full_page=full)

            await journey(page, expect, console, shot)
        except BaseException:
            await page.screenshot(path=str(ARTIFACTS / "operator-failure.png"), full_page=True)
            raise
        finally:
            await browser.close()


async def journey(page: Any, expect: Any, console: Console, shot: Any) -> None:
    # a console page without a session lands on the login; a wrong password is refused
    await page.goto(f"{console.url}/operator/tenants")
    await expect(page.get_by_role("heading", name="Operator console")).to_be_visible()
    await page.get_by_label("E-mail").fill(EMAIL)
    await page.get_by_label("Password").fill("not my password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("e-mail or password is wrong")
    await shot("01-login-refused")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    await shot("02-tenants")

    # search, then open the tenant
    await page.get_by_label("Search").fill("acme")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_text("1 portal matches the filters.")).to_be_visible()
    await expect(page.get_by_role("link", name="globex.bitrix24.de")).to_have_count(0)
    await shot("03-search")
    await page.get_by_role("link", name="acme-corp.bitrix24.com").click()
    await expect(page.get_by_role("heading", name="acme-corp.bitrix24.com")).to_be_visible()
    await expect(page.locator("svg.usage-chart rect.bar")).not_to_have_count(0)
    await shot("04-tenant", full=True)

    # change the plan
    await page.get_by_label("Change plan").select_option("starter")
    await page.get_by_role("button", name="Change plan").click()
    await expect(page.get_by_text("The plan was changed.")).to_be_visible()
    sub = await Subscriptions(console.runtime.engine).get(console.acme)
    assert sub is not None
    assert sub.state == "active"
    await expect(page.locator(".facts").get_by_role("link", name="Starter")).to_be_visible()

    # suspend and resume, each confirmed first
    await page.get_by_role("link", name="Suspend…").click()
    await expect(
        page.get_by_role("heading", name="Suspend acme-corp.bitrix24.com?")
    ).to_be_visible()
    await shot("05-suspend-confirm")
    await page.get_by_role("button", name="Yes, suspend acme-corp.bitrix24.com").click()
    await expect(page.get_by_text("The tenant is suspended")).to_be_visible()
    await expect(page.locator(".badges")).to_contain_text("billing: suspended · operator")
    await shot("06-suspended")
    await page.get_by_role("link", name="Resume…").click()
    await page.get_by_role("button", name="Yes, resume acme-corp.bitrix24.com").click()
    await expect(page.get_by_text("The tenant is resumed.")).to_be_visible()
    sub = await Subscriptions(console.runtime.engine).get(console.acme)
    assert sub is not None
    assert sub.state == "active"

    # replay the newest dead letter
    dead = page.locator("#dead-letters")
    await expect(dead.get_by_role("heading")).to_contain_text("(2)")
    await dead.get_by_role("button", name=f"Replay {console.letter}").click()
    await expect(page.get_by_text("The dead letter is back in the queue.")).to_be_visible()
    await expect(dead.get_by_role("heading")).to_contain_text("(1)")
    await page.locator("#dead-letters").scroll_into_view_if_needed()
    await shot("07-replayed")
    queue = Queue(console.runtime.redis, console.runtime.vault, 8)
    assert console.letter not in [d.entry_id for d in await queue.dead_letters()]

    # a plan edit that breaks an invariant is refused in words
    await page.get_by_role("link", name="Plans").click()
    await shot("08-plans")
    await page.get_by_role("link", name="Business").click()
    await page.get_by_label("Monthly message quota").fill("-5")
    await page.get_by_role("button", name="Save plan").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "the monthly message quota cannot be negative (got -5)"
    )
    await expect(page.locator("#monthly_messages-error")).to_be_visible()
    await shot("09-plan-refused")

    # a provider
    await page.get_by_role("link", name="Providers").click()
    await page.get_by_role("link", name="New provider").click()
    await page.get_by_label("Name").fill("Typebot cloud")
    await page.get_by_label("Type").select_option("typebot")
    await page.get_by_label("Default base URL").fill("https://typebot.io")
    await shot("10-provider-new")
    await page.get_by_role("button", name="Create provider").click()
    await expect(page.get_by_text("The provider was created.")).to_be_visible()
    await expect(page.get_by_role("link", name="Typebot cloud")).to_be_visible()
    await shot("11-providers")

    # the trail of it all, and the tenant page at a phone's width
    await page.get_by_role("link", name="Audit log").click()
    await expect(page.get_by_text("dead_letter.replay")).not_to_have_count(0)
    await shot("12-audit")

    # an API token: shown once, then revoked
    await page.get_by_role("link", name="API tokens").click()
    await page.get_by_label("New token").fill("billing sync")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator("#new-token")).to_contain_text("bbo_")
    await shot("13-token-created")
    await page.get_by_role("button", name="Revoke billing sync").click()
    await expect(page.get_by_text("The token was revoked")).to_be_visible()
    await expect(page.locator("#new-token")).to_have_count(0)

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{console.url}/operator/tenants/{console.acme}")
    await shot("14-tenant-narrow", full=True)
