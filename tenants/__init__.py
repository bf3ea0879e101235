"""The lowest layer: settings, storage, Redis, the secrets vault and the tenant store."""

from tenants.errors import (
    BitBotError,
    CorruptSecretError,
    SchemaError,
    SettingsError,
    UnknownKeyError,
    VaultError,
)
from tenants.runtime import Runtime, build_runtime
from tenants.settings import Settings, load_settings
from tenants.store import Portal, Tenant, TenantStore, TokenPair
from tenants.vault import Vault, tenant_context

__all__ = [
    "BitBotError",
    "CorruptSecretError",
    "Portal",
    "Runtime",
    "SchemaError",
    "Settings",
    "SettingsError",
    "Tenant",
    "TenantStore",
    "TokenPair",
    "UnknownKeyError",
    "Vault",
    "VaultError",
    "build_runtime",
    "load_settings",
    "tenant_context",
]
