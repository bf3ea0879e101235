"""Tenant isolation: every id in a URL or body is checked against the session's tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tenants.runtime import Runtime
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.portal_kit import (
    PortalClient,
    add_provider,
    admin_app,
    audit_actions,
    install,
    signed_in,
)


@dataclass
class Tenant:
    client: PortalClient
    portal: Portal
    connector: dict[str, Any]
    bot: dict[str, Any]
    command: dict[str, Any]


async def furnish(url: str, portal: Portal, http: httpx2.AsyncClient) -> Tenant:
    await install(url, portal)
    client = await signed_in(url, portal, http)
    connector = await client.post(
        "/b24/api/connectors", {"name": "Flow", "provider_id": 1, "api_key": f"key-{portal.domain}"}
    )
    bot = await client.post(
        "/b24/api/bots",
        {"name": f"Bot of {portal.domain}", "type": "openline", "event_mode": "webhook",
         "connector_id": connector.json()["id"], "batch_delay_ms": 0, "session_ttl_s": 86400},
    )  # fmt: skip
    command = await client.post(
        f"/b24/api/bots/{bot.json()['id']}/commands",
        {"command": "help", "texts": [{"language": "en", "title": "Help"}]},
    )
    assert command.status_code == 201, command.text
    return Tenant(client, portal, connector.json(), bot.json(), command.json())


@pytest.fixture
async def tenants(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[tuple[Tenant, Tenant]]:
    async with admin_app(b24_runtime, http, clock) as url:
        await add_provider(b24_runtime, "Dify", "dify_chatflow", "http://127.0.0.1:9/v1")
        victim = await furnish(url, bitrix24.add_portal("victim.bitrix24.com"), http)
        attacker = await furnish(url, bitrix24.add_portal("attacker.bitrix24.com"), http)
        yield victim, attacker


async def test_another_tenants_things_can_be_neither_read_nor_changed(
    tenants: tuple[Tenant, Tenant], b24_runtime: Runtime
) -> None:
    victim, attacker = tenants
    their_bot = f"/b24/api/bots/{victim.bot['id']}"
    their_connector = f"/b24/api/connectors/{victim.connector['id']}"
    their_command = f"{their_bot}/commands/{victim.command['id']}"
    mine = attacker.bot["id"]
    calls_before = len(victim.portal.calls)
    audit_before = await audit_actions(b24_runtime, tenant_id=1)
    attempts = [
        ("GET", their_bot, None),
        ("PATCH", their_bot, {"name": "Owned"}),
        ("DELETE", their_bot, None),
        ("POST", f"{their_bot}/register", None),
        ("GET", f"{their_bot}/commands", None),
        ("POST", f"{their_bot}/commands", {"command": "x", "texts": [{"language": "en"}]}),
        ("GET", their_command, None),
        ("PATCH", their_command, {"hidden": True}),
        ("DELETE", their_command, None),
        ("GET", f"/b24/api/bots/{mine}/commands/{victim.command['id']}", None),
        ("DELETE", f"/b24/api/bots/{mine}/commands/{victim.command['id']}", None),
        ("GET", their_connector, None),
        ("PATCH", their_connector, {"name": "Owned"}),
        ("DELETE", their_connector, None),
        ("POST", f"{their_connector}/test", {}),
        ("POST", f"{their_bot}/test-chat", {"text": "hi"}),
        ("POST", f"{their_bot}/test-chat/restart", None),
        ("GET", f"{their_bot}/test-chat/{'0' * 32}", None),
        ("GET", f"/b24/ui/bots/{victim.bot['id']}", None),
        ("GET", f"/b24/ui/connectors/{victim.connector['id']}", None),
        ("GET", f"/b24/ui/bots/{victim.bot['id']}/commands/{victim.command['id']}", None),
    ]  # fmt: skip
    for method, path, body in attempts:
        response = await attacker.client.send(method, path, body)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert "Owned" not in response.text
        assert victim.portal.domain not in response.text

    stolen = await attacker.client.patch(
        f"/b24/api/bots/{mine}", {"connector_id": victim.connector["id"]}
    )
    assert stolen.json()["error"]["fields"] == {"connector_id": "Choose one of your connectors."}

    assert (await victim.client.get(their_bot)).json() == victim.bot
    assert (await victim.client.get(their_connector)).json() == victim.connector
    command = (await victim.client.get(their_command)).json()
    assert command == {k: v for k, v in victim.command.items() if k != "sync_error"}
    assert len(victim.portal.calls) == calls_before
    assert await audit_actions(b24_runtime, tenant_id=1) == audit_before
    listed = (await attacker.client.get("/b24/api/bots")).json()
    assert [bot["id"] for bot in listed] == [mine]
