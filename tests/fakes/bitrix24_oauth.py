"""The fake auth server (``oauth.bitrix.info``): ``/oauth/token/`` and ``/rest/app.info``.

Reference: shared/reference/bitrix24.md §2.2, §2.3 and §2.6. HTTP statuses of auth-server errors
are not in DOCS; the fake uses what PYSDK observed (``invalid_*`` 400, ``NOT_INSTALLED`` 401) and
401 for ``PAYMENT_REQUIRED``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.bitrix24_model import Fault
from tests.fakes.bitrix24_portal import Portal
from tests.fakes.bitrix24_rest import read_params, time_block
from tests.fakes.bitrix24_tokens import Grant, TokenPair, TokenStore
from tests.fakes.clock import Clock

MemberFinder = Callable[[str], Portal | None]


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class TokenRequest:
    """One request to ``/oauth/token/`` as the auth server saw it."""

    grant_type: str
    member_id: str | None
    error: str | None
    at: float


class AuthServer:
    def __init__(
        self,
        *,
        tokens: TokenStore,
        clock: Clock,
        client_id: str,
        client_secret: str,
        find_member: MemberFinder,
        base_url: Callable[[], str],
    ) -> None:
        self._tokens = tokens
        self._clock = clock
        self._client_id = client_id
        self._client_secret = client_secret
        self._find_member = find_member
        self._base_url = base_url
        self._faults: list[Fault] = []
        self.requests: list[TokenRequest] = []

    def fail_next(self, status: int, error: str, description: str = "") -> None:
        """The next token request answers this error (e.g. ``200 wrong_client`` as PYSDK saw)."""
        self._faults.append(Fault("oauth/token", status, error, description or error, 1))

    def routes(self) -> list[Route]:
        return [
            Route("/oauth/token/", self._token_endpoint, methods=["GET", "POST"]),
            Route("/oauth/token", self._token_endpoint, methods=["GET", "POST"]),
            Route("/rest/{method:path}", self._rest_endpoint, methods=["GET", "POST"]),
        ]

    # -- /oauth/token/ ------------------------------------------------------------------------

    async def _token_endpoint(self, request: Request) -> Response:
        params = {k: v for k, v in (await read_params(request)).items() if isinstance(v, str)}
        grant_type = params.get("grant_type", "")
        try:
            pair, portal = self._grant(grant_type, params)
        except OAuthError as error:
            self.requests.append(TokenRequest(grant_type, None, error.error, self._clock()))
            body = {"error": error.error, "error_description": error.description}
            return JSONResponse(body, status_code=error.status)
        self.requests.append(TokenRequest(grant_type, portal.member_id, None, self._clock()))
        return JSONResponse(self._token_body(pair, portal))

    def _grant(self, grant_type: str, params: dict[str, str]) -> tuple[TokenPair, Portal]:
        if self._faults:
            fault = self._faults.pop(0)
            raise OAuthError(fault.status, fault.error, fault.description)
        if grant_type not in ("refresh_token", "authorization_code"):
            raise OAuthError(400, "invalid_request", "Unsupported grant_type")
        if (params.get("client_id"), params.get("client_secret")) != (
            self._client_id,
            self._client_secret,
        ):
            raise OAuthError(400, "invalid_client", "Invalid client credentials")
        if grant_type == "refresh_token":
            return self._refresh(params.get("refresh_token", ""))
        return self._redeem(params.get("code", ""))

    def _refresh(self, refresh_token: str) -> tuple[TokenPair, Portal]:
        if not refresh_token:
            raise OAuthError(400, "invalid_request", 'No "refresh_token" parameter found')
        portal = self._portal_for(self._tokens.refresh_grant(refresh_token))
        pair = self._tokens.rotate(refresh_token)
        portal.refresh_count += 1
        return pair, portal

    def _redeem(self, code: str) -> tuple[TokenPair, Portal]:
        if not code:
            raise OAuthError(400, "invalid_request", 'No "code" parameter found')
        portal = self._portal_for(self._tokens.code_grant(code))
        return self._tokens.redeem_code(code), portal

    def _portal_for(self, grant: Grant | None) -> Portal:
        portal = self._find_member(grant.member_id) if grant else None
        if portal is None or portal.deleted:
            raise OAuthError(400, "invalid_grant", "Invalid grant")
        if not portal.installed:
            raise OAuthError(401, "NOT_INSTALLED", "Application not installed")
        if portal.payment_expired:
            raise OAuthError(401, "PAYMENT_REQUIRED", "Payment required")
        return portal

    def _token_body(self, pair: TokenPair, portal: Portal) -> dict[str, Any]:
        return {
            "access_token": pair.access_token,
            "expires": pair.expires,
            "expires_in": pair.expires_in,
            "scope": pair.scope,
            # The auth server's own host, not the portal's (§2.2).
            "domain": urlsplit(self._base_url()).netloc,
            "server_endpoint": portal.server_endpoint,
            "status": portal.status,
            "client_endpoint": portal.client_endpoint,
            "member_id": portal.member_id,
            "user_id": pair.user_id,
            "refresh_token": pair.refresh_token,
        }

    # -- /rest/app.info (auth-server shape, §2.6) ----------------------------------------------

    async def _rest_endpoint(self, request: Request) -> Response:
        method = request.path_params["method"].rstrip("/").removesuffix(".json")
        if method.lower() != "app.info":
            body = {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
            return JSONResponse(body, status_code=404)
        params = await read_params(request)
        token = params.get("auth")
        try:
            result = self._app_info(token if isinstance(token, str) else "")
        except OAuthError as error:
            body = {"error": error.error, "error_description": error.description}
            return JSONResponse(body, status_code=error.status)
        return JSONResponse({"result": result, "time": time_block(self._clock())})

    def _app_info(self, token: str) -> dict[str, Any]:
        if not token:
            raise OAuthError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        grant = self._tokens.access_grant(token)
        portal = self._find_member(grant.member_id) if grant else None
        if grant is None or portal is None:
            # PYSDK: an unknown token of token-like shape gets ``invalid_client`` here.
            raise OAuthError(400, "invalid_client", "Invalid access token")
        if self._tokens.is_expired(grant):
            raise OAuthError(401, "expired_token", "The access token provided has expired.")
        if not portal.installed:
            raise OAuthError(401, "NOT_INSTALLED", "Application not installed")
        return self._app_info_body(grant, portal)

    def _app_info_body(self, grant: Grant, portal: Portal) -> dict[str, Any]:
        expires = datetime.fromtimestamp(grant.expires_at, UTC).isoformat(timespec="seconds")
        return {
            "client_id": self._client_id,
            "scope": grant.scope,
            "expires": expires,
            "user_id": grant.user_id,
            "install": {
                "installed": portal.install_finished,
                "version": portal.app_version,
                "status": portal.status,
                "scope": portal.scope,
                "domain": portal.domain,
                "uri": portal.uri,
                "client_endpoint": portal.client_endpoint,
                "member_id": portal.member_id,
                # Value set unknown (only the key is in PYSDK); the fake reports a cloud portal.
                "member_type": "PORTAL",
            },
        }
