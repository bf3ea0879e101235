"""The operator session: a random id in a signed cookie, its record in Redis.

The cookie is ``v1.{sid}.{operator_id}.{expires_at}.{mac}``, an HMAC-SHA256 under a key derived
from ``BITBOT_HASH_KEY`` with its own label (so no other signed value of BitBot passes as one),
sent as ``SameSite=Strict; Secure; HttpOnly`` on ``/operator/`` only. The signature turns away
forged and altered cookies without a Redis call; the record ``bitbot:operator:session:{sid}``
makes logout final and carries the idle timer. A session ends after 8 hours, or after 30
minutes without a request, whichever comes first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from tenants.clock import Clock

COOKIE = "bitbot_operator"
COOKIE_PATH = "/operator/"
LIFETIME_S = 8 * 3600
IDLE_S = 30 * 60
TOUCH_EVERY_S = 60
RECORD = "bitbot:operator:session:"
_VERSION = "v1"
_KEY_LABEL = b"bitbot operator session v1"
_SHAPE = re.compile(r"v1\.[A-Za-z0-9_-]{32}\.\d{1,12}\.\d{1,12}\.[A-Za-z0-9_-]{43}")


class SessionError(Exception):
    """No usable session; ``code`` says why (``no_session``, ``bad_session``, ``expired``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class OperatorSession:
    sid: str
    operator_id: int
    expires_at: int


class OperatorSessions:
    def __init__(
        self,
        redis: Redis,
        hash_key: bytes,
        clock: Clock,
        lifetime_s: int = LIFETIME_S,
        idle_s: int = IDLE_S,
    ) -> None:
        self._redis: Any = redis
        self._key = hmac.new(hash_key, _KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock
        self.lifetime_s = lifetime_s
        self.idle_s = idle_s

    async def start(self, operator_id: int) -> str:
        """A new session; returns the cookie value."""
        now = int(self._clock.now())
        sid = secrets.token_urlsafe(24)
        body = f"{_VERSION}.{sid}.{operator_id}.{now + self.lifetime_s}"
        await self._redis.hset(RECORD + sid, mapping={"operator": operator_id, "seen": now})
        await self._redis.expire(RECORD + sid, self.lifetime_s)
        return f"{body}.{self._mac(body)}"

    async def resume(self, cookie: str) -> OperatorSession:
        session = self._verify(cookie)
        now = int(self._clock.now())
        if session.expires_at <= now:
            raise SessionError("expired")
        record = await self._redis.hgetall(RECORD + session.sid)
        if not record or int(record[b"operator"]) != session.operator_id:
            raise SessionError("expired")  # logged out, or gone with an embedded restart
        seen = int(record[b"seen"])
        if now - seen > self.idle_s:
            await self._redis.delete(RECORD + session.sid)
            raise SessionError("expired")
        if now - seen >= TOUCH_EVERY_S:
            await self._redis.hset(RECORD + session.sid, "seen", now)
        return session

    async def end(self, cookie: str) -> None:
        try:
            session = self._verify(cookie)
        except SessionError:
            return
        await self._redis.delete(RECORD + session.sid)

    def _verify(self, cookie: str) -> OperatorSession:
        if not _SHAPE.fullmatch(cookie):
            raise SessionError("bad_session")
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise SessionError("bad_session")
        _, sid, operator_id, expires_at = body.split(".")
        return OperatorSession(sid, int(operator_id), int(expires_at))

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def cookie_of(request: Request) -> str:
    cookie = request.cookies.get(COOKIE, "")
    if not cookie:
        raise SessionError("no_session")
    return cookie


def set_session_cookie(response: Response, cookie: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict")
