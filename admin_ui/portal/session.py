"""The portal session: a signed, self-contained token for one Bitrix24 user of one tenant.

The app page lives in a cross-site iframe, where third-party cookies may be blocked, so the token
travels two ways: as a ``Partitioned; SameSite=None; Secure; HttpOnly`` cookie, and in the page,
whose script sends it back in the ``X-BitBot-Session`` header; the header wins over the cookie.
The token is ``v1.{payload}.{mac}``: base64url JSON and an HMAC-SHA256 under a key derived from
``BITBOT_HASH_KEY``, so nothing about a session is stored server-side.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tenants.clock import Clock

HEADER = "X-BitBot-Session"
COOKIE = "bitbot_portal"
COOKIE_PATH = "/b24/"
SESSION_TTL_S = 3600
_PREFIX = "v1"
_KEY_LABEL = b"portal-session"


class SessionError(Exception):
    """The request carries no usable session; ``code`` says why (for the JSON error)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class PortalSession:
    tenant_id: int
    member_id: str
    user_id: int
    admin: bool
    language: str
    first_name: str
    last_name: str
    expires_at: int


class SessionSigner:
    def __init__(self, hash_key: bytes, clock: Clock, ttl_s: int = SESSION_TTL_S) -> None:
        self._key = hmac.new(hash_key, _KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock
        self.ttl_s = ttl_s

    def expiry(self) -> int:
        return int(self._clock.now()) + self.ttl_s

    def issue(self, session: PortalSession) -> str:
        body = json.dumps(asdict(session), separators=(",", ":"), ensure_ascii=False)
        payload = _b64(body.encode())
        return f"{_PREFIX}.{payload}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> PortalSession:
        prefix, _, rest = token.partition(".")
        payload, _, mac = rest.partition(".")
        if prefix != _PREFIX or not payload or not mac or len(token) > 2048:
            raise SessionError("bad_session")
        try:
            given = _unb64(mac)
            fields = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            raise SessionError("bad_session") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise SessionError("bad_session")
        session = _session(fields)
        if session.expires_at <= self._clock.now():
            raise SessionError("session_expired")
        return session

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).digest()


def token_of(request: Request) -> str:
    """The header's token, else the cookie's; SessionError when there is neither."""
    token = request.headers.get(HEADER) or request.cookies.get(COOKIE) or ""
    if not token:
        raise SessionError("no_session")
    return token


def set_cookie(response: Response, token: str, max_age: int) -> None:
    # Written by hand: Python 3.11's http.cookies cannot emit the Partitioned attribute.
    response.headers.append(
        "set-cookie",
        f"{COOKIE}={token}; Path={COOKIE_PATH}; Max-Age={max_age}; Secure; HttpOnly;"
        " SameSite=None; Partitioned",
    )


def _session(fields: Any) -> PortalSession:
    expected = PortalSession.__dataclass_fields__
    if not isinstance(fields, dict) or set(fields) != set(expected):
        raise SessionError("bad_session")
    try:
        session = PortalSession(**fields)
    except TypeError:
        raise SessionError("bad_session") from None
    types = (int, str, int, bool, str, str, str, int)
    pairs = zip(expected, types, strict=True)
    if not all(isinstance(getattr(session, name), kind) for name, kind in pairs):
        raise SessionError("bad_session")
    return session


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
