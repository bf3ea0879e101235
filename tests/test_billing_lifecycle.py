"""The marketplace lifecycle moves subscriptions: install, payment re-checks, uninstall."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from admin_ui import create_admin_app
from billing import Subscription, Subscriptions
from tenants.runtime import Runtime
from tenants.store import TenantStore
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import (
    FakeBitrix24,
    Portal,
    app_install,
    app_payment,
    app_uninstall,
    send_event,
)
from tests.fakes.server import serve

DAY = 86_400.0


@pytest.fixture
async def admin_url(
    b24_runtime: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[str]:
    async with serve(create_admin_app(b24_runtime, http=http, clock=clock)) as url:
        yield url


async def subscription(runtime: Runtime, clock: SteppedClock, portal: Portal) -> Subscription:
    tenant = await TenantStore(runtime.engine, runtime.vault, runtime.hasher).find(portal.member_id)
    assert tenant is not None
    sub = await Subscriptions(runtime.engine, clock).get(tenant.id)
    assert sub is not None
    return sub


async def post(url: str, form: list[tuple[str, str]]) -> None:
    response = await send_event(url, form)
    assert response.status_code == 200, response.text


async def test_install_starts_a_trial_and_a_clean_uninstall_cancels_it(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await post(f"{admin_url}/b24/install", app_install(portal))
    first = await subscription(b24_runtime, clock, portal)
    assert first.state == "trial"

    await post(f"{admin_url}/b24/install", app_install(portal))  # reinstall: same subscription
    assert await subscription(b24_runtime, clock, portal) == first

    portal.uninstall()
    await post(f"{admin_url}/b24/app-events", app_uninstall(portal, clean=True))
    assert (await subscription(b24_runtime, clock, portal)).state == "cancelled"

    portal.reinstall()
    await post(f"{admin_url}/b24/install", app_install(portal))
    reopened = await subscription(b24_runtime, clock, portal)
    assert (reopened.state, reopened.trial_end) == ("trial", first.trial_end)


async def test_uninstall_keeping_data_keeps_the_subscription(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await post(f"{admin_url}/b24/install", app_install(portal))
    portal.uninstall()
    await post(f"{admin_url}/b24/app-events", app_uninstall(portal, clean=False))
    assert (await subscription(b24_runtime, clock, portal)).state == "trial"


async def test_licence_lapse_moves_the_subscription_and_payment_brings_it_back(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await post(f"{admin_url}/b24/install", app_install(portal))
    subscriptions = Subscriptions(b24_runtime.engine, clock)

    portal.lapse_payment()
    clock.fake.advance(3601)  # the access token expired; the refresh is refused
    await post(f"{admin_url}/b24/app-events", app_payment(portal))
    assert (await subscription(b24_runtime, clock, portal)).state == "past_due"

    clock.fake.advance(8 * DAY)
    (suspended,) = await subscriptions.tick()
    assert (suspended.state, suspended.suspend_reason) == ("suspended", "licence_lapsed")

    portal.payment_expired = False  # the admin renewed; Bitrix24 sends ONAPPPAYMENT
    await post(f"{admin_url}/b24/app-events", app_payment(portal))
    assert (await subscription(b24_runtime, clock, portal)).state == "trial"
