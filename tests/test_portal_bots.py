"""Bots: registered, updated, re-registered and unregistered in Bitrix24 as they change."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tenants.runtime import Runtime
from tenants.schema import bots
from tests.conftest import PUBLIC_URL, SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.fakes.server import serve
from tests.portal_kit import (
    PortalClient,
    add_provider,
    admin_app,
    audit_actions,
    install,
    signed_in,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwAEAQH/3nlWNgAAAABJRU5ErkJggg=="
)
EVENTS_URL = f"{PUBLIC_URL}/b24/events"


@dataclass
class World:
    client: PortalClient
    portal: Portal
    runtime: Runtime
    connector_id: int
    images: str


def image_app() -> Starlette:
    async def png(_: object) -> Response:
        return Response(PNG, media_type="image/png")

    async def page(_: object) -> Response:
        return Response("<html></html>", media_type="text/html")

    return Starlette(routes=[Route("/bot.png", png), Route("/page", page)])


@pytest.fixture(params=[2, 1], ids=["v2", "v1"])
async def world(
    request: pytest.FixtureRequest,
    b24_runtime: Runtime,
    bitrix24: FakeBitrix24,
    http: httpx2.AsyncClient,
    clock: SteppedClock,
) -> AsyncIterator[World]:
    async with serve(image_app()) as images, admin_app(b24_runtime, http, clock) as url:
        portal = bitrix24.add_portal("acme.bitrix24.com", v2=request.param == 2)
        await install(url, portal)
        await add_provider(b24_runtime, "Dify", "dify_chatflow", "http://127.0.0.1:9/v1")
        client = await signed_in(url, portal, http)
        created = await client.post(
            "/b24/api/connectors", {"name": "Flow", "provider_id": 1, "api_key": "app-1"}
        )
        yield World(client, portal, b24_runtime, created.json()["id"], images)


def bot_body(world: World, **changes: Any) -> dict[str, Any]:
    body = {
        "name": "Helper",
        "type": "openline",
        "event_mode": "webhook",
        "connector_id": world.connector_id,
        "color": "AQUA",
        "batch_delay_ms": 500,
        "session_ttl_s": 3600,
        "fallback_text": "Sorry!",
    }
    return body | changes


async def create(world: World, **changes: Any) -> dict[str, Any]:
    response = await world.client.post("/b24/api/bots", bot_body(world, **changes))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def registered_in_bitrix24(world: World, bot: dict[str, Any]) -> Any:
    return world.portal.bots[bot["b24_bot_id"]]


async def test_a_new_bot_is_registered_in_the_portals_api(world: World) -> None:
    bot = await create(world)
    assert bot["registration_state"] == "registered", bot
    assert bot["pass_tokens"] is False
    assert bot["handoff_on_failure"] is False
    remote = registered_in_bitrix24(world, bot)
    assert (remote.name, remote.code) == ("Helper", bot["code"])
    if world.portal.v2:
        assert bot["api_version"] == 2
        assert (remote.type, remote.event_mode, remote.webhook_url) == (
            "openline",
            "webhook",
            EVENTS_URL,
        )
        assert remote.properties["color"] == "AQUA"
    else:
        assert bot["api_version"] == 1
        assert (remote.type, remote.openline) == ("O", True)
        assert remote.handlers["EVENT_MESSAGE_ADD"] == EVENTS_URL
        assert remote.properties["COLOR"] == "AQUA"
    assert ("portal_user", "bot.create", f"bot:{bot['id']}") in await audit_actions(world.runtime)


async def test_editing_updates_the_bot_in_bitrix24(world: World) -> None:
    bot = await create(world)
    response = await world.client.patch(
        f"/b24/api/bots/{bot['id']}", {"name": "Concierge", "color": "PINK"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["b24_bot_id"] == bot["b24_bot_id"]
    remote = registered_in_bitrix24(world, bot)
    assert remote.name == "Concierge"
    method = "imbot.v2.Bot.update" if world.portal.v2 else "imbot.update"
    assert len(world.portal.calls_of(method)) == 1


async def test_a_type_change_registers_the_bot_again(world: World) -> None:
    bot = await create(world)
    await world.client.post(
        f"/b24/api/bots/{bot['id']}/commands",
        {"command": "help", "texts": [{"language": "en", "title": "Help"}]},
    )
    changed = (await world.client.patch(f"/b24/api/bots/{bot['id']}", {"type": "bot"})).json()
    assert changed["registration_state"] == "registered"
    assert changed["b24_bot_id"] != bot["b24_bot_id"]
    assert bot["b24_bot_id"] not in world.portal.bots
    remote = registered_in_bitrix24(world, changed)
    assert remote.type == ("bot" if world.portal.v2 else "B")
    (command,) = world.portal.commands.values()
    assert (command.command, command.bot_id) == ("help", remote.id)


async def test_a_failed_registration_is_kept_in_words_and_can_be_fixed(world: World) -> None:
    method = "imbot.v2.Bot.register" if world.portal.v2 else "imbot.register"
    world.portal.fail_next(
        method, 400, "MAX_COUNT_ERROR", "Has reached the maximum number of bots for application"
    )
    bot = await create(world)
    assert bot["registration_state"] == "failed"
    assert bot["registration_error"] == (
        "Bitrix24 refused: Has reached the maximum number of bots for application (MAX_COUNT_ERROR)"
    )
    page = await world.client.get(f"/b24/ui/bots/{bot['id']}")
    assert "Has reached the maximum number of bots" in page.text
    fixed = await world.client.patch(f"/b24/api/bots/{bot['id']}", {"name": "Helper 2"})
    assert fixed.json()["registration_state"] == "registered"
    assert fixed.json()["registration_error"] is None


async def test_a_failed_bot_can_be_deleted(world: World) -> None:
    method = "imbot.v2.Bot.register" if world.portal.v2 else "imbot.register"
    world.portal.fail_next(method, 400, "WRONG_REQUEST", "Wrong request")
    bot = await create(world)
    assert (await world.client.delete(f"/b24/api/bots/{bot['id']}")).status_code == 204
    assert (await world.client.get(f"/b24/api/bots/{bot['id']}")).status_code == 404


async def test_deleting_unregisters_the_bot(world: World) -> None:
    bot = await create(world)
    response = await world.client.delete(f"/b24/api/bots/{bot['id']}")
    assert response.status_code == 204
    assert world.portal.bots == {}
    assert (await world.client.get("/b24/api/bots")).json() == []
    assert ("portal_user", "bot.delete", f"bot:{bot['id']}") in await audit_actions(world.runtime)


async def test_when_bitrix24_refuses_to_unregister_nothing_is_deleted(world: World) -> None:
    bot = await create(world)
    method = "imbot.v2.Bot.unregister" if world.portal.v2 else "imbot.unregister"
    world.portal.fail_next(method, 403, "ACCESS_DENIED", "Access denied")
    refused = await world.client.delete(f"/b24/api/bots/{bot['id']}")
    assert refused.status_code == 502
    assert "Access denied (ACCESS_DENIED)" in refused.json()["error"]["message"]
    assert (await world.client.get(f"/b24/api/bots/{bot['id']}")).status_code == 200
    world.portal.fail_next(method, 403, "ACCESS_DENIED", "Access denied")
    forced = await world.client.delete(f"/b24/api/bots/{bot['id']}?force=1")
    assert forced.status_code == 204


async def test_avatar_is_fetched_and_sent_to_bitrix24(world: World) -> None:
    bot = await create(world, avatar_url=f"{world.images}/bot.png")
    remote = registered_in_bitrix24(world, bot)
    key = "avatar" if world.portal.v2 else "PERSONAL_PHOTO"
    assert remote.properties[key] == base64.b64encode(PNG).decode()


async def test_event_mode_fetch_is_chatbots_2_only(world: World) -> None:
    response = await world.client.post("/b24/api/bots", bot_body(world, event_mode="fetch"))
    if world.portal.v2:
        assert response.status_code == 201
        assert registered_in_bitrix24(world, response.json()).event_mode == "fetch"
    else:
        assert response.json()["error"]["fields"] == {
            "event_mode": "Fetch mode needs Chatbots 2.0."
        }


BAD_BOTS: list[tuple[dict[str, Any], str]] = [
    ({"name": "n" * 101}, "name"),
    ({"name": ""}, "name"),
    ({"type": "supervisor"}, "type"),
    ({"color": "ULTRAVIOLET"}, "color"),
    ({"batch_delay_ms": -1}, "batch_delay_ms"),
    ({"batch_delay_ms": "soon"}, "batch_delay_ms"),
    ({"session_ttl_s": 10}, "session_ttl_s"),
    ({"fallback_text": "f" * 2001}, "fallback_text"),
    ({"connector_id": 999}, "connector_id"),
    ({"avatar_url": "http://10.0.0.7/a.png"}, "avatar_url"),
    ({"pass_tokens": "maybe"}, "pass_tokens"),
    ({"handoff_on_failure": "maybe"}, "handoff_on_failure"),
    ({"handoff_on_failure": 2}, "handoff_on_failure"),
]


async def test_bad_input_saves_nothing_and_registers_nothing(world: World) -> None:
    for changes, field in BAD_BOTS:
        response = await world.client.post("/b24/api/bots", bot_body(world, **changes))
        assert response.status_code == 422, response.text
        assert field in response.json()["error"]["fields"], changes
    async with world.runtime.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(bots)) == 0
    assert world.portal.bots == {}
    assert [a for a in await audit_actions(world.runtime) if a[1].startswith("bot.")] == []


async def test_avatar_that_is_not_an_image_is_a_field_error(world: World) -> None:
    response = await world.client.post(
        "/b24/api/bots", bot_body(world, avatar_url=f"{world.images}/page")
    )
    assert response.json()["error"]["fields"] == {
        "avatar_url": "The address does not serve a PNG, JPEG or GIF image."
    }


async def test_a_bad_edit_changes_nothing(world: World) -> None:
    bot = await create(world)
    response = await world.client.patch(
        f"/b24/api/bots/{bot['id']}", {"name": "Fine", "session_ttl_s": 0}
    )
    assert response.status_code == 422
    assert (await world.client.get(f"/b24/api/bots/{bot['id']}")).json()["name"] == "Helper"
    assert registered_in_bitrix24(world, bot).name == "Helper"


async def stored_handoff(world: World, bot_id: int) -> bool:
    async with world.runtime.engine.connect() as connection:
        value = await connection.scalar(
            sa.select(bots.c.handoff_on_failure).where(bots.c.id == bot_id)
        )
    return bool(value)


async def test_the_handoff_option_is_saved_and_read_back(world: World) -> None:
    bot = await create(world, handoff_on_failure=True)
    assert bot["handoff_on_failure"] is True
    assert await stored_handoff(world, bot["id"])
    url = f"/b24/api/bots/{bot['id']}"
    assert (await world.client.get(url)).json()["handoff_on_failure"] is True
    assert [b["handoff_on_failure"] for b in (await world.client.get("/b24/api/bots")).json()] == [
        True
    ]

    # The form's checkbox sends a boolean; an edit of other fields keeps the option.
    renamed = await world.client.patch(url, {"name": "Concierge"})
    assert renamed.json()["handoff_on_failure"] is True
    off = await world.client.patch(url, {"handoff_on_failure": False})
    assert off.status_code == 200, off.text
    assert off.json()["handoff_on_failure"] is False
    assert not await stored_handoff(world, bot["id"])
    on = await world.client.patch(url, {"handoff_on_failure": "true"})
    assert on.json()["handoff_on_failure"] is True
    details = [a for a in await audit_actions(world.runtime) if a[1] == "bot.update"]
    assert len(details) == 3


async def test_a_bad_handoff_value_saves_nothing(world: World) -> None:
    bot = await create(world)
    method = "imbot.v2.Bot.update" if world.portal.v2 else "imbot.update"
    response = await world.client.patch(
        f"/b24/api/bots/{bot['id']}", {"name": "Renamed", "handoff_on_failure": "yes please"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"handoff_on_failure": "Must be true or false."}
    current = (await world.client.get(f"/b24/api/bots/{bot['id']}")).json()
    assert (current["name"], current["handoff_on_failure"]) == ("Helper", False)
    assert not await stored_handoff(world, bot["id"])
    assert world.portal.calls_of(method) == []
    assert registered_in_bitrix24(world, bot).name == "Helper"


async def test_the_bot_page_has_the_handoff_checkbox_in_both_languages(world: World) -> None:
    bot = await create(world, handoff_on_failure=True)
    page = await world.client.get(f"/b24/ui/bots/{bot['id']}")
    assert page.status_code == 200
    assert '<input type="checkbox" name="handoff_on_failure" checked>' in page.text
    assert "Hand the chat to an operator if the bot cannot answer" in page.text
    new = await world.client.get("/b24/ui/bots/new")
    assert '<input type="checkbox" name="handoff_on_failure" >' in new.text
    russian = await signed_in(world.client.url, world.portal, world.client.http, lang="ru")
    page = await russian.get(f"/b24/ui/bots/{bot['id']}")
    assert "Передать чат оператору, если бот не может ответить" in page.text
