"""Errors raised by the tenants layer.

BitBotError
├── SettingsError            a setting is missing or malformed; the message names the variable
├── VaultError               a secret cannot be decrypted; never carries plaintext or keys
│   ├── UnknownKeyError      the ciphertext names a key id the keyring does not hold
│   └── CorruptSecretError   truncated, altered, or moved to another tenant/column
└── SchemaError              the database schema is not the one this code expects
"""


class BitBotError(Exception):
    """Base of every error BitBot raises on purpose."""


class SettingsError(BitBotError):
    pass


class VaultError(BitBotError):
    pass


class UnknownKeyError(VaultError):
    pass


class CorruptSecretError(VaultError):
    pass


class SchemaError(BitBotError):
    pass
