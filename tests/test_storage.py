"""Schema, migrations and sealed secrets on both storage configurations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tenants.errors import CorruptSecretError, SchemaError
from tenants.keyrotation import rotate
from tenants.migrate import current_revision, downgrade, head_revision, upgrade
from tenants.runtime import Runtime
from tenants.schema import connectors, credentials, providers, tenants, utcnow
from tenants.settings import SecretKey
from tenants.store import Portal, TenantStore, TokenPair
from tenants.vault import Vault, key_id_of, tenant_context

ACCESS = "access-token-4f1c2a9e7b"
REFRESH = "refresh-token-9d8e7f6a5b"
APP_TOKEN = "application-token-51856fef"
EXPIRES = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def portal(member_id: str = "a223c6b3710f85df22e9377d6c4f7553") -> Portal:
    return Portal(
        member_id=member_id,
        domain=f"{member_id[:6]}.bitrix24.com",
        client_endpoint=f"https://{member_id[:6]}.bitrix24.com/rest/",
        server_endpoint="https://oauth.bitrix.info/rest/",
        scope="imbot,imopenlines,im,user,disk",
        application_token=APP_TOKEN,
    )


def store_of(runtime: Runtime, vault: Vault | None = None) -> TenantStore:
    return TenantStore(runtime.engine, vault or runtime.vault, runtime.hasher)


async def test_migrating_twice_is_a_no_op(runtime: Runtime) -> None:
    await upgrade(runtime.engine)
    await upgrade(runtime.engine)
    assert await current_revision(runtime.engine) == head_revision()


async def test_older_schema_is_brought_forward(runtime: Runtime) -> None:
    await upgrade(runtime.engine)
    await downgrade(runtime.engine, "base")
    assert await current_revision(runtime.engine) is None
    await upgrade(runtime.engine)
    async with runtime.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    assert {"tenants", "credentials", "providers", "connectors", "bots", "commands"} <= set(names)
    assert {"audit_log", "operators"} <= set(names)


async def test_schema_from_a_newer_release_is_refused(migrated: Runtime) -> None:
    async with migrated.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match=r"'9999'.*newer BitBot"):
        await upgrade(migrated.engine)


async def test_install_stores_only_ciphertext_and_a_token_hash(migrated: Runtime) -> None:
    tenant = await store_of(migrated).install(portal(), TokenPair(ACCESS, REFRESH, EXPIRES, 1))
    async with migrated.engine.connect() as connection:
        raw_tenant = (await connection.execute(sa.select(tenants))).one()
        raw_credentials = (await connection.execute(sa.select(credentials))).one()
    raw = repr(tuple(raw_tenant)) + repr(tuple(raw_credentials))
    for secret in (ACCESS, REFRESH, APP_TOKEN):
        assert secret not in raw
    assert raw_tenant.application_token_hash == migrated.hasher.digest(APP_TOKEN)
    assert key_id_of(raw_credentials.access_token)[0] == "a"
    assert tenant.status == "active"
    tokens = await store_of(migrated).tokens(tenant.id)
    assert tokens == TokenPair(ACCESS, REFRESH, EXPIRES, 1)


async def test_reinstall_is_idempotent(migrated: Runtime) -> None:
    store = store_of(migrated)
    first = await store.install(portal(), TokenPair(ACCESS, REFRESH, EXPIRES))
    again = await store.install(portal(), TokenPair("new-access", "new-refresh", EXPIRES))
    assert again.id == first.id
    async with migrated.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(tenants)) == 1
        assert await connection.scalar(sa.select(sa.func.count()).select_from(credentials)) == 1
    tokens = await store.tokens(first.id)
    assert tokens is not None
    assert tokens.refresh_token == "new-refresh"


async def test_application_token_is_checked(migrated: Runtime) -> None:
    store = store_of(migrated)
    tenant = await store.install(portal(), TokenPair(ACCESS, REFRESH, EXPIRES))
    authenticated = await store.authenticate(tenant.member_id, APP_TOKEN)
    assert authenticated is not None
    assert authenticated.id == tenant.id
    assert await store.authenticate(tenant.member_id, APP_TOKEN + "x") is None
    assert await store.authenticate("unknown-member", APP_TOKEN) is None


async def test_token_copied_to_another_tenant_does_not_decrypt(migrated: Runtime) -> None:
    store = store_of(migrated)
    first = await store.install(portal("a" * 32), TokenPair(ACCESS, REFRESH, EXPIRES))
    second = await store.install(portal("b" * 32), TokenPair("b-access", "b-refresh", EXPIRES))
    async with migrated.engine.begin() as connection:
        stolen = await connection.scalar(
            sa.select(credentials.c.access_token).where(credentials.c.tenant_id == first.id)
        )
        await connection.execute(
            sa.update(credentials)
            .where(credentials.c.tenant_id == second.id)
            .values(access_token=stolen)
        )
    with pytest.raises(CorruptSecretError) as raised:
        await store.tokens(second.id)
    assert ACCESS not in str(raised.value)


async def test_deleting_a_tenant_removes_its_secrets(migrated: Runtime) -> None:
    tenant = await store_of(migrated).install(portal(), TokenPair(ACCESS, REFRESH, EXPIRES))
    async with migrated.engine.begin() as connection:
        await connection.execute(sa.delete(tenants).where(tenants.c.id == tenant.id))
        assert await connection.scalar(sa.select(sa.func.count()).select_from(credentials)) == 0


async def test_timestamps_come_back_in_utc(migrated: Runtime) -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=3)))
    tenant = await store_of(migrated).install(portal(), TokenPair(ACCESS, REFRESH, local))
    tokens = await store_of(migrated).tokens(tenant.id)
    assert tokens is not None
    assert tokens.expires_at == local
    assert tokens.expires_at.utcoffset() == timedelta(0)


async def test_rotation_reencrypts_every_secret_to_the_new_key(migrated: Runtime) -> None:
    store = store_of(migrated)
    sealed_ids = []
    for letter in "abc":
        tenant = await store.install(portal(letter * 32), TokenPair(ACCESS, REFRESH, EXPIRES))
        sealed_ids.append(tenant.id)
    await _add_connector(migrated, sealed_ids[0], "dify-key-123")

    new_vault = Vault([SecretKey("b", b"B" * 32), migrated.settings.secret_keys[0]])
    seen: list[tuple[int, int]] = []
    report = await rotate(
        migrated.engine, new_vault, lambda done, total: seen.append((done, total))
    )

    assert (report.examined, report.rotated) == (7, 7)
    assert seen[0] == (0, 7)
    assert seen[-1] == (7, 7)
    only_new = Vault([SecretKey("b", b"B" * 32)])
    for tenant_id in sealed_ids:
        tokens = await store_of(migrated, only_new).tokens(tenant_id)
        assert tokens is not None
        assert tokens.refresh_token == REFRESH
    async with migrated.engine.connect() as connection:
        api_key = await connection.scalar(sa.select(connectors.c.api_key))
    assert isinstance(api_key, bytes)
    context = tenant_context(sealed_ids[0], "connectors", "api_key")
    assert only_new.open(api_key, context) == "dify-key-123"

    again = await rotate(migrated.engine, new_vault, lambda done, total: None)
    assert again.rotated == 0


async def _add_connector(runtime: Runtime, tenant_id: int, api_key: str) -> None:
    now = utcnow()
    async with runtime.engine.begin() as connection:
        provider_id = await connection.scalar(
            sa.insert(providers)
            .values(
                name="Dify Cloud",
                type="dify_chatflow",
                base_url="https://api.dify.ai/v1",
                created_at=now,
                updated_at=now,
            )
            .returning(providers.c.id)
        )
        await connection.execute(
            sa.insert(connectors).values(
                tenant_id=tenant_id,
                provider_id=provider_id,
                name="support",
                api_key=runtime.vault.seal(
                    api_key, tenant_context(tenant_id, "connectors", "api_key")
                ),
                created_at=now,
                updated_at=now,
            )
        )
