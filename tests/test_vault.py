from __future__ import annotations

import pytest

from tenants.errors import CorruptSecretError, UnknownKeyError, VaultError
from tenants.settings import SecretKey, parse_secret_keys
from tenants.vault import Vault, generate_key, key_id_of, tenant_context

OLD = SecretKey("old", b"o" * 32)
NEW = SecretKey("new", b"n" * 32)
CONTEXT = tenant_context(7, "connectors", "api_key")
SECRET = "app-Dify-secret-key-0123456789"


def test_round_trip_and_header_names_the_key() -> None:
    vault = Vault([NEW, OLD])
    sealed = vault.seal(SECRET, CONTEXT)
    assert SECRET.encode() not in sealed
    assert key_id_of(sealed)[0] == "new"
    assert vault.open(sealed, CONTEXT) == SECRET


def test_same_value_seals_differently_each_time() -> None:
    vault = Vault([NEW])
    assert vault.seal(SECRET, CONTEXT) != vault.seal(SECRET, CONTEXT)


@pytest.mark.parametrize(
    "other_context",
    [
        tenant_context(8, "connectors", "api_key"),
        tenant_context(7, "credentials", "refresh_token"),
        "global:connectors.api_key",
    ],
)
def test_value_moved_to_another_row_does_not_open(other_context: str) -> None:
    vault = Vault([NEW])
    sealed = vault.seal(SECRET, CONTEXT)
    with pytest.raises(CorruptSecretError) as raised:
        vault.open(sealed, other_context)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("cut", [1, 5, 20, 40])
def test_truncated_value_is_a_clear_error(cut: int) -> None:
    vault = Vault([NEW])
    sealed = vault.seal(SECRET, CONTEXT)
    with pytest.raises(CorruptSecretError):
        vault.open(sealed[:-cut], CONTEXT)


def test_flipped_bit_is_detected() -> None:
    vault = Vault([NEW])
    sealed = bytearray(vault.seal(SECRET, CONTEXT))
    sealed[-1] ^= 1
    with pytest.raises(CorruptSecretError):
        vault.open(bytes(sealed), CONTEXT)


def test_unknown_key_id_is_named() -> None:
    sealed = Vault([OLD]).seal(SECRET, CONTEXT)
    with pytest.raises(UnknownKeyError, match="'old'"):
        Vault([NEW]).open(sealed, CONTEXT)


def test_relabelled_key_id_does_not_open() -> None:
    # Same key material under another id: the header is authenticated too.
    sealed = Vault([SecretKey("k1", b"x" * 32)]).seal(SECRET, CONTEXT)
    relabelled = sealed[:2] + b"k2" + sealed[4:]
    with pytest.raises(CorruptSecretError):
        Vault([SecretKey("k2", b"x" * 32)]).open(relabelled, CONTEXT)


def test_unknown_format_version() -> None:
    with pytest.raises(CorruptSecretError, match="format"):
        Vault([NEW]).open(b"\x09" + b"\x00" * 40, CONTEXT)


def test_old_keys_open_and_rotation_is_detected() -> None:
    sealed = Vault([OLD]).seal(SECRET, CONTEXT)
    vault = Vault([NEW, OLD])
    assert vault.open(sealed, CONTEXT) == SECRET
    assert vault.needs_rotation(sealed)
    assert not vault.needs_rotation(vault.seal(SECRET, CONTEXT))


def test_generated_key_is_accepted_by_the_settings_parser() -> None:
    (key,) = parse_secret_keys(generate_key("k2026"))
    assert key.kid == "k2026"
    assert len(key.material) == 32


def test_empty_keyring_is_refused() -> None:
    with pytest.raises(VaultError):
        Vault([])
