"""The JSON API as automation uses it: shapes, partial updates, errors, language, audit, pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa

from admin_ui.portal.i18n import CATALOGS, Translator, language_for
from tenants.runtime import Runtime
from tenants.schema import audit_log
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.portal_kit import PortalClient, add_provider, admin_app, install, open_app, signed_in

PAGES = (
    "/b24/ui/bots",
    "/b24/ui/bots/new",
    "/b24/ui/bots/1",
    "/b24/ui/bots/1/commands/new",
    "/b24/ui/bots/1/commands/1",
    "/b24/ui/connectors",
    "/b24/ui/connectors/new",
    "/b24/ui/connectors/1",
)


@dataclass
class World:
    url: str
    client: PortalClient
    portal: Portal
    runtime: Runtime
    http: httpx2.AsyncClient


@pytest.fixture
async def world(
    b24_runtime: Runtime, bitrix24: FakeBitrix24, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[World]:
    async with admin_app(b24_runtime, http, clock) as url:
        portal = bitrix24.add_portal("acme.bitrix24.com")
        await install(url, portal)
        await add_provider(b24_runtime, "Dify cloud", "dify_chatflow", "http://127.0.0.1:9/v1")
        client = await signed_in(url, portal, http)
        yield World(url, client, portal, b24_runtime, http)


async def furnish(world: World) -> None:
    connector = await world.client.post(
        "/b24/api/connectors", {"name": "Flow", "provider_id": 1, "api_key": "app-1"}
    )
    bot = await world.client.post(
        "/b24/api/bots",
        {"name": "Helper", "type": "openline", "event_mode": "webhook",
         "connector_id": connector.json()["id"], "batch_delay_ms": 0, "session_ttl_s": 86400},
    )  # fmt: skip
    await world.client.post(
        f"/b24/api/bots/{bot.json()['id']}/commands",
        {"command": "help", "texts": [{"language": "en", "title": "Help"}]},
    )


async def test_session_and_providers(world: World) -> None:
    session = (await world.client.get("/b24/api/session")).json()
    assert session["tenant"] == {"domain": "acme.bitrix24.com", "status": "active",
                                 "bot_api_version": 2}  # fmt: skip
    assert session["user"] == {"id": world.portal.admin.id, "admin": True, "language": "en"}
    providers = (await world.client.get("/b24/api/providers")).json()
    assert providers == [
        {
            "id": 1,
            "name": "Dify cloud",
            "type": "dify_chatflow",
            "base_url": "http://127.0.0.1:9/v1",
        }
    ]


async def test_a_patch_changes_only_what_it_names(world: World) -> None:
    await furnish(world)
    before = (await world.client.get("/b24/api/bots/1")).json()
    after = (await world.client.patch("/b24/api/bots/1", {"batch_delay_ms": 1500})).json()
    assert after == before | {"batch_delay_ms": 1500}


async def test_malformed_bodies_are_json_errors(world: World) -> None:
    not_json = await world.client.http.post(
        f"{world.url}/b24/api/connectors",
        content=b"{nope",
        headers={"X-BitBot-Session": world.client.token, "Content-Type": "application/json"},
    )
    a_list = await world.client.post("/b24/api/connectors", ["a"])
    huge = await world.client.post("/b24/api/connectors", {"name": "x" * 300_000})
    for response, status, code in ((not_json, 400, "bad_request"), (a_list, 400, "bad_request"),
                                   (huge, 413, "too_large")):  # fmt: skip
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert set(response.json()["error"]) == {"code", "message", "fields"}


async def test_missing_things_are_404_in_the_same_shape(world: World) -> None:
    for path in ("/b24/api/bots/42", "/b24/api/connectors/42", "/b24/api/bots/42/commands"):
        response = await world.client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_errors_are_worded_in_the_viewers_language(world: World) -> None:
    russian = await signed_in(world.url, world.portal, world.http, lang="ru")
    response = await russian.post("/b24/api/connectors", {"name": "", "provider_id": 1})
    error = response.json()["error"]
    assert error["message"] == "Проверьте отмеченные поля."
    assert error["fields"] == {
        "name": "Обязательное поле.",
        "api_key": "Для Dify нужен API-ключ приложения.",
    }


async def test_every_change_is_audited_as_the_portal_user(world: World) -> None:
    await furnish(world)
    await world.client.patch("/b24/api/bots/1", {"name": "Renamed"})
    await world.client.post("/b24/api/bots/1/register")
    await world.client.patch("/b24/api/bots/1/commands/1", {"hidden": True})
    await world.client.patch("/b24/api/connectors/1", {"name": "Flow 2"})
    await world.client.delete("/b24/api/bots/1/commands/1")
    await world.client.delete("/b24/api/bots/1")
    await world.client.delete("/b24/api/connectors/1")
    async with world.runtime.engine.connect() as connection:
        rows = (await connection.execute(sa.select(audit_log).order_by(audit_log.c.id))).all()
    assert [row.action for row in rows] == [
        "connector.create", "bot.create", "command.create", "bot.update", "bot.register",
        "command.update", "connector.update", "command.delete", "bot.delete", "connector.delete",
    ]  # fmt: skip
    assert {(row.actor_type, row.actor_id, row.tenant_id) for row in rows} == {
        ("portal_user", str(world.portal.admin.id), 1)
    }
    assert "app-1" not in repr(rows)
    assert rows[3].details["changed"] == ["name"]


async def test_every_page_renders_inside_the_portals_frame_only(world: World) -> None:
    await furnish(world)
    for path in PAGES:
        page = await world.client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors https://acme.bitrix24.com" in csp
        assert "script-src 'self'" in csp
        assert "<script>" not in page.text  # no inline script: the policy would block it
    missing = await world.client.get("/b24/ui/bots/99")
    assert missing.status_code == 404
    assert "No such bot." in missing.text


async def test_the_read_only_view_has_no_working_forms(world: World) -> None:
    await furnish(world)
    bob = world.portal.add_user("Bob")
    page = await open_app(world.url, world.portal, tokens=world.portal.issue_tokens(bob.id))
    viewer = PortalClient(world.url, re.findall(r'content="(v1\.[^"]+)"', page.text)[0], world.http)
    bot_page = await viewer.get("/b24/ui/bots/1")
    assert "<fieldset disabled>" in bot_page.text
    assert "data-chat" not in bot_page.text
    assert "Delete bot" not in bot_page.text


def test_the_catalogs_have_the_same_keys_and_placeholders() -> None:
    english, russian = CATALOGS["en"], CATALOGS["ru"]
    assert set(english) == set(russian)
    for key, text in english.items():
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", russian[key])), key


def test_russian_speaking_portals_get_russian() -> None:
    assert [language_for(code) for code in ("ru", "by", "kz", "en", "de", "", None)] == [
        "ru", "ru", "ru", "en", "en", "en", "en",
    ]  # fmt: skip
    assert Translator("ru")("field.too_long", limit=5) == "Не длиннее 5 символов."  # noqa: RUF001
    assert Translator("xx")("nav.bots") == "Bots"


def test_every_key_the_templates_and_services_use_is_in_the_catalog() -> None:
    root = Path(__file__).parent.parent / "admin_ui"
    used = set()
    for path in (root / "templates" / "portal").glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_.]+[a-z_])'", path.read_text()))
    for path in (root / "portal").glob("*.py"):
        used |= set(re.findall(r'Message\(\s*"([a-z_.]+)"', path.read_text()))
        used |= set(re.findall(r'fail\(\s*"?\w*"?,?\s*"([a-z_]+\.[a-z_.]+)"', path.read_text()))
    assert len(used) > 100
    assert used - set(CATALOGS["en"]) == set()
