"""What the portal UI tests share: the admin app served against the fakes, an installed tenant,
the app page opened as Bitrix24 opens it, and an API client that carries the session."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import sqlalchemy as sa

from admin_ui import create_admin_app
from admin_ui.portal import PortalOptions
from tenants.clock import Clock
from tenants.runtime import Runtime
from tenants.schema import audit_log, providers, utcnow
from tests.fakes.bitrix24 import Portal, TokenPair, app_install, installer_frame, open_frame
from tests.fakes.bitrix24 import send_event as send_bitrix24_event
from tests.fakes.server import serve

SESSION = re.compile(r'<meta name="bitbot-session" content="([^"]+)">')


@asynccontextmanager
async def admin_app(
    runtime: Runtime,
    http: httpx2.AsyncClient,
    clock: Clock,
    options: PortalOptions | None = None,
) -> AsyncIterator[str]:
    app = create_admin_app(runtime, http=http, clock=clock, portal=options or PortalOptions())
    async with serve(app) as url:
        yield url


async def install(admin_url: str, portal: Portal, client: httpx2.AsyncClient | None = None) -> None:
    response = await send_bitrix24_event(
        f"{admin_url}/b24/install", app_install(portal), client=client
    )
    assert response.status_code == 200, response.text


async def add_provider(runtime: Runtime, name: str, type: str, base_url: str) -> int:
    now = utcnow()
    async with runtime.engine.begin() as connection:
        provider_id = await connection.scalar(
            sa.insert(providers)
            .values(name=name, type=type, base_url=base_url, created_at=now, updated_at=now)
            .returning(providers.c.id)
        )
    return int(provider_id)


async def open_app(
    admin_url: str, portal: Portal, *, tokens: TokenPair | None = None, lang: str | None = None
) -> httpx2.Response:
    return await open_frame(
        f"{admin_url}/b24/app", installer_frame(portal, tokens=tokens, lang=lang)
    )


def session_token(page: httpx2.Response) -> str:
    found = SESSION.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


@dataclass
class PortalClient:
    """The page's script, as far as the server can tell: same-origin calls with the header."""

    url: str
    token: str
    http: httpx2.AsyncClient

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"X-BitBot-Session": self.token, "Sec-Fetch-Site": "same-origin", **(extra or {})}

    async def get(self, path: str, **params: Any) -> httpx2.Response:
        return await self.http.get(self.url + path, headers=self._headers(), params=params)

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        return await self.http.request(
            method, self.url + path, json=body, headers=self._headers(headers)
        )

    async def post(self, path: str, body: Any = None) -> httpx2.Response:
        return await self.send("POST", path, body)

    async def patch(self, path: str, body: Any) -> httpx2.Response:
        return await self.send("PATCH", path, body)

    async def delete(self, path: str) -> httpx2.Response:
        return await self.send("DELETE", path)


async def signed_in(
    admin_url: str, portal: Portal, http: httpx2.AsyncClient, **options: Any
) -> PortalClient:
    page = await open_app(admin_url, portal, **options)
    assert page.status_code == 200, page.text
    return PortalClient(admin_url, session_token(page), http)


async def audit_actions(runtime: Runtime, tenant_id: int = 1) -> list[tuple[str, str, str]]:
    async with runtime.engine.connect() as connection:
        rows = await connection.execute(
            sa.select(audit_log.c.actor_type, audit_log.c.action, audit_log.c.target)
            .where(audit_log.c.tenant_id == tenant_id)
            .order_by(audit_log.c.id)
        )
        return [(row.actor_type, row.action, row.target) for row in rows]
