"""Keyed hash of Bitrix24 application tokens: stored instead of the token, compared in
constant time."""

from __future__ import annotations

import hmac


class TokenHasher:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def digest(self, token: str) -> bytes:
        return hmac.digest(self._key, token.encode(), "sha256")  # the one-shot C path

    def matches(self, token: str, stored: bytes | None) -> bool:
        # Compare even when nothing is stored so that unknown and wrong tokens take the same time.
        return hmac.compare_digest(self.digest(token), stored or b"\0" * 32) and stored is not None
