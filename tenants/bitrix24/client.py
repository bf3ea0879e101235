"""One portal's REST client: ``{client_endpoint}{method}`` with the tenant's sealed OAuth tokens.

- ``expired_token``: refresh once and retry. Refreshes of one portal collapse into one across every
  process (a Redis lock, then a re-read: whoever comes second finds the new token), and the rotated
  refresh token is stored before the new access token is used.
- ``invalid_grant``, ``NOT_INSTALLED``, ``PORTAL_DELETED``, ``PAYMENT_REQUIRED`` mark the tenant
  instead of retrying forever.
- Every request first takes its place in the portal's shared leaky bucket; a 503/429 rate-limit
  answer (the request did not run) fills our bucket and is retried with backoff. Nothing else is
  retried: a send that may have run is never sent twice.
- A 302 means the portal was renamed: follow it once and store the new endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from redis.asyncio import Redis

from tenants.bitrix24.errors import (
    AuthError,
    Bitrix24Error,
    PaymentRequired,
    PortalGone,
    RateLimited,
    ReinstallRequired,
    ServerError,
    error_for,
)
from tenants.bitrix24.limiter import Budget, PortalLimiter
from tenants.bitrix24.oauth import OAuthServer
from tenants.bitrix24.phpform import encode
from tenants.bitrix24.transport import TIMEOUT, Posted, Transport
from tenants.clock import Clock
from tenants.metrics import BITRIX24_CALLS, RATE_LIMIT_HITS, TOKEN_REFRESHES
from tenants.netguard import HostGuard
from tenants.singleflight import SingleFlight
from tenants.store import Tenant, TenantStore, TenantUpdates, TokenPair

MAX_BATCH = 50
RATE_LIMIT_RETRIES = 6
REFRESH_LOCK_TIMEOUT_S = 30
ATTENTION = {ReinstallRequired: "reinstall_required", PaymentRequired: "payment_required"}


class _HiddenLinks(logging.Filter):
    """Download links carry a token: while one is fetched, httpx2's request log line shows
    ``[download link]`` in its place (the generic scrub rules need not know its layout)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            record.args = tuple(
                "[download link]" if str(arg) in self.urls else arg for arg in record.args
            )
        return True


_HIDDEN_LINKS = _HiddenLinks()
logging.getLogger("httpx2").addFilter(_HIDDEN_LINKS)


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Services:
    """What every portal client of a process shares: REST calls go through ``transport``, the
    rest (file downloads, OAuth) through ``http``."""

    http: httpx2.AsyncClient
    transport: Transport
    redis: Redis
    store: TenantStore
    updates: TenantUpdates
    oauth: OAuthServer
    limiter: PortalLimiter
    guard: HostGuard
    clock: Clock


