"""What the operator console tests share: the admin app on loopback, an operator account, a
client that signs in and posts forms as the console's own pages do, tenants and dead letters."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import sqlalchemy as sa

from admin_ui import create_admin_app, create_operator
from admin_ui.portal import PortalOptions
from tenants.clock import Clock
from tenants.queue import Queue
from tenants.runtime import Runtime
from tenants.schema import audit_log, bots, connectors, providers, utcnow
from tenants.store import Portal, TenantStore, TokenPair
from tests.fakes.server import serve

EMAIL = "ops@bitbot.example.com"
PASSWORD = "correct horse battery staple"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
COOKIE = re.compile(r"bitbot_operator=([^;]*)")


@asynccontextmanager
async def console_app(
    runtime: Runtime, http: httpx2.AsyncClient, clock: Clock
) -> AsyncIterator[str]:
    app = create_admin_app(runtime, http=http, clock=clock, portal=PortalOptions())
    async with serve(app) as url:
        yield url


@dataclass
class Operator:
    """A browser as far as the server can tell: same-origin form posts and the session cookie.

    The cookie is ``Secure`` and the test server speaks plain HTTP, so it is carried by hand.
    """

    url: str
    http: httpx2.AsyncClient
    cookie: str = ""
    set_cookies: list[str] = field(default_factory=list)

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(SAME_ORIGIN)
        if self.cookie:
            headers["Cookie"] = f"bitbot_operator={self.cookie}"
        return headers | (extra or {})

    async def get(self, path: str, **params: Any) -> httpx2.Response:
        return await self.http.get(self.url + path, params=params, headers=self._headers(None))

    async def post(
        self, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        response = await self.http.post(
            self.url + path, data=form or {}, headers=self._headers(headers)
        )
        self.set_cookies = response.headers.get_list("set-cookie")
        return response

    async def login(self, email: str = EMAIL, password: str = PASSWORD) -> httpx2.Response:
        response = await self.post("/operator/login", {"email": email, "password": password})
        for header in self.set_cookies:
            found = COOKIE.match(header)
            if found:
                self.cookie = found.group(1)
        return response


async def an_operator(runtime: Runtime, email: str = EMAIL, password: str = PASSWORD) -> int:
    return await create_operator(runtime.engine, email, password)


@asynccontextmanager
async def signed_in(
    runtime: Runtime, http: httpx2.AsyncClient, clock: Clock
) -> AsyncIterator[Operator]:
    await an_operator(runtime)
    async with console_app(runtime, http, clock) as url:
        operator = Operator(url, http)
        response = await operator.login()
        assert response.status_code == 303, response.text
        yield operator


async def a_tenant(runtime: Runtime, name: str, domain: str | None = None) -> int:
    store = TenantStore(runtime.engine, runtime.vault, runtime.hasher)
    portal = Portal(
        member_id=f"{name}-member",
        domain=domain or f"{name}.bitrix24.com",
        client_endpoint=f"https://{name}.bitrix24.com/rest/",
        server_endpoint="https://oauth.bitrix.info/rest/",
        scope="imbot,imopenlines,im,user,disk",
        application_token=f"{name}-app-token",
    )
    tenant = await store.install(portal, TokenPair("access", "refresh", utcnow(), 1))
    return tenant.id


async def a_provider(runtime: Runtime, name: str = "Dify cloud") -> int:
    now = utcnow()
    async with runtime.engine.begin() as connection:
        provider_id = await connection.scalar(
            sa.insert(providers)
            .values(
                name=name,
                type="dify_chatflow",
                base_url="https://api.dify.ai/v1",
                created_at=now,
                updated_at=now,
            )
            .returning(providers.c.id)
        )
    return int(provider_id)


async def a_bot(
    runtime: Runtime,
    tenant_id: int,
    provider_id: int,
    name: str = "Concierge",
    handoff_on_failure: bool = False,
    connector: str = "Support flow",
) -> int:
    now = utcnow()
    stamps = {"created_at": now, "updated_at": now}
    async with runtime.engine.begin() as connection:
        connector_id = await connection.scalar(
            sa.insert(connectors)
            .values(tenant_id=tenant_id, provider_id=provider_id, name=connector, **stamps)
            .returning(connectors.c.id)
        )
        bot_id = await connection.scalar(
            sa.insert(bots)
            .values(
                tenant_id=tenant_id,
                connector_id=connector_id,
                name=name,
                code=name.lower(),
                type="openline",
                api_version=2,
                registration_state="failed",
                registration_error="Bitrix24 answered ACCESS_DENIED",
                handoff_on_failure=handoff_on_failure,
                **stamps,
            )
            .returning(bots.c.id)
        )
    return int(bot_id)


async def a_dead_letter(
    runtime: Runtime,
    tenant_id: int,
    member_id: str,
    reason: str = "provider: timeout",
    received_at: float = 1_767_225_600.0,
) -> str:
    queue = Queue(runtime.redis, runtime.vault, runtime.settings.queue_shards)
    await queue.ensure_groups()
    await queue.enqueue("b24", tenant_id, member_id, "event=ONIMBOTMESSAGEADD", received_at)
    shards = list(range(queue.shards))
    (delivery,) = await queue.read("test-worker", shards, count=10, block_ms=1)
    return await queue.dead_letter(delivery, reason, "ONIMBOTMESSAGEADD bot 7 dialog chat12")


async def audit_rows(runtime: Runtime, action: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(audit_log).order_by(audit_log.c.id)
    if action:
        query = query.where(audit_log.c.action == action)
    async with runtime.engine.connect() as connection:
        return [dict(row._mapping) for row in await connection.execute(query)]
