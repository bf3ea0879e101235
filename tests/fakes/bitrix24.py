"""A faithful local fake of the Bitrix24 cloud for tests: auth server plus any number of portals.

One Starlette app serves everything on one base URL (``cloud.base_url``, set by ``cloud.serve()``):

    {base}/oauth/token/                 auth server: refresh_token / authorization_code grants
    {base}/rest/app.info                auth server ``app.info`` (server_endpoint = {base}/rest/)
    {base}/{portal_domain}/rest/{method}  portal REST (client_endpoint = {base}/{domain}/rest/)

so many portals share one server and a client that builds URLs from ``client_endpoint`` and
``server_endpoint`` (as the reference says it must) works unchanged. ``DOMAIN`` and
``auth[domain]`` carry the portal domain (e.g. ``acme.bitrix24.com``); code that builds
``https://{DOMAIN}/rest/`` itself will not reach the fake, on purpose. A renamed portal's old domain
answers 302 to the new endpoint.

Usage::

    clock = FakeClock()
    cloud = FakeBitrix24(clock=clock)
    portal = cloud.add_portal("acme.bitrix24.com", v2=True)
    async with cloud.serve() as base_url:
        ...  # product code talks to portal.client_endpoint with portal.auth tokens
        await send_event(url, message_add(portal, bot, portal.private_chat(user), user, "hi"))
    assert [c.method for c in portal.calls] == ["imbot.message.add"]

Protocol source: shared/reference/bitrix24.md. Not emulated: HTTPS, inbound webhooks
(``/rest/{user}/{code}/``), ``$result[...]`` references inside ``batch``, method time accounting
(``OPERATION_TIME_LIMIT``: inject it with ``fail_next``), chat membership checks, and the public-URL
check on handler URLs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from tests.fakes.bitrix24_events import (
    FramePost,
    app_install,
    app_payment,
    app_uninstall,
    app_update,
    bot_delete,
    command_add,
    installer_frame,
    join_chat,
    message_add,
    open_frame,
    send_event,
)
from tests.fakes.bitrix24_events_v2 import (
    V2Event,
    bot_delete_v2,
    command_add_v2,
    enqueue_v2,
    join_chat_v2,
    message_add_v2,
    message_delete_v2,
    message_update_v2,
    webhook_v2,
)
from tests.fakes.bitrix24_model import (
    Bot,
    Chat,
    Command,
    IncomingFile,
    RestCall,
    SentMessage,
    TypingNotice,
    User,
)
from tests.fakes.bitrix24_oauth import AuthServer, TokenRequest
from tests.fakes.bitrix24_php import FormPairs, flatten, nest
from tests.fakes.bitrix24_portal import DEFAULT_SCOPES, AppContext, Portal
from tests.fakes.bitrix24_rest import portal_routes
from tests.fakes.bitrix24_tokens import TokenPair, TokenStore
from tests.fakes.clock import Clock, FakeClock
from tests.fakes.server import serve

__all__ = [
    "Bot",
    "Chat",
    "Command",
    "FakeBitrix24",
    "FakeClock",
    "FormPairs",
    "FramePost",
    "IncomingFile",
    "Portal",
    "RestCall",
    "SentMessage",
    "TokenPair",
    "TokenRequest",
    "TypingNotice",
    "User",
    "V2Event",
    "app_install",
    "app_payment",
    "app_uninstall",
    "app_update",
    "bot_delete",
    "bot_delete_v2",
    "command_add",
    "command_add_v2",
    "enqueue_v2",
    "flatten",
    "installer_frame",
    "join_chat",
    "join_chat_v2",
    "message_add",
    "message_add_v2",
    "message_delete_v2",
    "message_update_v2",
    "nest",
    "open_frame",
    "send_event",
    "webhook_v2",
]


DEFAULT_CLIENT_SECRET = "fake-client-secret"


class FakeBitrix24:
    """The Bitrix24 cloud as one app (``client_id``/``client_secret``) sees it."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        client_id: str = "local.6750a1b2c3d4e5.12345678",
        client_secret: str = DEFAULT_CLIENT_SECRET,
        app_code: str = "bitbot",
        base_url: str = "http://bitrix24.invalid",
    ) -> None:
        self.clock = clock
        self.client_id = client_id
        self.client_secret = client_secret
        self.base_url = base_url
        self._tokens = TokenStore(clock)
        self._portals: dict[str, Portal] = {}
        self._context = AppContext(clock, self._tokens, client_id, app_code, lambda: self.base_url)
        self.auth_server = AuthServer(
            tokens=self._tokens,
            clock=clock,
            client_id=client_id,
            client_secret=client_secret,
            find_member=self._portals.get,
            base_url=lambda: self.base_url,
        )
        self.app = Starlette(routes=[*self.auth_server.routes(), *portal_routes(self.find_portal)])

    @property
    def oauth_url(self) -> str:
        """Base of the auth server; the token endpoint is ``{oauth_url}/oauth/token/``."""
        return self.base_url

    @property
    def server_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def portals(self) -> list[Portal]:
        return list(self._portals.values())

    @property
    def token_requests(self) -> list[TokenRequest]:
        return self.auth_server.requests

    def add_portal(
        self,
        domain: str,
        *,
        member_id: str | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        v2: bool = True,
        enterprise: bool = False,
        status: str = "F",
        language: str = "en",
    ) -> Portal:
        """A portal with the app installed by its admin; ``portal.auth`` is the install pair."""
        if "." not in domain or "/" in domain or self.find_portal(domain) is not None:
            raise ValueError(f"not a free portal domain: {domain!r}")
        member_id = member_id or hashlib.sha256(domain.encode()).hexdigest()[:32]
        portal = Portal(
            self._context,
            domain=domain,
            member_id=member_id,
            scopes=tuple(scopes),
            v2=v2,
            enterprise=enterprise,
            status=status,
            language=language,
        )
        self._portals[member_id] = portal
        return portal

    def find_portal(self, domain: str) -> Portal | None:
        """The portal at this domain now, or the one that used to live there (renamed)."""
        current = next((p for p in self._portals.values() if p.domain == domain), None)
        return current or next(
            (p for p in self._portals.values() if domain in p.previous_domains), None
        )

    def portal(self, domain_or_member_id: str) -> Portal:
        portal = self._portals.get(domain_or_member_id) or self.find_portal(domain_or_member_id)
        if portal is None:
            raise KeyError(domain_or_member_id)
        return portal

    def fail_next_token(self, status: int, error: str, description: str = "") -> None:
        """The next ``/oauth/token/`` request answers this error."""
        self.auth_server.fail_next(status, error, description)

    @asynccontextmanager
    async def serve(self, port: int | None = None) -> AsyncIterator[str]:
        """Serve the cloud over real HTTP on loopback; endpoints use the real URL meanwhile."""
        async with serve(self.app, port) as base_url:
            self.base_url = base_url
            yield base_url
