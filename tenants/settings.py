"""Settings read from the environment and validated once, at start.

Every problem names the variable, so an operator can fix a deployment from the first log line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from tenants.errors import SettingsError

T = TypeVar("T")

DEFAULT_OAUTH_URL = "https://oauth.bitrix.info"
DEFAULT_DATA_DIR = "var"
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
SECRET_KEY_BYTES = 32
MIN_HASH_KEY_BYTES = 32


@dataclass(frozen=True)
class SecretKey:
    kid: str
    material: bytes = field(repr=False)


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    public_url: str | None
    b24_client_id: str | None
    b24_client_secret: str | None = field(repr=False)
    b24_oauth_url: str
    secret_keys: tuple[SecretKey, ...] = field(repr=False)
    hash_key: bytes | None = field(repr=False)
    allow_private_hosts: tuple[str, ...]
    sentry_dsn: str | None = field(repr=False)
    data_dir: Path
    queue_shards: int
    worker_lease_s: int = 30

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    def require(self, *names: str) -> None:
        """Refuse to go on when a variable a service cannot run without is unset."""
        missing = [name for name in names if not _is_set(self, name)]
        if missing:
            raise SettingsError(
                f"{', '.join(missing)} must be set for this command"
                " (see .env.example; only `bitbot run` has embedded defaults)"
            )


_ATTRIBUTE_OF = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "BITBOT_PUBLIC_URL": "public_url",
    "BITBOT_B24_CLIENT_ID": "b24_client_id",
    "BITBOT_B24_CLIENT_SECRET": "b24_client_secret",
    "BITBOT_SECRET_KEYS": "secret_keys",
    "BITBOT_HASH_KEY": "hash_key",
}


def _is_set(settings: Settings, name: str) -> bool:
    return bool(getattr(settings, _ATTRIBUTE_OF[name]))


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build settings from ``env``; raise SettingsError naming the first bad variable."""
    data_dir = Path(_get(env, "BITBOT_DATA_DIR") or DEFAULT_DATA_DIR)
    return Settings(
        database_url=parse_database_url(
            _get(env, "DATABASE_URL") or f"sqlite:///{data_dir / 'bitbot.db'}"
        ),
        redis_url=_optional(env, "REDIS_URL", parse_redis_url),
        public_url=_optional(env, "BITBOT_PUBLIC_URL", _http_url("BITBOT_PUBLIC_URL")),
        b24_client_id=_get(env, "BITBOT_B24_CLIENT_ID"),
        b24_client_secret=_get(env, "BITBOT_B24_CLIENT_SECRET"),
        b24_oauth_url=_http_url("BITBOT_B24_OAUTH_URL")(
            _get(env, "BITBOT_B24_OAUTH_URL") or DEFAULT_OAUTH_URL
        ),
        secret_keys=parse_secret_keys(_get(env, "BITBOT_SECRET_KEYS") or ""),
        hash_key=_optional(env, "BITBOT_HASH_KEY", parse_hash_key),
        allow_private_hosts=parse_allow_list(_get(env, "BITBOT_ALLOW_PRIVATE_HOSTS") or ""),
        sentry_dsn=_optional(env, "SENTRY_DSN", _http_url("SENTRY_DSN")),
        data_dir=data_dir,
        queue_shards=_positive_int(env, "BITBOT_QUEUE_SHARDS", default=8),
        worker_lease_s=_positive_int(env, "BITBOT_WORKER_LEASE_S", default=30),
    )


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _optional(env: Mapping[str, str], name: str, parse: Callable[[str], T]) -> T | None:
    value = _get(env, name)
    return None if value is None else parse(value)


def parse_database_url(value: str) -> str:
    """Accept sqlite and postgresql URLs and pin the async driver SQLAlchemy needs."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise SettingsError("DATABASE_URL must look like postgresql://… or sqlite:///path")
    base = scheme.split("+", 1)[0]
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise SettingsError(f"DATABASE_URL scheme {scheme!r} is not supported (postgresql or sqlite)")


def parse_redis_url(value: str) -> str:
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
    return value


def _http_url(name: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"{name} must be an http(s) URL, got {_shown(value)}")
        return value.rstrip("/")

    return parse


def _shown(value: str) -> str:
    # Never echo what might carry a password or token; a hint of its shape is enough.
    return f"a value of {len(value)} characters"


def parse_secret_keys(value: str) -> tuple[SecretKey, ...]:
    """Parse ``kid:base64(32 bytes)[,kid:base64…]``; the first key encrypts, all decrypt."""
    keys: list[SecretKey] = []
    for number, item in enumerate(filter(None, (v.strip() for v in value.split(","))), 1):
        kid, sep, encoded = item.partition(":")
        if not sep or not KEY_ID.match(kid):
            raise SettingsError(
                f"BITBOT_SECRET_KEYS entry {number} must be kid:base64key"
                " (kid: 1-32 letters, digits, '_', '.', '-')"
            )
        material = _base64(f"BITBOT_SECRET_KEYS entry {number} ({kid})", encoded)
        if len(material) != SECRET_KEY_BYTES:
            raise SettingsError(
                f"BITBOT_SECRET_KEYS entry {number} ({kid}) must decode to 32 bytes,"
                f" got {len(material)}"
            )
        if any(key.kid == kid for key in keys):
            raise SettingsError(f"BITBOT_SECRET_KEYS repeats the key id {kid!r}")
        keys.append(SecretKey(kid, material))
    return tuple(keys)


def parse_hash_key(value: str) -> bytes:
    material = _base64("BITBOT_HASH_KEY", value)
    if len(material) < MIN_HASH_KEY_BYTES:
        raise SettingsError(
            f"BITBOT_HASH_KEY must decode to at least 32 bytes, got {len(material)}"
        )
    return material


def _base64(what: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{what} is not valid base64") from None


def parse_allow_list(value: str) -> tuple[str, ...]:
    entries = tuple(filter(None, (v.strip().lower() for v in value.split(","))))
    for entry in entries:
        if entry != "*" and "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise SettingsError(
                    f"BITBOT_ALLOW_PRIVATE_HOSTS entry {entry!r} is not a valid CIDR"
                ) from None
    return entries


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _get(env, name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SettingsError(f"{name} must be a positive integer")
    return int(value)
