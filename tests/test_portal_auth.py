"""Opening the app page: verified with the auth server and the portal, or refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx2
import pytest

from admin_ui.portal import PortalOptions
from tenants.runtime import Runtime
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, app_uninstall, send_event
from tests.portal_kit import PortalClient, admin_app, install, open_app, session_token


@pytest.fixture
async def admin_url(
    b24_runtime: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[str]:
    async with admin_app(b24_runtime, http, clock) as url:
        yield url


async def test_an_admin_gets_a_session_framed_only_by_their_portal(
    admin_url: str, bitrix24: FakeBitrix24
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)

    page = await open_app(admin_url, portal)

    assert page.status_code == 200, page.text
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors https://acme.bitrix24.com" in csp
    assert "x-frame-options" not in page.headers
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"bitbot_portal={session_token(page)};")
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/b24/"):
        assert attribute in cookie
    (asked,) = portal.calls_of("user.admin")
    assert (asked.auth, asked.user_id) == (portal.auth.access_token, portal.admin.id)
    assert "<fieldset disabled" not in page.text


async def test_made_up_auth_id_is_refused(admin_url: str, bitrix24: FakeBitrix24) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    forged = replace(portal.issue_tokens(), access_token="not-a-token")

    page = await open_app(admin_url, portal, tokens=forged)

    assert page.status_code == 401
    assert "did not confirm your sign-in" in page.text
    assert "set-cookie" not in page.headers
    assert "bitbot-session" not in page.text
    assert "frame-ancestors https://acme.bitrix24.com" in page.headers["content-security-policy"]


async def test_expired_auth_id_is_refused(
    admin_url: str, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    stale = portal.issue_tokens()
    clock.fake.advance(3601)

    page = await open_app(admin_url, portal, tokens=stale)

    assert page.status_code == 401
    assert "set-cookie" not in page.headers


async def test_token_of_another_portal_is_refused(admin_url: str, bitrix24: FakeBitrix24) -> None:
    victim = bitrix24.add_portal("victim.bitrix24.com")
    attacker = bitrix24.add_portal("attacker.bitrix24.com")
    await install(admin_url, victim)
    await install(admin_url, attacker)

    page = await open_app(admin_url, victim, tokens=attacker.issue_tokens())

    assert page.status_code == 401
    assert "belongs to another portal" in page.text
    assert "set-cookie" not in page.headers


async def test_portal_without_bitbot_is_refused(admin_url: str, bitrix24: FakeBitrix24) -> None:
    portal = bitrix24.add_portal("stranger.bitrix24.com")
    page = await open_app(admin_url, portal)
    assert page.status_code == 403
    assert "not installed" in page.text


async def test_uninstalled_portal_loses_its_sessions(
    admin_url: str, bitrix24: FakeBitrix24, http: httpx2.AsyncClient
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    client = PortalClient(admin_url, session_token(await open_app(admin_url, portal)), http)
    assert (await client.get("/b24/api/bots")).status_code == 200

    portal.uninstall()
    await send_event(f"{admin_url}/b24/app-events", app_uninstall(portal, clean=False))

    response = await client.get("/b24/api/bots")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_installed"


async def test_non_admin_gets_a_read_only_view(
    admin_url: str, bitrix24: FakeBitrix24, http: httpx2.AsyncClient
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    bob = portal.add_user("Bob", "Builder")

    page = await open_app(admin_url, portal, tokens=portal.issue_tokens(bob.id))

    assert page.status_code == 200
    assert "only portal administrators can change BitBot" in page.text
    client = PortalClient(admin_url, session_token(page), http)
    assert (await client.get("/b24/api/connectors")).status_code == 200
    refused = await client.post("/b24/api/connectors", {"name": "x", "provider_id": 1})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "read_only"
    session = (await client.get("/b24/api/session")).json()
    assert session["user"] == {"id": bob.id, "admin": False, "language": "en"}


async def test_non_admins_can_be_refused_outright(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with admin_app(b24_runtime, http, clock, PortalOptions(non_admins="refuse")) as url:
        portal = bitrix24.add_portal("acme.bitrix24.com")
        await install(url, portal)
        bob = portal.add_user("Bob")
        refused = await open_app(url, portal, tokens=portal.issue_tokens(bob.id))
        admin = await open_app(url, portal)
    assert refused.status_code == 403
    assert "Only portal administrators can open" in refused.text
    assert "set-cookie" not in refused.headers
    assert admin.status_code == 200


async def test_the_viewers_language_is_used(admin_url: str, bitrix24: FakeBitrix24) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", language="en")
    await install(admin_url, portal)

    russian = await open_app(admin_url, portal, lang="ru")
    english = await open_app(admin_url, portal, lang="de")

    assert '<html lang="ru">' in russian.text
    assert "Боты" in russian.text
    assert '<html lang="en">' in english.text
    assert "Connectors" in english.text


async def test_requests_without_a_valid_session_are_refused(
    admin_url: str, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    token = session_token(await open_app(admin_url, portal))
    payload_forged = token.replace(token.split(".")[1], token.split(".")[1][::-1])

    missing = await http.get(f"{admin_url}/b24/api/bots")
    forged = await PortalClient(admin_url, payload_forged, http).get("/b24/api/bots")
    page = await http.get(f"{admin_url}/b24/ui/bots")
    clock.fake.advance(3601)
    expired = await PortalClient(admin_url, token, http).get("/b24/api/bots")

    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "no_session")
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "bad_session")
    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "session_expired")
    assert page.status_code == 401
    assert "session is missing" in page.text


async def test_the_partitioned_cookie_alone_is_a_session(
    admin_url: str, bitrix24: FakeBitrix24, http: httpx2.AsyncClient
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    token = session_token(await open_app(admin_url, portal))

    cookie = {"Cookie": f"bitbot_portal={token}"}
    page = await http.get(f"{admin_url}/b24/ui/connectors", headers=cookie)

    assert page.status_code == 200
    assert "New connector" in page.text
