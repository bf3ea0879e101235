"""OAuth token bookkeeping of the fake Bitrix24 auth server (shared/reference/bitrix24.md §2.1)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tests.fakes.clock import Clock

ACCESS_TOKEN_TTL = 3600
REFRESH_TOKEN_TTL = 180 * 24 * 3600
AUTH_CODE_TTL = 30


@dataclass(frozen=True)
class TokenPair:
    """An access token for one user plus the refresh token that continues its chain."""

    access_token: str
    refresh_token: str
    expires: int
    user_id: int
    member_id: str
    scope: str
    expires_in: int = ACCESS_TOKEN_TTL


@dataclass(frozen=True)
class Grant:
    """Whom a token speaks for, and until when."""

    member_id: str
    user_id: int
    scope: str
    expires_at: float


class TokenStore:
    """Issues, rotates and resolves tokens; all lifetimes run on the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}
        self._codes: dict[str, Grant] = {}

    def issue(self, member_id: str, user_id: int, scope: str) -> TokenPair:
        now = self._clock()
        access_token = _token()
        refresh_token = _token()
        self._access[access_token] = Grant(member_id, user_id, scope, now + ACCESS_TOKEN_TTL)
        self._refresh[refresh_token] = Grant(member_id, user_id, scope, now + REFRESH_TOKEN_TTL)
        return TokenPair(
            access_token=access_token,
            refresh_token=refresh_token,
            expires=int(now + ACCESS_TOKEN_TTL),
            user_id=user_id,
            member_id=member_id,
            scope=scope,
        )

    def refresh_grant(self, refresh_token: str) -> Grant | None:
        """The live grant behind a refresh token; ``None`` once rotated away or expired."""
        grant = self._refresh.get(refresh_token)
        if grant is None or self._clock() >= grant.expires_at:
            return None
        return grant

    def rotate(self, refresh_token: str) -> TokenPair:
        """Spend a refresh token: it never works again, the new pair continues the chain."""
        grant = self._refresh.pop(refresh_token)
        return self.issue(grant.member_id, grant.user_id, grant.scope)

    def access_grant(self, access_token: str) -> Grant | None:
        """The grant behind an access token, expired or not; ``None`` if it was never issued."""
        return self._access.get(access_token)

    def is_expired(self, grant: Grant) -> bool:
        return self._clock() >= grant.expires_at

    def expire_access_tokens(self, member_id: str) -> None:
        now = self._clock()
        for token, grant in list(self._access.items()):
            if grant.member_id == member_id:
                self._access[token] = Grant(grant.member_id, grant.user_id, grant.scope, now)

    def revoke_portal(self, member_id: str) -> None:
        """Uninstall: every token of the portal stops resolving."""
        for store in (self._access, self._refresh, self._codes):
            for token in [t for t, g in store.items() if g.member_id == member_id]:
                del store[token]

    def issue_code(self, member_id: str, user_id: int, scope: str) -> str:
        code = _token()
        self._codes[code] = Grant(member_id, user_id, scope, self._clock() + AUTH_CODE_TTL)
        return code

    def code_grant(self, code: str) -> Grant | None:
        grant = self._codes.get(code)
        if grant is None or self._clock() >= grant.expires_at:
            return None
        return grant

    def redeem_code(self, code: str) -> TokenPair:
        """Exchange an authorization code; it works once."""
        grant = self._codes.pop(code)
        return self.issue(grant.member_id, grant.user_id, grant.scope)


def _token() -> str:
    return secrets.token_hex(25)
