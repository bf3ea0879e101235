"""Operator accounts for the console; passwords are kept as argon2 hashes only."""

from __future__ import annotations

import re

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.errors import BitBotError
from tenants.schema import operators, utcnow

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
MIN_PASSWORD_LENGTH = 12
password_hasher = PasswordHasher()


class OperatorError(BitBotError):
    pass


async def create_operator(engine: AsyncEngine, email: str, password: str) -> int:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise OperatorError("the e-mail address is not valid")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    now = utcnow()
    async with engine.begin() as connection:
        taken = await connection.scalar(sa.select(operators.c.id).where(operators.c.email == email))
        if taken is not None:
            raise OperatorError(f"an operator with e-mail {email} already exists")
        result = await connection.execute(
            sa.insert(operators)
            .values(
                email=email,
                password_hash=password_hasher.hash(password),
                created_at=now,
                updated_at=now,
            )
            .returning(operators.c.id)
        )
        operator_id: int = result.scalar_one()
        return operator_id
