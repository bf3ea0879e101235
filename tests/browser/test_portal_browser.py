"""The portal UI in a real Chromium, inside an iframe of a page on another origin, as Bitrix24
shows it: create a connector, a bot and a command, talk to the bot in the test chat (a real
worker, FakeDify answering), then delete everything. Screenshots go to ``tests/artifacts/``.

Both sites are served over HTTPS (a throwaway certificate) at ``*.localhost`` names, so the
cookie, ``Sec-Fetch-Site`` and ``frame-ancestors`` behave as they do between a portal and BitBot.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from admin_ui import create_admin_app
from admin_ui.portal import PortalOptions
from gateway import build_worker
from gateway.providers import ProviderHttp
from tenants.migrate import upgrade
from tenants.runtime import build_runtime
from tenants.settings import load_settings
from tests.browser.chromium import ARTIFACTS, CHROMIUM, CROSS_SITE_ARGS, WAIT_MS, need_browser
from tests.browser.harness import certificate, portal_page, serve_tls
from tests.conftest import B24_CLIENT_ID, B24_SECRET, Backend
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.fakes.dify import DifyApp, FakeDify
from tests.fakes.server import free_port, serve
from tests.portal_kit import add_provider, install

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parent.parent.parent
# The README's picture is refreshed only on request, so a test run leaves the tree unchanged.
README_SHOT = (
    ROOT / "docs" / "img" / "bot-page.png"
    if os.environ.get("BITBOT_README_SHOT") == "1"
    else ARTIFACTS / "bot-page-readme.png"
)


@dataclass
class Scene:
    portal_url: str
    portal: Portal
    dify: DifyApp


@pytest.fixture
async def scene(backend: Backend, tmp_path: Path) -> AsyncIterator[Scene]:
    need_browser()
    tls = certificate(tmp_path)
    portal_port, app_port = free_port(), free_port()
    portal_domain = f"portal.localhost:{portal_port}"
    app_url = f"https://bitbot.localhost:{app_port}"
    cloud = FakeBitrix24(client_id=B24_CLIENT_ID, client_secret=B24_SECRET)
    dify = FakeDify()
    app = dify.add_app(DifyApp(api_key="app-browser", answer=lambda run: f"You said: {run.query}"))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(cloud.serve())
        dify_url = await stack.enter_async_context(serve(dify.asgi))
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
        admin = create_admin_app(runtime, http=http, portal=PortalOptions())
        await stack.enter_async_context(serve_tls(admin, app_port, tls))
        portal = cloud.add_portal(portal_domain)
        insecure = await stack.enter_async_context(httpx2.AsyncClient(verify=False))
        await install(f"https://127.0.0.1:{app_port}", portal, insecure)  # no *.localhost here
        await add_provider(runtime, "Dify cloud", "dify_chatflow", f"{dify_url}/v1")
        providers = ProviderHttp()
        stack.push_async_callback(providers.aclose)
        worker = build_worker(runtime, http, providers=providers, read_block_ms=20)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        stack.push_async_callback(lambda: running)
        stack.callback(stop.set)
        await stack.enter_async_context(serve_tls(portal_page(portal, app_url), portal_port, tls))
        yield Scene(f"https://{portal_domain}/", portal, app)


async def test_an_admin_configures_a_bot_inside_the_portal(scene: Scene) -> None:
    api = need_browser()
    expect = api.expect
    expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    async with api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CROSS_SITE_ARGS
        )
        try:
            context = await browser.new_context(
                viewport={"width": 1100, "height": 1000}, ignore_https_errors=True
            )
            context.set_default_timeout(WAIT_MS)
            page = await context.new_page()
            await page.goto(scene.portal_url)
            app = page.frame_locator('iframe[name="bitbot"]')

            async def shot(name: str) -> None:
                await page.wait_for_timeout(150)
                await page.screenshot(path=str(ARTIFACTS / f"portal-{name}.png"))

            await expect(app.get_by_text("Start with a connector")).to_be_visible()
            await shot("01-empty")

            # a connector: first without the key Dify needs, then tested and saved
            await app.get_by_role("link", name="New connector").click()
            await app.get_by_label("Name").fill("Support flow")
            await app.get_by_role("button", name="Create connector").click()
            await expect(app.get_by_text("Dify needs the app's API key.")).to_be_visible()
            await shot("02-connector-field-error")
            await app.get_by_label("API key").fill("app-browser")
            await app.get_by_role("button", name="Test connection").click()
            await expect(app.get_by_text("Connected to the Dify app")).to_be_visible()
            await shot("03-connector-tested")
            await app.get_by_role("button", name="Create connector").click()
            await expect(app.get_by_role("link", name="Support flow")).to_be_visible()
            await shot("04-connectors")

            # a bot, registered in the portal
            await app.get_by_role("link", name="Bots", exact=True).click()
            await app.get_by_role("link", name="New bot").click()
            await app.get_by_label("Name").fill("Concierge")
            await app.get_by_label("Color").select_option("AQUA")
            await app.get_by_label("Fallback text").fill("We will be right back.")
            await shot("05-new-bot")
            await app.get_by_role("button", name="Create bot").click()
            await expect(app.get_by_text("Registered", exact=True)).to_be_visible()
            (remote,) = scene.portal.bots.values()
            assert (remote.name, remote.type) == ("Concierge", "openline")

            # a command with two languages
            await app.get_by_role("link", name="Add command").click()
            await app.get_by_label("Command", exact=True).fill("help")
            rows = app.locator("[data-text-row]")
            await rows.nth(0).locator('[data-text="title"]').fill("Help")
            await app.get_by_role("button", name="Add language").click()
            await rows.nth(1).locator('[data-text="language"]').fill("ru")
            await rows.nth(1).locator('[data-text="title"]').fill("Помощь")
            await shot("06-command")
            await app.get_by_role("button", name="Create command").click()
            await expect(app.get_by_role("link", name="/help")).to_be_visible()
            (command,) = scene.portal.commands.values()
            assert command.titles == {"en": "Help", "ru": "Помощь"}

            # the test chat, answered by the flow through the worker
            await app.get_by_placeholder("Type a message…").fill("Hello there")
            await app.get_by_role("button", name="Send").click()
            await expect(app.locator(".bubble.bot")).to_have_text("You said: Hello there")
            await shot("07-bot-page")
            await readme_shot(page, app)
            await page.set_viewport_size({"width": 390, "height": 844})
            await shot("08-bot-page-narrow")
            await app.locator("[data-chat]").scroll_into_view_if_needed()
            await shot("08-bot-page-narrow-chat")
            await page.set_viewport_size({"width": 1100, "height": 1000})
            await russian_shot(browser, scene.portal_url, expect)

            # delete: the command, the bot, the connector — each gone from Bitrix24 too
            await app.get_by_role("link", name="/help").click()
            delete_command = app.get_by_role("button", name="Delete command")
            await delete_command.click()
            await app.get_by_role("button", name="Click again to delete").click()
            await expect(app.get_by_text("No commands.")).to_be_visible()
            assert scene.portal.commands == {}
            await app.get_by_role("button", name="Delete bot").click()
            await app.get_by_role("button", name="Click again to delete").click()
            await expect(app.get_by_text("No bots yet.")).to_be_visible()
            assert scene.portal.bots == {}
            await app.get_by_role("link", name="Connectors").click()
            await app.get_by_role("link", name="Support flow").click()
            await app.get_by_role("button", name="Delete connector").click()
            await app.get_by_role("button", name="Click again to delete").click()
            await expect(app.get_by_text("No connectors yet.")).to_be_visible()
            await shot("09-deleted")
        except BaseException:
            await page.screenshot(path=str(ARTIFACTS / "portal-failure.png"))
            raise
        finally:
            await browser.close()
    assert len(scene.dify.conversations) == 1


async def russian_shot(browser: Any, portal_url: str, expect: Any) -> None:
    """The same bots at a phone's width for a Russian-speaking user."""
    context = await browser.new_context(
        viewport={"width": 360, "height": 740}, ignore_https_errors=True
    )
    page = await context.new_page()
    await page.goto(f"{portal_url}ru")
    app = page.frame_locator('iframe[name="bitbot"]')
    await expect(app.get_by_role("link", name="Новый бот")).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / "portal-10-russian-narrow.png"))
    await app.get_by_role("link", name="Concierge").click()
    await expect(app.get_by_role("heading", name="Тестовый чат")).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / "portal-11-russian-bot.png"))
    await context.close()


async def readme_shot(page: Any, app: Any) -> None:
    """The bot page as the README shows it: no toast, 1000 px wide, down to the fallback text."""
    await app.locator(".toast").evaluate("toast => { toast.hidden = true; }")
    # The test portal lives at portal.localhost:{port}; the picture shows a portal's usual name.
    await app.locator(".who").evaluate("who => { who.textContent = 'acme.bitrix24.com'; }")
    await page.set_viewport_size({"width": 1000, "height": 1100})
    await page.wait_for_timeout(200)
    bottom = await app.locator('textarea[name="fallback_text"]').bounding_box()
    top = await page.locator('iframe[name="bitbot"]').bounding_box()
    assert bottom is not None
    assert top is not None
    height = min(bottom["y"] + bottom["height"] + 16, 1100) - top["y"]
    README_SHOT.parent.mkdir(parents=True, exist_ok=True)
    clip = {"x": 0, "y": top["y"], "width": 1000, "height": height}
    await page.screenshot(path=str(README_SHOT), clip=clip)
