"""The Bitrix24 side: OAuth, the per-portal REST client, its limiter and batching, event forms."""

from __future__ import annotations

import httpx2

from tenants.bitrix24.client import Bitrix24Client, Call, Services
from tenants.bitrix24.coalescer import Coalescer
from tenants.bitrix24.errors import (
    AuthError,
    Bitrix24Error,
    MethodError,
    MethodNotFound,
    PaymentRequired,
    PortalGone,
    RateLimited,
    ReinstallRequired,
    ScopeError,
    ServerError,
)
from tenants.bitrix24.limiter import Budget, PortalLimiter
from tenants.bitrix24.oauth import Grant, Installation, OAuthServer
from tenants.bitrix24.transport import HttpxTransport, PooledTransport, Transport
from tenants.clock import Clock, SystemClock
from tenants.netguard import HostGuard
from tenants.runtime import Runtime
from tenants.store import TenantStore, TenantUpdates


def build_services(
    runtime: Runtime,
    http: httpx2.AsyncClient,
    clock: Clock | None = None,
    transport: Transport | None = None,
) -> Services:
    """REST calls go through ``transport``, by default over ``http`` too.

    Without app credentials (the embedded run before it is registered with Bitrix24) token
    refreshes are refused by the auth server; every other part works."""
    settings = runtime.settings
    clock = clock or SystemClock()
    return Services(
        http=http,
        transport=transport or HttpxTransport(http),
        redis=runtime.redis,
        store=TenantStore(runtime.engine, runtime.vault, runtime.hasher),
        updates=TenantUpdates(runtime.engine),
        oauth=OAuthServer(
            http,
            settings.b24_oauth_url,
            settings.b24_client_id or "",
            settings.b24_client_secret or "",
            clock,
        ),
        limiter=PortalLimiter(runtime.redis, clock),
        guard=HostGuard(settings.allow_private_hosts),
        clock=clock,
    )


__all__ = [
    "AuthError",
    "Bitrix24Client",
    "Bitrix24Error",
    "Budget",
    "Call",
    "Coalescer",
    "Grant",
    "Installation",
    "MethodError",
    "MethodNotFound",
    "OAuthServer",
    "PaymentRequired",
    "PooledTransport",
    "PortalGone",
    "PortalLimiter",
    "RateLimited",
    "ReinstallRequired",
    "ScopeError",
    "ServerError",
    "Services",
    "Transport",
    "build_services",
]
