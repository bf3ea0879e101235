"""The Marketplace lifecycle: install, uninstall, update and payment, as plain async code.

Trust (DESIGN §9): an install or update is believed only after the auth server's ``app.info``
confirms that its access token belongs to that ``member_id``; the portal's domain and REST endpoint
are taken from that answer, never from the request. Uninstall is trusted by the stored hash of the
application token. Payment carries no token and only triggers a re-check with the auth server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from billing import Subscriptions
from tenants.bitrix24 import (
    AuthError,
    Bitrix24Client,
    Bitrix24Error,
    Installation,
    MethodNotFound,
    PaymentRequired,
    Services,
)
from tenants.errors import BitBotError
from tenants.netguard import PrivateAddressError
from tenants.registration import Registrar
from tenants.schema import bots, commands, connectors, credentials, tenants, utcnow
from tenants.store import Portal, Tenant, TokenPair

LIFECYCLE_EVENTS = ("ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPPAYMENT")
SCOPES = ("imbot", "imopenlines", "im", "user", "disk")


class InstallRefused(BitBotError):
    """The request could not be verified; nothing was created or changed."""


@dataclass(frozen=True)
class InstallRequest:
    """An install as Bitrix24 sends it, from the installer frame or ``ONAPPINSTALL``."""

    member_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    application_token: str = field(repr=False)
    language: str | None = None


class Marketplace:
    def __init__(
        self,
        engine: AsyncEngine,
        services: Services,
        public_url: str | None,
        subscriptions: Subscriptions | None = None,
    ) -> None:
        self._engine = engine
        self._s = services
        self._public_url = public_url
        self._subscriptions = subscriptions or Subscriptions(engine, services.clock)

    async def install(self, request: InstallRequest) -> Tenant:
        installation = await self._verify(request.access_token, request.member_id)
        await self._check_endpoint(installation.client_endpoint)
        portal = Portal(
            member_id=request.member_id,
            domain=installation.domain,
            client_endpoint=installation.client_endpoint,
            server_endpoint=self._s.oauth.rest_endpoint,
            scope=installation.scope,
            application_token=request.application_token,
            app_status=installation.status or None,
            language=request.language,
        )
        tokens = TokenPair(
            request.access_token,
            request.refresh_token,
            datetime.fromtimestamp(self._s.clock.now() + request.expires_in, UTC),
            installation.user_id,
        )
        tenant = await self._s.store.install(portal, tokens)
        # A trial on first install; the verified token also says the licence is in order.
        await self._subscriptions.installed(tenant.id)
        client = Bitrix24Client(tenant, self._s)
        await self._detect_bot_api(client, tenant)
        await self.bind_lifecycle_events(client)
        # Bots kept from an uninstall without CLEAN were removed by Bitrix24: register them again.
        await Registrar(self._engine, self._require_public_url()).register_pending(
            client, tenant.id
        )
        return tenant

    async def update(self, request: InstallRequest) -> Tenant:
        """``ONAPPUPDATE``: a new application token, and the lifecycle events bound again."""
        if await self._s.store.find(request.member_id) is None:
            raise InstallRefused("the portal is not installed")
        return await self.install(request)

    async def uninstall(self, member_id: str, application_token: str, clean: bool) -> Tenant:
        tenant = await self._s.store.authenticate(member_id, application_token)
        if tenant is None:
            raise InstallRefused("unknown portal or wrong application token")
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.delete(credentials).where(credentials.c.tenant_id == tenant.id)
            )
            if clean:
                await connection.execute(
                    sa.delete(commands).where(commands.c.tenant_id == tenant.id)
                )
                await connection.execute(sa.delete(bots).where(bots.c.tenant_id == tenant.id))
                await connection.execute(
                    sa.delete(connectors).where(connectors.c.tenant_id == tenant.id)
                )
            else:
                # Bitrix24 removed the bots whatever CLEAN says; reinstall registers them again.
                await connection.execute(
                    sa.update(bots)
                    .where(bots.c.tenant_id == tenant.id)
                    .values(b24_bot_id=None, registration_state="pending", fetch_offset=None)
                )
                await connection.execute(
                    sa.update(commands)
                    .where(commands.c.tenant_id == tenant.id)
                    .values(b24_command_id=None)
                )
            now = utcnow()
            await connection.execute(
                sa.update(tenants)
                .where(tenants.c.id == tenant.id)
                .values(
                    status="uninstalled",
                    application_token_hash=None,
                    uninstalled_at=now,
                    updated_at=now,
                )
            )
        await self._forget_sessions(member_id)
        if clean:
            await self._subscriptions.cancel(tenant.id)  # usage rows stay for billing
        found = await self._s.store.find(member_id)
        assert found is not None
        return found

    async def payment(self, member_id: str) -> Tenant | None:
        """``ONAPPPAYMENT``: ask the auth server what the portal's licence really is."""
        tenant = await self._s.store.find(member_id)
        if tenant is None or tenant.status == "uninstalled":
            return None
        client = Bitrix24Client(tenant, self._s)
        try:
            token = await client.access_token()
            try:
                await self._s.oauth.app_info(token)
            except AuthError as error:
                if error.code != "expired_token":
                    raise
                await self._s.oauth.app_info(await client.access_token(stale=token))
        except PaymentRequired:
            # Billing reads this mark: the portal's Bitrix24 licence for the app lapsed.
            await self._s.updates.needs_attention(tenant.id, "payment_required")
            await self._subscriptions.payment_required(tenant.id)  # past due, then suspended
        else:
            await self._subscriptions.payment_ok(tenant.id)
            if tenant.attention_reason == "payment_required":
                await self._s.updates.resolved(tenant.id)
        return await self._s.store.find(member_id)

    def _require_public_url(self) -> str:
        if not self._public_url:
            raise InstallRefused("BITBOT_PUBLIC_URL is not set, so Bitrix24 cannot reach BitBot")
        return self._public_url

    async def bind_lifecycle_events(self, client: Bitrix24Client) -> None:
        handler = f"{self._require_public_url()}/b24/app-events"
        bound = await client.call("event.get")
        present = {
            str(item.get("event", "")).upper()
            for item in bound or []
            if isinstance(item, dict) and item.get("handler") == handler
        }
        for event in LIFECYCLE_EVENTS:
            if event not in present:
                await client.call("event.bind", {"event": event, "handler": handler})

    async def _verify(self, access_token: str, member_id: str) -> Installation:
        try:
            installation = await self._s.oauth.app_info(access_token)
        except (AuthError, MethodNotFound) as error:
            raise InstallRefused(
                f"the auth server does not accept the token ({error.code})"
            ) from None
        except Bitrix24Error as error:
            raise InstallRefused(
                f"the auth server could not confirm the install ({error.code})"
            ) from None
        if installation.member_id != member_id:
            raise InstallRefused("the token belongs to another portal")
        if installation.client_id and installation.client_id != self._s.oauth.client_id:
            raise InstallRefused("the token belongs to another application")
        return installation

    async def _check_endpoint(self, client_endpoint: str) -> None:
        try:
            await self._s.guard.check(client_endpoint)
        except PrivateAddressError as error:
            raise InstallRefused(f"the portal's REST endpoint is refused: {error}") from None

    async def _detect_bot_api(self, client: Bitrix24Client, tenant: Tenant) -> None:
        try:
            await client.call("imbot.v2.Revision.get")
            version = 2
        except MethodNotFound:
            version = 1
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(tenants).where(tenants.c.id == tenant.id).values(bot_api_version=version)
            )

    async def _forget_sessions(self, member_id: str) -> None:
        redis = self._s.redis
        async for key in redis.scan_iter(match=f"bitbot:{member_id}:*", count=500):
            await redis.delete(key)
