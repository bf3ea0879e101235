"""Commands per bot: validated, and synced with Bitrix24 on every change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from tenants.runtime import Runtime
from tenants.schema import commands
from tests.conftest import PUBLIC_URL, SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.portal_kit import (
    PortalClient,
    add_provider,
    admin_app,
    audit_actions,
    install,
    signed_in,
)

HELP = {
    "command": "/help",
    "common": False,
    "hidden": False,
    "extranet": True,
    "texts": [
        {"language": "en", "title": "Help", "params": "topic"},
        {"language": "ru", "title": "Помощь", "params": "тема"},
    ],
}


@dataclass
class World:
    client: PortalClient
    portal: Portal
    runtime: Runtime
    bot: dict[str, Any]

    @property
    def commands_url(self) -> str:
        return f"/b24/api/bots/{self.bot['id']}/commands"


@pytest.fixture(params=[2, 1], ids=["v2", "v1"])
async def world(
    request: pytest.FixtureRequest,
    b24_runtime: Runtime,
    bitrix24: FakeBitrix24,
    http: httpx2.AsyncClient,
    clock: SteppedClock,
) -> AsyncIterator[World]:
    async with admin_app(b24_runtime, http, clock) as url:
        portal = bitrix24.add_portal("acme.bitrix24.com", v2=request.param == 2)
        await install(url, portal)
        await add_provider(b24_runtime, "Dify", "dify_chatflow", "http://127.0.0.1:9/v1")
        client = await signed_in(url, portal, http)
        connector = await client.post(
            "/b24/api/connectors", {"name": "Flow", "provider_id": 1, "api_key": "app-1"}
        )
        bot = await client.post(
            "/b24/api/bots",
            {"name": "Helper", "type": "openline", "event_mode": "webhook",
             "connector_id": connector.json()["id"], "batch_delay_ms": 0, "session_ttl_s": 86400},
        )  # fmt: skip
        yield World(client, portal, b24_runtime, bot.json())


async def test_a_new_command_is_registered_with_its_texts(world: World) -> None:
    response = await world.client.post(world.commands_url, HELP)
    assert response.status_code == 201, response.text
    command = response.json()
    assert (command["command"], command["registered"], command["sync_error"]) == (
        "help",
        True,
        None,
    )
    (remote,) = world.portal.commands.values()
    assert remote.id == command["b24_command_id"]
    assert (remote.command, remote.bot_id) == ("help", world.bot["b24_bot_id"])
    assert remote.titles == {"en": "Help", "ru": "Помощь"}
    assert remote.extranet_support is True
    if world.portal.v2:
        assert remote.params == {"en": "topic", "ru": "тема"}
    else:
        assert remote.handler == f"{PUBLIC_URL}/b24/events"
    actions = await audit_actions(world.runtime)
    assert ("portal_user", "command.create", f"bot:{world.bot['id']}/command:{command['id']}") in (
        actions
    )


async def test_an_edit_reaches_bitrix24(world: World) -> None:
    created = (await world.client.post(world.commands_url, HELP)).json()
    texts = [{"language": "en", "title": "Get help", "params": ""}]
    response = await world.client.patch(
        f"{world.commands_url}/{created['id']}", {"hidden": True, "texts": texts}
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    (remote,) = world.portal.commands.values()
    assert remote.id == edited["b24_command_id"]
    assert (remote.titles, remote.hidden) == ({"en": "Get help"}, True)
    if world.portal.v2:
        assert len(world.portal.calls_of("imbot.v2.Command.unregister")) == 1
    else:
        assert len(world.portal.calls_of("imbot.command.update")) == 1
        assert remote.id == created["b24_command_id"]


async def test_changing_common_registers_a_classic_command_again(world: World) -> None:
    created = (await world.client.post(world.commands_url, HELP)).json()
    await world.client.patch(f"{world.commands_url}/{created['id']}", {"common": True})
    (remote,) = world.portal.commands.values()
    assert remote.common is True
    unregister = "imbot.v2.Command.unregister" if world.portal.v2 else "imbot.command.unregister"
    assert len(world.portal.calls_of(unregister)) == 1


async def test_deleting_unregisters_the_command(world: World) -> None:
    created = (await world.client.post(world.commands_url, HELP)).json()
    response = await world.client.delete(f"{world.commands_url}/{created['id']}")
    assert response.status_code == 204
    assert world.portal.commands == {}
    assert (await world.client.get(world.commands_url)).json() == []


async def test_a_sync_problem_is_reported_and_the_next_save_retries(world: World) -> None:
    method = "imbot.v2.Command.register" if world.portal.v2 else "imbot.command.register"
    world.portal.fail_next(method, 400, "LANG_ERROR", "Lang set can't be empty")
    created = (await world.client.post(world.commands_url, HELP)).json()
    assert created["registered"] is False
    assert created["sync_error"] == "Bitrix24 refused: Lang set can't be empty (LANG_ERROR)"
    retried = (await world.client.patch(f"{world.commands_url}/{created['id']}", {})).json()
    assert (retried["registered"], retried["sync_error"]) == (True, None)
    assert len(world.portal.commands) == 1


async def test_commands_of_a_bot_that_failed_to_register_follow_the_bot(world: World) -> None:
    bot_url = f"/b24/api/bots/{world.bot['id']}"
    method = "imbot.v2.Bot.register" if world.portal.v2 else "imbot.register"
    world.portal.fail_next(method, 500, "INTERNAL_SERVER_ERROR", "boom")
    failed = (await world.client.patch(bot_url, {"type": "bot"})).json()
    assert (failed["registration_state"], failed["b24_bot_id"]) == ("failed", None)
    saved = (await world.client.post(world.commands_url, HELP)).json()
    assert (saved["registered"], saved["sync_error"]) == (False, None)
    registered = (await world.client.post(f"{bot_url}/register")).json()
    assert registered["registration_state"] == "registered"
    (remote,) = world.portal.commands.values()
    assert remote.bot_id == registered["b24_bot_id"]
    listed = (await world.client.get(world.commands_url)).json()
    assert listed[0]["b24_command_id"] == remote.id


BAD_COMMANDS: list[tuple[dict[str, Any], str]] = [
    ({"command": "two words"}, "command"),
    ({"command": "x" * 33}, "command"),
    ({"command": ""}, "command"),
    ({"texts": []}, "texts"),
    ({"texts": "Help"}, "texts"),
    ({"texts": [{"language": "english", "title": "Help"}]}, "texts.0.language"),
    ({"texts": [{"language": "en", "title": ""}]}, "texts.0.title"),
    ({"texts": [{"language": "en", "title": "t" * 101}]}, "texts.0.title"),
    ({"texts": [{"language": "en", "title": "A"}, {"language": "en", "title": "B"}]},
     "texts.1.language"),
    ({"common": "sometimes"}, "common"),
]  # fmt: skip


async def test_bad_input_saves_nothing(world: World) -> None:
    for changes, field in BAD_COMMANDS:
        response = await world.client.post(world.commands_url, HELP | changes)
        assert response.status_code == 422, response.text
        assert field in response.json()["error"]["fields"], changes
    async with world.runtime.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(commands)) == 0
    assert world.portal.commands == {}


async def test_a_command_name_is_unique_per_bot(world: World) -> None:
    await world.client.post(world.commands_url, HELP)
    again = await world.client.post(world.commands_url, HELP)
    assert again.json()["error"]["fields"] == {"command": "This name is already used."}
