"""API tokens for the operator JSON API.

A token is ``bbo_`` + 43 random URL-safe characters. It is shown once, at creation; the table
keeps only ``HMAC-SHA256(k, token)`` with ``k`` derived from ``BITBOT_HASH_KEY`` under its own
label, and looks a token up by that digest. A revoked token, or one whose operator was disabled
or deleted, authenticates nobody. ``last_used_at`` is written at most once a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.operator.audit import Actor, record
from admin_ui.operator.errors import InputError, NotFound
from admin_ui.operator.schema import operator_tokens
from tenants.clock import Clock
from tenants.schema import operators

PREFIX = "bbo_"
SHAPE = re.compile(r"bbo_[A-Za-z0-9_-]{43}")
_KEY_LABEL = b"bitbot operator api token v1"
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class ApiToken:
    id: int
    operator_id: int
    operator_email: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class TokenHolder:
    operator_id: int
    email: str
    token_id: int


class ApiTokens:
    def __init__(self, engine: AsyncEngine, hash_key: bytes, clock: Clock) -> None:
        self._engine = engine
        self._key = hmac.new(hash_key, _KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock

    def digest(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode(), hashlib.sha256).digest()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def create(self, actor: Actor, name: str) -> tuple[ApiToken, str]:
        """A new token for the acting operator; the plain token is returned only here."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InputError("name the token", {"name": "1 to 100 characters, e.g. 'billing sync'"})
        token = PREFIX + secrets.token_urlsafe(32)
        async with self._engine.begin() as connection:
            token_id = await connection.scalar(
                sa.insert(operator_tokens)
                .values(
                    operator_id=actor.operator_id,
                    name=name,
                    token_hash=self.digest(token),
                    created_at=self.now(),
                )
                .returning(operator_tokens.c.id)
            )
            await record(connection, actor, "token.create", name, details={"token": token_id})
        return await self._get(int(token_id)), token

    async def list(self) -> list[ApiToken]:
        async with self._engine.connect() as connection:
            rows = await connection.execute(_query().order_by(operator_tokens.c.id.desc()))
            return [ApiToken(**row._mapping) for row in rows]

    async def revoke(self, actor: Actor, token_id: int) -> ApiToken:
        async with self._engine.begin() as connection:
            revoked = await connection.scalar(
                sa.update(operator_tokens)
                .where(operator_tokens.c.id == token_id, operator_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.now())
                .returning(operator_tokens.c.name)
            )
            if revoked is not None:
                await record(
                    connection, actor, "token.revoke", revoked, details={"token": token_id}
                )
        return await self._get(token_id)

    async def holder(self, token: str) -> TokenHolder | None:
        """Who a bearer token speaks for; None when unknown, revoked, or its operator is off."""
        if not SHAPE.fullmatch(token):
            return None
        query = (
            sa.select(
                operator_tokens.c.id,
                operator_tokens.c.last_used_at,
                operators.c.id.label("operator_id"),
                operators.c.email,
            )
            .select_from(operator_tokens.join(operators))
            .where(
                operator_tokens.c.token_hash == self.digest(token),
                operator_tokens.c.revoked_at.is_(None),
                sa.not_(operators.c.disabled),
            )
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        now = self.now()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
            async with self._engine.begin() as connection:
                await connection.execute(
                    sa.update(operator_tokens)
                    .where(operator_tokens.c.id == row.id)
                    .values(last_used_at=now)
                )
        return TokenHolder(row.operator_id, row.email, row.id)

    async def _get(self, token_id: int) -> ApiToken:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(_query().where(operator_tokens.c.id == token_id))
            ).first()
        if row is None:
            raise NotFound(f"no API token has id {token_id}")
        return ApiToken(**row._mapping)


def _query() -> sa.Select[tuple[object, ...]]:
    return sa.select(
        operator_tokens.c.id,
        operator_tokens.c.operator_id,
        operators.c.email.label("operator_email"),
        operator_tokens.c.name,
        operator_tokens.c.created_at,
        operator_tokens.c.last_used_at,
        operator_tokens.c.revoked_at,
    ).select_from(operator_tokens.join(operators))