class Bitrix24Client:
    def __init__(
        self,
        tenant: Tenant,
        services: Services,
        budget: Budget | None = None,
    ) -> None:
        self._tenant = tenant
        self._http = services.http
        self._transport = services.transport
        self._endpoint = tenant.client_endpoint
        self._s = services
        self.budget = budget or Budget()
        self._tokens: TokenPair | None = None
        # Many turns of one portal start at once: the first loads the tokens, the others wait.
        self._loading: SingleFlight[int, TokenPair | None] = SingleFlight()

    @property
    def member_id(self) -> str:
        return self._tenant.member_id

    @property
    def endpoint(self) -> str:
        """The portal's REST endpoint now (``https://x.bitrix24.com/rest/``)."""
        return self._endpoint

    @asynccontextmanager
    async def download(
        self, url: str, headers: Mapping[str, str]
    ) -> AsyncIterator[httpx2.Response]:
        """GET a link the portal handed out (a file's download URL) through this portal's pool,
        after the host guard, without following redirects; the body is read as it arrives.

        Such links carry a token: the errors raised here name neither the URL nor the token."""
        await self._s.guard.check(url)
        hidden = str(httpx2.URL(url))  # as httpx2 will print it
        _HIDDEN_LINKS.urls.add(hidden)
        try:
            async with self._http.stream(
                "GET", url, headers=headers, timeout=TIMEOUT, follow_redirects=False
            ) as response:
                yield response
        except httpx2.HTTPError as error:
            raise ServerError("UNREACHABLE", type(error).__name__) from None
        finally:
            _HIDDEN_LINKS.urls.discard(hidden)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        await self.reserve()
        return (await self.send_reserved(Call(method, params or {})))["result"]

    async def call_as(
        self, access_token: str, method: str, params: dict[str, Any] | None = None
    ) -> Any:
        """Call with another user's token (the admin who opened the app page); no refresh, since
        that token is the browser's, not ours."""
        await self.reserve()
        return (await self._post(Call(method, params or {}), access_token))["result"]

    async def try_reserve(self) -> bool:
        """Take the portal's budget only if there is room now (best-effort calls)."""
        return await self._s.limiter.acquire(self.member_id, self.budget, best_effort=True)

    async def batch(self, calls: list[Call], halt: bool = False) -> list[Any]:
        """Run up to 50 calls as one request; each item is a result or a Bitrix24Error."""
        await self.reserve()
        return await self.batch_reserved(calls, halt)

    async def reserve(self) -> None:
        """Wait for the portal's budget; the next send_reserved/batch_reserved spends it."""
        await self._s.limiter.acquire(self.member_id, self.budget)

    async def batch_reserved(self, calls: list[Call], halt: bool = False) -> list[Any]:
        if not 0 < len(calls) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} calls, got {len(calls)}")
        commands = {f"c{i}": f"{c.method}?{encode(c.params)}" for i, c in enumerate(calls)}
        body = await self.send_reserved(Call("batch", {"halt": int(halt), "cmd": commands}))
        return _batch_items(body.get("result"), len(calls))

    async def send_reserved(self, call: Call) -> dict[str, Any]:
        refreshed = False
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            if attempt:
                await self.reserve()
            tokens = await self._current_tokens()
            try:
                return await self._post(call, tokens.access_token)
            except AuthError as error:
                if error.code != "expired_token" or refreshed:
                    raise
                refreshed = True
                self._tokens = await self._refresh(tokens.access_token)
            except RateLimited:
                RATE_LIMIT_HITS.labels("bitrix24").inc()
                await self._s.limiter.penalize(self.member_id, self.budget)
                await self._s.clock.sleep(min(2.0**attempt * 0.5, 30.0))
        raise RateLimited("QUERY_LIMIT_EXCEEDED", f"{call.method} still limited after retries")

    async def access_token(self, stale: str | None = None) -> str:
        """A usable access token; pass the one that was just refused to get it refreshed."""
        tokens = await self._current_tokens()
        if stale is not None and tokens.access_token == stale:
            self._tokens = tokens = await self._refresh(stale)
        return tokens.access_token

    async def _current_tokens(self) -> TokenPair:
        if self._tokens is None:
            self._tokens = await self._loading.run(
                self._tenant.id, lambda: self._s.store.tokens(self._tenant.id)
            )
        if self._tokens is None:
            raise ReinstallRequired("NO_TOKENS", "the portal has no stored tokens")
        if self._tokens.expires_at.timestamp() <= self._s.clock.now():
            self._tokens = await self._refresh(self._tokens.access_token)
        return self._tokens

    async def _refresh(self, stale_access_token: str) -> TokenPair:
        lock = self._s.redis.lock(
            f"bitbot:b24:refresh:{self.member_id}",
            timeout=REFRESH_LOCK_TIMEOUT_S,
            blocking_timeout=REFRESH_LOCK_TIMEOUT_S + 5,
            sleep=0.02,
        )
        async with lock:
            current = await self._s.store.tokens(self._tenant.id)
            if current is None:
                raise ReinstallRequired("NO_TOKENS", "the portal has no stored tokens")
            if current.access_token != stale_access_token:
                return current  # another caller refreshed while we waited for the lock
            try:
                grant = await self._s.oauth.refresh(current.refresh_token)
            except Bitrix24Error as error:
                TOKEN_REFRESHES.labels(error.code).inc()
                await self._flag(error)
                raise
            TOKEN_REFRESHES.labels("ok").inc()
            fresh = TokenPair(
                grant.access_token, grant.refresh_token, grant.expires_at, current.user_id
            )
            await self._s.store.save_tokens(self._tenant.id, fresh)
            return fresh

    async def _post(self, call: Call, access_token: str) -> dict[str, Any]:
        payload = {**call.params, "auth": access_token}
        response = await self._request(self._endpoint + call.method, payload)
        if response.status in (301, 302, 307, 308):
            response = await self._follow_rename(response, call.method, payload)
        body = _json(response)
        if "error" in body:
            error = error_for(
                str(body["error"]), str(body.get("error_description", "")), response.status
            )
            BITRIX24_CALLS.labels(call.method, error.code).inc()
            await self._flag(error)
            raise error
        BITRIX24_CALLS.labels(call.method, "").inc()
        if response.status >= 500:
            raise ServerError("HTTP_ERROR", f"HTTP {response.status}", response.status)
        return body

    async def _request(self, url: str, payload: dict[str, Any]) -> Posted:
        await self._s.guard.check(url)
        return await self._transport.post_json(url, payload)

    async def _follow_rename(
        self, response: Posted, method: str, payload: dict[str, Any]
    ) -> Posted:
        target = urlsplit(response.location)
        if not response.location or not target.path.endswith(method):
            raise ServerError("BAD_REDIRECT", "the portal redirected somewhere unexpected", 302)
        endpoint = f"{target.scheme}://{target.netloc}{target.path[: -len(method)]}"
        response = await self._request(endpoint + method, payload)
        self._endpoint = endpoint
        await self._s.updates.moved(self._tenant.id, target.hostname or "", endpoint)
        return response

    async def _flag(self, error: Bitrix24Error) -> None:
        if isinstance(error, PortalGone):
            await self._s.updates.needs_attention(self._tenant.id, "portal_deleted")
        for family, reason in ATTENTION.items():
            if isinstance(error, family):
                await self._s.updates.needs_attention(self._tenant.id, reason)


def _json(response: Posted) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ServerError(
            "BAD_ANSWER", f"HTTP {response.status}, not JSON", response.status
        ) from None
    if not isinstance(body, dict):
        raise ServerError("BAD_ANSWER", "not a JSON object", response.status)
    return body


def _batch_items(result: Any, count: int) -> list[Any]:
    if not isinstance(result, dict):
        raise ServerError("BAD_ANSWER", "batch answered without a result")
    values, errors = result.get("result") or {}, result.get("result_error") or {}
    items: list[Any] = []
    for index in range(count):
        key = f"c{index}"
        error = errors.get(key) if isinstance(errors, dict) else None
        if error:
            items.append(
                error_for(str(error.get("error")), str(error.get("error_description", "")), 400)
            )
        elif isinstance(values, dict) and key in values:
            items.append(values[key])
        else:
            items.append(ServerError("NOT_RUN", "the batch stopped before this call"))
    return items
