"""Who may sign in: argon2 passwords, an account lock after repeated failures, a per-address limit.

- Five wrong passwords in a row lock the account for 15 minutes. While locked, even the right
  password is refused; the lock is not extended by further tries, so it cannot be held forever.
- Every ``POST /operator/login`` counts against its client address in Redis
  (``bitbot:operator:login:{address}:{window}``, 30 per 5 minutes), which slows guessing across
  many accounts as well.
- The caller learns only "signed in" or "refused": an unknown e-mail runs the same argon2 check
  against a dummy hash, and the page shows one message for every refusal.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_ui.operators import password_hasher
from tenants.clock import Clock
from tenants.schema import operators

MAX_FAILURES = 5
LOCK = timedelta(minutes=15)
ADDRESS_WINDOW_S = 300
ADDRESS_ATTEMPTS = 30
_ATTEMPTS = "bitbot:operator:login:"


@dataclass(frozen=True)
class Operator:
    id: int
    email: str


@dataclass(frozen=True)
class SignIn:
    """The outcome: ``operator`` when admitted; ``known_id``/``locked`` are for the audit only."""

    operator: Operator | None
    known_id: int | None = None
    locked: bool = False


@functools.cache
def _dummy_hash() -> str:
    return password_hasher.hash("not the password of anyone")


def _matches(password_hash: str, password: str) -> bool:
    try:
        return password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class AddressThrottle:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self._redis: Any = redis
        self._clock = clock

    async def retry_after(self, address: str) -> int:
        """Count one attempt from ``address``; seconds to wait when over the limit, else 0."""
        now = self._clock.now()
        window = int(now // ADDRESS_WINDOW_S)
        key = f"{_ATTEMPTS}{address[:64]}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, ADDRESS_WINDOW_S * 2)
            count, _ = await pipe.execute()
        if int(count) <= ADDRESS_ATTEMPTS:
            return 0
        return max(1, int((window + 1) * ADDRESS_WINDOW_S - now))


class Accounts:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def sign_in(self, email: str, password: str) -> SignIn:
        email = email.strip().lower()[:254]
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(sa.select(operators).where(operators.c.email == email))
            ).first()
        stored = row.password_hash if row is not None else _dummy_hash()
        matched = await asyncio.to_thread(_matches, stored, password)
        if row is None:
            return SignIn(None)
        now = self.now()
        if row.disabled:
            return SignIn(None, row.id)
        if row.locked_until is not None and row.locked_until > now:
            return SignIn(None, row.id, locked=True)
        if not matched:
            return SignIn(None, row.id, locked=await self._failed(row.id, now))
        await self._admitted(row.id, row.password_hash, password)
        return SignIn(Operator(row.id, row.email), row.id)

    async def active(self, operator_id: int) -> Operator | None:
        """The operator behind a session or token, unless deleted or disabled since."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(operators.c.id, operators.c.email).where(
                        operators.c.id == operator_id, sa.not_(operators.c.disabled)
                    )
                )
            ).first()
        return None if row is None else Operator(row.id, row.email)

    async def _failed(self, operator_id: int, now: datetime) -> bool:
        """Count a wrong password; True when it locks the account."""
        async with self._engine.begin() as connection:
            failures = await connection.scalar(
                sa.update(operators)
                .where(operators.c.id == operator_id)
                .values(failed_logins=operators.c.failed_logins + 1, updated_at=now)
                .returning(operators.c.failed_logins)
            )
            if failures is None or failures < MAX_FAILURES:
                return False
            await connection.execute(
                sa.update(operators)
                .where(operators.c.id == operator_id)
                .values(failed_logins=0, locked_until=now + LOCK)
            )
            return True

    async def _admitted(self, operator_id: int, password_hash: str, password: str) -> None:
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
        if password_hasher.check_needs_rehash(password_hash):
            values["password_hash"] = await asyncio.to_thread(password_hasher.hash, password)
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(operators).where(operators.c.id == operator_id).values(**values)
            )
