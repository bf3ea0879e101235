"""How a portal client's REST calls travel: a JSON POST and the answer, redirects not followed.

Two transports carry them:

- ``HttpxTransport`` over any httpx2 client: the portal pages, billing notices, the tests.
- ``PooledTransport``, the worker's: one aiohttp pool for every portal it answers. A turn's reply
  is one such call, and on this machine aiohttp spends 0.27-0.32 ms of CPU per call where httpx2
  spends 1.05-1.35 ms (docs/decisions.md §6), so one connection pool serves thousands of portals
  without httpcore's scan of every connection it holds.

Either way a call that never reached the portal, or whose answer was cut off, is
``ServerError("UNREACHABLE")`` naming only the kind of failure, never the URL (it carries no
token, but the portal's address is the tenant's business).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

import aiohttp
import httpx2

from tenants.bitrix24.errors import ServerError
from tenants.proxies import Proxies

TIMEOUT = httpx2.Timeout(connect=5.0, read=65.0, write=10.0, pool=10.0)
POOL_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=15.0, sock_connect=5.0, sock_read=65.0)
POOL_CONNECTIONS = 512  # portal calls are short; this bounds how many run at once
USER_AGENT = "BitBot"


@dataclass(frozen=True)
class Posted:
    status: int
    body: bytes = field(repr=False)
    location: str = ""  # where a redirect points, resolved against the request's URL

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json.loads(self.body)


class Transport(Protocol):
    async def post_json(self, url: str, payload: Mapping[str, Any]) -> Posted: ...


class HttpxTransport:
    def __init__(self, http: httpx2.AsyncClient) -> None:
        self._http = http

    async def post_json(self, url: str, payload: Mapping[str, Any]) -> Posted:
        try:
            response = await self._http.post(
                url, json=payload, timeout=TIMEOUT, follow_redirects=False
            )
        except httpx2.HTTPError as error:
            raise ServerError("UNREACHABLE", type(error).__name__) from None
        location = response.headers.get("location")
        target = str(response.url.join(location)) if location else ""
        return Posted(response.status_code, response.content, target)


class PooledTransport:
    """One aiohttp pool; it opens on the first call, inside the event loop that makes it."""

    def __init__(self, connections: int = POOL_CONNECTIONS) -> None:
        self._connections = connections
        self._proxies = Proxies()
        self._session: aiohttp.ClientSession | None = None

    async def post_json(self, url: str, payload: Mapping[str, Any]) -> Posted:
        session = self._session or self._open()
        try:
            async with session.post(
                url,
                json=payload,
                allow_redirects=False,
                timeout=POOL_TIMEOUT,
                proxy=self._proxies.for_url(url),
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ServerError("UNREACHABLE", type(error).__name__) from None
        location = response.headers.get("Location")
        return Posted(response.status, body, urljoin(url, location) if location else "")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._connections, ttl_dns_cache=60, enable_cleanup_closed=True
            ),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )
        return self._session
