"""The Bitrix24 authorization server: token refresh and the trusted ``app.info``.

Only the configured ``BITBOT_B24_OAUTH_URL`` is ever called here, never a host from a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2

from tenants.bitrix24.errors import Bitrix24Error, ServerError, error_for
from tenants.clock import Clock

TIMEOUT = httpx2.Timeout(10.0)


@dataclass(frozen=True)
class Grant:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    member_id: str
    client_endpoint: str
    scope: str
    user_id: int | None


@dataclass(frozen=True)
class Installation:
    """What the auth server vouches for about an access token."""

    client_id: str
    member_id: str
    domain: str
    client_endpoint: str
    scope: str
    status: str
    installed: bool
    user_id: int | None


class OAuthServer:
    def __init__(
        self,
        http: httpx2.AsyncClient,
        base_url: str,
        client_id: str,
        client_secret: str,
        clock: Clock,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._clock = clock

    @property
    def rest_endpoint(self) -> str:
        return f"{self._base}/rest/"

    async def refresh(self, refresh_token: str) -> Grant:
        params = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "refresh_token": refresh_token,
        }
        body = await self._get("/oauth/token/", params)
        if "access_token" not in body:
            raise ServerError("bad_grant", "the auth server answered without a token")
        return Grant(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_at=datetime.fromtimestamp(
                self._clock.now() + int(body.get("expires_in", 3600)), UTC
            ),
            member_id=str(body.get("member_id", "")),
            client_endpoint=str(body.get("client_endpoint", "")),
            scope=str(body.get("scope", "")),
            user_id=_int(body.get("user_id")),
        )

    async def app_info(self, access_token: str) -> Installation:
        body = await self._get("/rest/app.info", {"auth": access_token})
        result = body.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("install"), dict):
            raise ServerError("bad_app_info", "app.info answered without install data")
        install = result["install"]
        return Installation(
            client_id=str(result.get("client_id", "")),
            member_id=str(install.get("member_id", "")),
            domain=str(install.get("domain", "")),
            client_endpoint=str(install.get("client_endpoint", "")),
            scope=str(install.get("scope", result.get("scope", ""))),
            status=str(install.get("status", "")),
            installed=bool(install.get("installed")),
            user_id=_int(result.get("user_id")),
        )

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._http.get(self._base + path, params=params, timeout=TIMEOUT)
        except httpx2.HTTPError as error:
            raise ServerError("unreachable", f"auth server: {type(error).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise ServerError("bad_answer", f"auth server HTTP {response.status_code}") from None
        if not isinstance(body, dict):
            raise ServerError("bad_answer", "auth server answered with a non-object")
        if "error" in body:
            raise _oauth_error(body, response.status_code)
        return body


def _oauth_error(body: dict[str, Any], status: int) -> Bitrix24Error:
    return error_for(str(body["error"]), str(body.get("error_description", "")), status)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
