"""Connectors: write-only keys, validated URLs, field errors with nothing half-saved, and
"test connection" saying plainly what is wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import pytest
import sqlalchemy as sa

from tenants.runtime import Runtime
from tenants.schema import connectors
from tenants.vault import tenant_context
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24
from tests.fakes.dify import DifyApp, FakeDify, InputVariable
from tests.fakes.server import free_port, serve
from tests.fakes.typebot import FakeTypebot, Step, TextBubble, Typebot
from tests.portal_kit import (
    PortalClient,
    add_provider,
    admin_app,
    audit_actions,
    install,
    signed_in,
)


@dataclass
class World:
    client: PortalClient
    runtime: Runtime
    dify: FakeDify
    dify_url: str
    typebot_url: str


@pytest.fixture
async def world(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[World]:
    dify, typebot = FakeDify(), FakeTypebot()
    dify.add_app(DifyApp(api_key="app-good", name="Support flow"))
    dify.add_app(DifyApp(api_key="app-workflow", mode="workflow"))
    typebot.add_typebot(Typebot("support", [Step([TextBubble("Hi")])]))
    async with (
        serve(dify.asgi) as dify_url,
        serve(typebot.asgi) as typebot_url,
        admin_app(b24_runtime, http, clock) as url,
    ):
        portal = bitrix24.add_portal("acme.bitrix24.com")
        await install(url, portal)
        await add_provider(b24_runtime, "Dify", "dify_chatflow", f"{dify_url}/v1")
        await add_provider(b24_runtime, "Typebot", "typebot", typebot_url)
        await add_provider(b24_runtime, "Dify WF", "dify_workflow", f"{dify_url}/v1")
        client = await signed_in(url, portal, http)
        yield World(client, b24_runtime, dify, dify_url, typebot_url)


async def provider_ids(world: World) -> dict[str, int]:
    return {p["name"]: p["id"] for p in (await world.client.get("/b24/api/providers")).json()}


async def stored_key(world: World, connector_id: int) -> str | None:
    async with world.runtime.engine.connect() as connection:
        sealed = await connection.scalar(
            sa.select(connectors.c.api_key).where(connectors.c.id == connector_id)
        )
    if sealed is None:
        return None
    return world.runtime.vault.open(sealed, tenant_context(1, "connectors", "api_key"))


async def count(world: World) -> int:
    async with world.runtime.engine.connect() as connection:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(connectors)) or 0)


async def dify_connector(world: World, **changes: object) -> httpx2.Response:
    ids = await provider_ids(world)
    body = {"name": "Support", "provider_id": ids["Dify"], "api_key": "app-good"} | changes
    return await world.client.post("/b24/api/connectors", body)


async def test_the_key_is_sealed_and_never_sent_back(world: World) -> None:
    created = await dify_connector(world)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["has_api_key"] is True
    assert body["provider"]["name"] == "Dify"
    listed = await world.client.get("/b24/api/connectors")
    page = await world.client.get(f"/b24/ui/connectors/{body['id']}")
    for response in (created, listed, page):
        assert "app-good" not in response.text
    assert await stored_key(world, body["id"]) == "app-good"
    assert ("portal_user", "connector.create", f"connector:{body['id']}") in await audit_actions(
        world.runtime
    )


async def test_editing_without_a_key_keeps_the_stored_one(world: World) -> None:
    connector_id = (await dify_connector(world)).json()["id"]
    kept = await world.client.patch(
        f"/b24/api/connectors/{connector_id}", {"name": "Renamed", "api_key": ""}
    )
    assert kept.status_code == 200, kept.text
    assert await stored_key(world, connector_id) == "app-good"
    replaced = await world.client.patch(f"/b24/api/connectors/{connector_id}", {"api_key": "app-2"})
    assert replaced.json()["name"] == "Renamed"
    assert await stored_key(world, connector_id) == "app-2"


async def test_dify_needs_a_key_and_nothing_is_saved_without_it(world: World) -> None:
    response = await dify_connector(world, api_key="")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"] == {"api_key": "Dify needs the app's API key."}
    assert await count(world) == 0


async def test_typebot_needs_no_key_but_a_start_url_of_the_right_shape(world: World) -> None:
    ids = await provider_ids(world)
    base = {"name": "Bot", "provider_id": ids["Typebot"]}
    missing = await world.client.post("/b24/api/connectors", base)
    shaped = await world.client.post(
        "/b24/api/connectors", base | {"typebot_start_url": f"{world.typebot_url}/support"}
    )
    preview = await world.client.post(
        "/b24/api/connectors",
        base | {"typebot_start_url": f"{world.typebot_url}/api/v1/typebots/x/preview/startChat"},
    )
    good = await world.client.post(
        "/b24/api/connectors",
        base | {"typebot_start_url": f"{world.typebot_url}/api/v1/typebots/support/startChat"},
    )
    assert missing.json()["error"]["fields"] == {"typebot_start_url": "Required."}
    assert "startChat" in shaped.json()["error"]["fields"]["typebot_start_url"]
    assert "api_key" in preview.json()["error"]["fields"]
    assert good.status_code == 201, good.text
    assert good.json()["has_api_key"] is False


async def test_the_stored_typebot_key_can_be_removed(world: World) -> None:
    ids = await provider_ids(world)
    start = f"{world.typebot_url}/api/v1/typebots/support/startChat"
    body = {"name": "Bot", "provider_id": ids["Typebot"], "typebot_start_url": start}
    created = await world.client.post("/b24/api/connectors", body | {"api_key": "tb-token"})
    connector_id = created.json()["id"]
    cleared = await world.client.patch(
        f"/b24/api/connectors/{connector_id}", {"clear_api_key": True}
    )
    assert cleared.json()["has_api_key"] is False
    assert await stored_key(world, connector_id) is None


BAD_CONNECTORS: list[tuple[dict[str, object], str, str]] = [
    ({"name": "x" * 101}, "name", "At most 100 characters."),
    ({"name": "  "}, "name", "Required."),
    ({"base_url": "ftp://files.example.com/v1"}, "base_url", "Not a valid http(s) address."),
    ({"base_url": "http://10.1.2.3/v1"}, "base_url", "private or local address"),
    ({"base_url": "http://169.254.169.254/latest"}, "base_url", "private or local address"),
    ({"base_url": "http://[::1]:8080/v1"}, "base_url", "private or local address"),
    ({"base_url": "https://nothing.invalid/v1"}, "base_url", "cannot be found"),
    ({"provider_id": 99}, "provider_id", "Choose one of the providers listed."),
]


async def test_bad_input_gives_field_errors_and_saves_nothing(world: World) -> None:
    for changes, field, words in BAD_CONNECTORS:
        response = await dify_connector(world, **changes)
        assert response.status_code == 422, response.text
        assert words in response.json()["error"]["fields"][field], changes
    assert await count(world) == 0
    assert await audit_actions(world.runtime) == []


async def test_names_are_unique_per_tenant(world: World) -> None:
    await dify_connector(world)
    again = await dify_connector(world)
    assert again.json()["error"]["fields"] == {"name": "This name is already used."}


async def test_a_connector_in_use_cannot_be_deleted(world: World) -> None:
    connector_id = (await dify_connector(world)).json()["id"]
    bot = await world.client.post(
        "/b24/api/bots", {"name": "Helper", "type": "openline", "event_mode": "webhook",
                          "connector_id": connector_id, "batch_delay_ms": 0,
                          "session_ttl_s": 86400},
    )  # fmt: skip
    assert bot.status_code == 201, bot.text
    refused = await world.client.delete(f"/b24/api/connectors/{connector_id}")
    assert refused.status_code == 409
    assert "Helper" in refused.json()["error"]["message"]
    await world.client.delete(f"/b24/api/bots/{bot.json()['id']}")
    assert (await world.client.delete(f"/b24/api/connectors/{connector_id}")).status_code == 204
    assert await count(world) == 0


async def check(world: World, body: dict[str, object]) -> dict[str, object]:
    response = await world.client.post("/b24/api/connectors/test", body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_connection_test_names_the_dify_app(world: World) -> None:
    ids = await provider_ids(world)
    result = await check(world, {"provider_id": ids["Dify"], "api_key": "app-good"})
    assert result == {
        "ok": True,
        "message": "Connected to the Dify app “Support flow”.",
        "warnings": [],
    }


async def test_connection_test_says_what_is_wrong(world: World) -> None:
    ids = await provider_ids(world)
    closed = f"http://127.0.0.1:{free_port()}/v1"
    cases = [
        ({"api_key": "app-wrong"}, "Dify does not accept this API key."),
        ({"api_key": "app-good", "base_url": closed}, "cannot be reached"),
        ({"api_key": "app-good", "base_url": world.typebot_url}, "No Dify app API answers"),
        ({"api_key": "app-workflow"}, "type workflow; this provider expects advanced-chat"),
    ]
    for changes, words in cases:
        result = await check(world, {"provider_id": ids["Dify"], **changes})
        assert result["ok"] is False
        assert words in str(result["message"]), result


async def test_connection_test_warns_of_inputs_too_short(world: World) -> None:
    world.dify.add_app(
        DifyApp(api_key="app-short", form=[InputVariable("CHAT_ENTITY_DATA_1", max_length=48)])
    )
    ids = await provider_ids(world)
    result = await check(world, {"provider_id": ids["Dify"], "api_key": "app-short"})
    assert result["ok"] is True
    assert result["warnings"] == [
        "These inputs may be too short for what Bitrix24 sends: CHAT_ENTITY_DATA_1 (48)."
        " Raise their max length in Dify."
    ]


async def test_connection_test_of_a_stored_connector_uses_its_key(world: World) -> None:
    connector_id = (await dify_connector(world)).json()["id"]
    response = await world.client.post(f"/b24/api/connectors/{connector_id}/test", {})
    assert response.json()["ok"] is True
    assert world.dify.apps["app-good"].requests[-1].authorization == "Bearer app-good"


async def test_connection_test_of_typebot_does_not_start_a_chat(world: World) -> None:
    ids = await provider_ids(world)
    start = f"{world.typebot_url}/api/v1/typebots/support/startChat"
    result = await check(world, {"provider_id": ids["Typebot"], "typebot_start_url": start})
    assert result["ok"] is True
    assert "support" in str(result["message"])
    closed = f"http://127.0.0.1:{free_port()}/api/v1/typebots/support/startChat"
    down = await check(world, {"provider_id": ids["Typebot"], "typebot_start_url": closed})
    assert down["ok"] is False
    assert "cannot be reached" in str(down["message"])


async def test_connection_test_refuses_private_addresses(world: World) -> None:
    ids = await provider_ids(world)
    response = await world.client.post(
        "/b24/api/connectors/test",
        {"provider_id": ids["Dify"], "api_key": "k", "base_url": "http://192.168.1.10/v1"},
    )
    assert response.status_code == 422
    assert "private or local address" in response.json()["error"]["fields"]["base_url"]
