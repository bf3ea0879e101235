from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tenants.errors import SettingsError
from tenants.settings import load_settings
from tests.conftest import HASH_KEY, KEY_A, KEY_B


def test_embedded_defaults_need_nothing() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite+aiosqlite:///var/bitbot.db"
    assert settings.embedded_redis
    assert settings.b24_oauth_url == "https://oauth.bitrix.info"
    assert settings.secret_keys == ()
    assert settings.queue_shards == 8


def test_data_dir_moves_the_default_database(tmp_path: Path) -> None:
    settings = load_settings({"BITBOT_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/bitbot.db"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/bitbot", "postgresql+asyncpg://u:p@db:5432/bitbot"),
        ("postgres://db/bitbot", "postgresql+asyncpg://db/bitbot"),
        ("postgresql+asyncpg://db/bitbot", "postgresql+asyncpg://db/bitbot"),
        ("sqlite:////srv/bitbot.db", "sqlite+aiosqlite:////srv/bitbot.db"),
    ],
)
def test_database_url_gets_the_async_driver(given: str, expected: str) -> None:
    assert load_settings({"DATABASE_URL": given}).database_url == expected


def test_keyring_first_key_encrypts() -> None:
    settings = load_settings({"BITBOT_SECRET_KEYS": f"new:{KEY_B}, old:{KEY_A}"})
    assert [key.kid for key in settings.secret_keys] == ["new", "old"]
    assert settings.secret_keys[1].material == b"A" * 32


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL scheme 'mysql' is not supported"),
        ("DATABASE_URL", "bitbot.db", "DATABASE_URL must look like"),
        ("REDIS_URL", "http://cache:6379", "REDIS_URL must start with redis://"),
        ("BITBOT_PUBLIC_URL", "bitbot.example.com", "BITBOT_PUBLIC_URL must be an http(s) URL"),
        ("BITBOT_B24_OAUTH_URL", "ftp://oauth", "BITBOT_B24_OAUTH_URL must be an http(s) URL"),
        ("BITBOT_SECRET_KEYS", KEY_A, "BITBOT_SECRET_KEYS entry 1 must be kid:base64key"),
        (
            "BITBOT_SECRET_KEYS",
            "a:not*base64",
            "BITBOT_SECRET_KEYS entry 1 (a) is not valid base64",
        ),
        ("BITBOT_SECRET_KEYS", "a:" + base64.b64encode(b"short").decode(), "must decode to 32"),
        ("BITBOT_SECRET_KEYS", f"a:{KEY_A},a:{KEY_B}", "repeats the key id 'a'"),
        ("BITBOT_HASH_KEY", base64.b64encode(b"x" * 8).decode(), "BITBOT_HASH_KEY must decode"),
        ("BITBOT_HASH_KEY", "%%%", "BITBOT_HASH_KEY is not valid base64"),
        ("BITBOT_ALLOW_PRIVATE_HOSTS", "10.0.0.0/33", "BITBOT_ALLOW_PRIVATE_HOSTS entry"),
        ("BITBOT_QUEUE_SHARDS", "0", "BITBOT_QUEUE_SHARDS must be a positive integer"),
        ("SENTRY_DSN", "not a url", "SENTRY_DSN must be an http(s) URL"),
    ],
)
def test_malformed_setting_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    assert message in str(raised.value)


def test_rejected_values_are_not_echoed() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"SENTRY_DSN": "sentry-secret-abc123"})
    assert "sentry-secret-abc123" not in str(raised.value)


def test_require_names_every_missing_variable() -> None:
    settings = load_settings({"BITBOT_HASH_KEY": HASH_KEY})
    with pytest.raises(SettingsError) as raised:
        settings.require("BITBOT_SECRET_KEYS", "BITBOT_HASH_KEY", "REDIS_URL")
    assert str(raised.value).startswith("BITBOT_SECRET_KEYS, REDIS_URL must be set")


def test_allow_list_and_repr_hide_secrets() -> None:
    settings = load_settings(
        {
            "BITBOT_ALLOW_PRIVATE_HOSTS": "Dify.internal, 10.0.0.0/8,*",
            "BITBOT_SECRET_KEYS": f"a:{KEY_A}",
            "BITBOT_B24_CLIENT_SECRET": "client-secret-value",
        }
    )
    assert settings.allow_private_hosts == ("dify.internal", "10.0.0.0/8", "*")
    assert "client-secret-value" not in repr(settings)
    assert KEY_A not in repr(settings)
