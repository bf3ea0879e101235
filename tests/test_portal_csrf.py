"""Cross-site requests: a state change must come from our own page (or carry the header)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from tenants.runtime import Runtime
from tests.conftest import PUBLIC_URL, SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24
from tests.portal_kit import PortalClient, add_provider, admin_app, install, signed_in

START_URL = "http://127.0.0.1:9/api/v1/typebots/support/startChat"


@pytest.fixture
async def client(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[PortalClient]:
    async with admin_app(b24_runtime, http, clock) as url:
        portal = bitrix24.add_portal("acme.bitrix24.com")
        await install(url, portal)
        await add_provider(b24_runtime, "Typebot", "typebot", "http://127.0.0.1:9")
        yield await signed_in(url, portal, http)


def connector(name: str) -> dict[str, object]:
    return {"name": name, "provider_id": 1, "typebot_start_url": START_URL}


async def create(client: PortalClient, name: str, headers: dict[str, str]) -> httpx2.Response:
    cookie = {"Cookie": f"bitbot_portal={client.token}"}
    return await client.http.post(
        f"{client.url}/b24/api/connectors", json=connector(name), headers=cookie | headers
    )


async def names(client: PortalClient) -> list[str]:
    return [c["name"] for c in (await client.get("/b24/api/connectors")).json()]


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://other.bitbot.example.com"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {},
    ],
)
async def test_cross_site_posts_with_the_cookie_are_refused(
    client: PortalClient, headers: dict[str, str]
) -> None:
    response = await create(client, "forged", headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cross_site"
    assert await names(client) == []


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "same-origin"}, {"Origin": PUBLIC_URL}])
async def test_our_own_page_may_post_with_the_cookie(
    client: PortalClient, headers: dict[str, str]
) -> None:
    response = await create(client, "mine", headers)
    assert response.status_code == 201, response.text
    assert await names(client) == ["mine"]


async def test_a_script_with_the_session_header_may_post(client: PortalClient) -> None:
    response = await client.http.post(
        f"{client.url}/b24/api/connectors",
        json=connector("automation"),
        headers={"X-BitBot-Session": client.token},
    )
    assert response.status_code == 201, response.text


async def test_the_header_does_not_excuse_a_cross_site_request(client: PortalClient) -> None:
    response = await client.send(
        "DELETE", "/b24/api/connectors/1", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403


async def test_reading_cross_site_is_harmless_and_allowed(client: PortalClient) -> None:
    response = await client.http.get(
        f"{client.url}/b24/api/connectors",
        headers={"X-BitBot-Session": client.token, "Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 200
