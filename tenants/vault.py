"""The secrets vault: AES-256-GCM with a key id in the header and the value bound to its row.

Layout of a sealed value::

    version (1 byte) | kid length (1 byte) | kid (ASCII) | nonce (12 bytes) | ciphertext + tag

The associated data is ``{header}{context}`` where the context is ``tenant:{id}:{table}.{column}``;
a ciphertext copied to another tenant's row or another column fails authentication instead of
decrypting, and so does one whose header was edited.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenants.errors import CorruptSecretError, UnknownKeyError, VaultError
from tenants.settings import SECRET_KEY_BYTES, SecretKey

FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16


def tenant_context(tenant_id: int, table: str, column: str) -> str:
    return f"tenant:{tenant_id}:{table}.{column}"


def global_context(table: str, column: str) -> str:
    return f"global:{table}.{column}"


def generate_key(kid: str) -> str:
    """A new keyring entry in the ``kid:base64`` form ``BITBOT_SECRET_KEYS`` takes."""
    return f"{kid}:{base64.b64encode(os.urandom(SECRET_KEY_BYTES)).decode()}"


class Vault:
    def __init__(self, keys: Sequence[SecretKey]) -> None:
        if not keys:
            raise VaultError("the vault needs at least one key (BITBOT_SECRET_KEYS)")
        self._primary = keys[0]
        self._ciphers = {key.kid: AESGCM(key.material) for key in keys}

    @property
    def primary_kid(self) -> str:
        return self._primary.kid

    def seal(self, plaintext: str, context: str) -> bytes:
        header = _header(self._primary.kid)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._primary.kid].encrypt(
            nonce, plaintext.encode(), header + context.encode()
        )
        return header + nonce + sealed

    def open(self, sealed: bytes, context: str) -> str:
        kid, header_length = key_id_of(sealed)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UnknownKeyError(
                f"secret was sealed with key {kid!r}, which is not in the keyring"
            )
        nonce = sealed[header_length : header_length + NONCE_BYTES]
        body = sealed[header_length + NONCE_BYTES :]
        if len(body) < TAG_BYTES:
            raise CorruptSecretError(f"secret for {context} is truncated")
        try:
            plaintext = cipher.decrypt(nonce, body, sealed[:header_length] + context.encode())
        except InvalidTag:
            raise CorruptSecretError(
                f"secret for {context} does not belong to this row or was altered"
            ) from None
        return plaintext.decode()

    def needs_rotation(self, sealed: bytes) -> bool:
        return key_id_of(sealed)[0] != self._primary.kid


def _header(kid: str) -> bytes:
    encoded = kid.encode("ascii")
    return bytes([FORMAT_VERSION, len(encoded)]) + encoded


def key_id_of(sealed: bytes) -> tuple[str, int]:
    """The key id a sealed value names and the length of its header."""
    if len(sealed) < 2 or sealed[0] != FORMAT_VERSION:
        raise CorruptSecretError("not a sealed secret of a known format")
    header_length = 2 + sealed[1]
    if len(sealed) < header_length + NONCE_BYTES + TAG_BYTES:
        raise CorruptSecretError("sealed secret is truncated")
    try:
        kid = sealed[2:header_length].decode("ascii")
    except UnicodeDecodeError:
        raise CorruptSecretError("sealed secret has a malformed key id") from None
    return kid, header_length
