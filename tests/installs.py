"""A fake portal installed into BitBot's tenant store, as the install handler would do it."""

from __future__ import annotations

from datetime import UTC, datetime

from tenants.store import Portal as PortalInstall
from tenants.store import Tenant, TenantStore, TokenPair
from tests.fakes.bitrix24 import Portal


async def install_portal(
    store: TenantStore, portal: Portal, now: float, installer_id: int | None = None
) -> Tenant:
    """Install ``portal`` with its current tokens, valid for an hour from ``now``; the installer
    is the portal's admin unless ``installer_id`` says otherwise."""
    return await store.install(
        PortalInstall(
            member_id=portal.member_id,
            domain=portal.domain,
            client_endpoint=portal.client_endpoint,
            server_endpoint=portal.server_endpoint,
            scope=portal.scope,
            application_token=portal.application_token,
        ),
        TokenPair(
            portal.auth.access_token,
            portal.auth.refresh_token,
            datetime.fromtimestamp(now + 3600, UTC),
            portal.admin.id if installer_id is None else installer_id,
        ),
    )
