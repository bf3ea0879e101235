"""Install, reinstall, uninstall, update and payment, end to end over HTTP against the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
import sqlalchemy as sa

from admin_ui import create_admin_app
from tenants.runtime import Runtime
from tenants.schema import bots, commands, connectors, credentials, providers, tenants, utcnow
from tenants.store import TenantStore
from tests.conftest import PUBLIC_URL, SteppedClock
from tests.fakes.bitrix24 import (
    FakeBitrix24,
    Portal,
    app_install,
    app_payment,
    app_uninstall,
    app_update,
    installer_frame,
    open_frame,
    send_event,
)
from tests.fakes.server import serve

LIFECYCLE = {"ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPPAYMENT"}


@pytest.fixture
async def admin_url(
    b24_runtime: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> AsyncIterator[str]:
    async with serve(create_admin_app(b24_runtime, http=http, clock=clock)) as url:
        yield url


def store(runtime: Runtime) -> TenantStore:
    return TenantStore(runtime.engine, runtime.vault, runtime.hasher)


async def install(admin_url: str, portal: Portal) -> httpx2.Response:
    response = await send_event(f"{admin_url}/b24/install", app_install(portal))
    assert response.status_code == 200, response.text
    return response


async def count(runtime: Runtime, table: sa.Table) -> int:
    async with runtime.engine.connect() as connection:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_install_event_stores_a_verified_tenant(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=True)
    await install(admin_url, portal)

    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert (tenant.status, tenant.domain, tenant.bot_api_version) == ("active", portal.domain, 2)
    assert tenant.client_endpoint == portal.client_endpoint
    tokens = await store(b24_runtime).tokens(tenant.id)
    assert tokens is not None
    assert tokens.refresh_token == portal.auth.refresh_token
    async with b24_runtime.engine.connect() as connection:
        raw = repr((await connection.execute(sa.select(credentials))).one())
    assert portal.auth.access_token not in raw
    assert portal.auth.refresh_token not in raw
    assert {(b.event, b.handler) for b in portal.bindings} == {
        (event, f"{PUBLIC_URL}/b24/app-events") for event in LIFECYCLE
    }
    assert await store(b24_runtime).authenticate(portal.member_id, portal.application_token)


async def test_portal_without_chatbots_2_uses_the_classic_api(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("old.bitrix24.com", v2=False)
    await install(admin_url, portal)
    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert tenant.bot_api_version == 1


async def test_installer_frame_finishes_the_install(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("frame.bitrix24.com")
    response = await open_frame(f"{admin_url}/b24/install", installer_frame(portal, lang="ru"))
    assert response.status_code == 200
    assert "BX24.installFinish()" in response.text
    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert tenant.language == "ru"


async def test_reinstall_is_idempotent(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    await install(admin_url, portal)
    assert await count(b24_runtime, tenants) == 1
    assert await count(b24_runtime, credentials) == 1
    assert len(portal.bindings) == 3
    assert len(portal.calls_of("event.bind")) == 3


async def test_token_of_another_portal_is_refused_and_touches_nothing(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    victim = bitrix24.add_portal("victim.bitrix24.com")
    attacker = bitrix24.add_portal("attacker.bitrix24.com")
    await install(admin_url, victim)
    before = await store(b24_runtime).tokens(1)

    forged = [
        (key, victim.member_id if key == "auth[member_id]" else value)
        for key, value in app_install(attacker)
    ]
    response = await send_event(f"{admin_url}/b24/install", forged)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the token belongs to another portal"
    assert await store(b24_runtime).tokens(1) == before
    assert await store(b24_runtime).authenticate(victim.member_id, victim.application_token)
    assert await count(b24_runtime, tenants) == 1


async def test_made_up_token_is_refused(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    forged = [
        (key, "not-a-real-token" if key == "auth[access_token]" else value)
        for key, value in app_install(portal)
    ]
    response = await send_event(f"{admin_url}/b24/install", forged)
    assert response.status_code == 401
    assert "not-a-real-token" not in response.text
    assert await count(b24_runtime, tenants) == 0


async def test_private_client_endpoint_is_refused(
    bitrix24: FakeBitrix24, b24_runtime: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    settings = b24_runtime.settings
    strict = Runtime(
        settings.__class__(**{**settings.__dict__, "allow_private_hosts": ()}),
        b24_runtime.engine,
        b24_runtime.redis,
        b24_runtime.vault,
        b24_runtime.hasher,
    )
    portal = bitrix24.add_portal("acme.bitrix24.com")
    async with serve(create_admin_app(strict, http=http, clock=clock)) as url:
        response = await send_event(f"{url}/b24/install", app_install(portal))
    assert response.status_code == 401
    assert "private or local address" in response.json()["error"]["message"]
    assert await count(b24_runtime, tenants) == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"\xff\xfe\x00garbage", 400, "the body is not UTF-8"),
        (b"event=ONAPPINSTALL&auth[member_id]=abc", 400, "auth[access_token] is missing"),
        (b"event=ONAPPINSTALL&auth=1&auth[x]=2", 400, "both a value and a group"),
        (b"a=" + b"x" * (1 << 20), 413, "larger than 1 MiB"),
    ],
)
async def test_malformed_install_bodies(
    admin_url: str, b24_runtime: Runtime, body: bytes, status: int, message: str
) -> None:
    response = await send_raw(f"{admin_url}/b24/install", body)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert await count(b24_runtime, tenants) == 0


async def send_raw(url: str, body: bytes) -> httpx2.Response:
    async with httpx2.AsyncClient() as client:
        return await client.post(
            url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )


async def test_unknown_lifecycle_event_is_a_400(admin_url: str) -> None:
    response = await send_raw(f"{admin_url}/b24/app-events", b"event=ONSOMETHINGELSE")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_event"


async def seed_configuration(runtime: Runtime, tenant_id: int) -> None:
    now = utcnow()
    stamps = {"created_at": now, "updated_at": now}
    async with runtime.engine.begin() as connection:
        await connection.execute(
            sa.insert(providers).values(
                id=1, name="Dify", type="dify_chatflow", base_url="https://api.dify.ai/v1", **stamps
            )
        )
        await connection.execute(
            sa.insert(connectors).values(
                id=1, tenant_id=tenant_id, provider_id=1, name="c", api_key=b"sealed", **stamps
            )
        )
        await connection.execute(
            sa.insert(bots).values(
                id=1,
                tenant_id=tenant_id,
                connector_id=1,
                name="Bot",
                code="bot",
                b24_bot_id=55,
                type="openline",
                api_version=2,
                registration_state="registered",
                **stamps,
            )
        )
        await connection.execute(
            sa.insert(commands).values(
                tenant_id=tenant_id,
                bot_id=1,
                command="help",
                texts=[{"language": "en", "title": "Help", "params": ""}],
                b24_command_id=7,
                **stamps,
            )
        )


async def test_uninstall_with_a_wrong_token_changes_nothing(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    forged = [
        (key, "wrong" if key == "auth[application_token]" else value)
        for key, value in app_uninstall(portal, clean=True)
    ]
    response = await send_event(f"{admin_url}/b24/app-events", forged)
    assert response.status_code == 401
    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert tenant.status == "active"
    assert await count(b24_runtime, credentials) == 1


async def test_uninstall_clean_deletes_configuration_secrets_and_sessions(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    other = bitrix24.add_portal("other.bitrix24.com")
    await install(admin_url, portal)
    await install(admin_url, other)
    await seed_configuration(b24_runtime, 1)
    await b24_runtime.redis.set(f"bitbot:{portal.member_id}:55:chat7", "conversation-1")
    await b24_runtime.redis.set(f"bitbot:{other.member_id}:9:chat1", "conversation-2")

    portal.uninstall()
    response = await send_event(f"{admin_url}/b24/app-events", app_uninstall(portal, clean=True))

    assert response.status_code == 200
    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert tenant.status == "uninstalled"
    for table in (credentials, connectors, bots, commands):
        async with b24_runtime.engine.connect() as connection:
            rows = await connection.scalar(
                sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == 1)
            )
        assert rows == 0, table.name
    assert await b24_runtime.redis.get(f"bitbot:{portal.member_id}:55:chat7") is None
    assert await b24_runtime.redis.get(f"bitbot:{other.member_id}:9:chat1") == b"conversation-2"
    assert await store(b24_runtime).authenticate(portal.member_id, portal.application_token) is None


async def test_uninstall_keeping_data_keeps_bots_for_reinstall(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    await seed_configuration(b24_runtime, 1)

    portal.uninstall()
    response = await send_event(f"{admin_url}/b24/app-events", app_uninstall(portal, clean=False))

    assert response.status_code == 200
    assert await count(b24_runtime, credentials) == 0
    async with b24_runtime.engine.connect() as connection:
        bot = (await connection.execute(sa.select(bots))).one()
        command = (await connection.execute(sa.select(commands))).one()
    assert (bot.b24_bot_id, bot.registration_state) == (None, "pending")
    assert command.b24_command_id is None

    portal.reinstall()
    await install(admin_url, portal)
    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert tenant.status == "active"
    async with b24_runtime.engine.connect() as connection:
        bot = (await connection.execute(sa.select(bots))).one()
        command = (await connection.execute(sa.select(commands))).one()
    (registered,) = portal.bots.values()
    assert (bot.b24_bot_id, bot.registration_state) == (registered.id, "registered")
    assert registered.code == "bot"
    assert registered.webhook_url == f"{PUBLIC_URL}/b24/events"
    (registered_command,) = portal.commands.values()
    assert command.b24_command_id == registered_command.id


async def test_update_replaces_the_application_token_and_binds_again(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    old_token = portal.application_token

    portal.update_app(2)
    response = await send_event(
        f"{admin_url}/b24/app-events", app_update(portal, previous_version=1)
    )

    assert response.status_code == 200, response.text
    assert await store(b24_runtime).authenticate(portal.member_id, portal.application_token)
    assert not await store(b24_runtime).authenticate(portal.member_id, old_token)
    assert {b.event for b in portal.bindings} == LIFECYCLE


async def test_update_with_an_unconfirmed_token_is_refused(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    old_token = portal.application_token
    portal.update_app(2)
    forged = [
        (key, "forged-access" if key == "auth[access_token]" else value)
        for key, value in app_update(portal, previous_version=1)
    ]
    response = await send_event(f"{admin_url}/b24/app-events", forged)
    assert response.status_code == 401
    assert await store(b24_runtime).authenticate(portal.member_id, old_token)


async def test_payment_rechecks_with_the_auth_server(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)

    portal.lapse_payment()
    clock.fake.advance(3601)  # the access token expired; the refresh is refused
    response = await send_event(f"{admin_url}/b24/app-events", app_payment(portal))
    assert response.status_code == 200
    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert (tenant.status, tenant.attention_reason) == ("needs_attention", "payment_required")


async def test_payment_after_renewal_clears_the_mark(
    admin_url: str, bitrix24: FakeBitrix24, b24_runtime: Runtime, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    await install(admin_url, portal)
    portal.lapse_payment()
    clock.fake.advance(3601)
    await send_event(f"{admin_url}/b24/app-events", app_payment(portal))

    portal.payment_expired = False  # the admin renewed
    await send_event(f"{admin_url}/b24/app-events", app_payment(portal))
    tenant = await store(b24_runtime).find(portal.member_id)
    assert tenant is not None
    assert (tenant.status, tenant.attention_reason) == ("active", None)


async def test_payment_for_an_unknown_portal_is_ignored(admin_url: str) -> None:
    response = await send_raw(
        f"{admin_url}/b24/app-events", b"event=ONAPPPAYMENT&auth[member_id]=nobody"
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
