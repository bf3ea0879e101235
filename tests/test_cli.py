from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bitbot.cli import main
from tenants.schema import operators
from tenants.settings import load_settings, parse_secret_keys
from tests.conftest import HASH_KEY, KEY_A, KEY_B, Backend

pytestmark = pytest.mark.usefixtures("clean_env")


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("gateway", "BITBOT_SECRET_KEYS, BITBOT_HASH_KEY, REDIS_URL must be set"),
        ("worker", "BITBOT_SECRET_KEYS, BITBOT_HASH_KEY, REDIS_URL, BITBOT_B24_CLIENT_ID"),
        ("admin", "REDIS_URL, BITBOT_PUBLIC_URL, BITBOT_B24_CLIENT_ID, BITBOT_B24_CLIENT_SECRET"),
    ],
)
def test_services_refuse_to_start_without_their_settings(
    command: str, missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command]) == 2
    assert missing in capsys.readouterr().err


def test_services_refuse_without_redis_even_with_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_env(monkeypatch, {"BITBOT_SECRET_KEYS": f"a:{KEY_A}", "BITBOT_HASH_KEY": HASH_KEY})
    assert main(["gateway"]) == 2
    assert "bitbot: error: REDIS_URL must be set" in capsys.readouterr().err


def test_malformed_setting_stops_any_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://db/bitbot")
    assert main(["migrate"]) == 2
    assert "DATABASE_URL scheme 'mysql' is not supported" in capsys.readouterr().err


def test_keys_generate_prints_a_usable_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--kid", "k2"]) == 0
    (key,) = parse_secret_keys(capsys.readouterr().out.strip())
    assert key.kid == "k2"


def test_migrate_twice(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_env(monkeypatch, backend.env(tmp_path))
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.count("Database schema is up to date.") == 2


def test_keys_rotate_reports_progress(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_env(monkeypatch, backend.env(tmp_path))
    assert main(["migrate"]) == 0
    monkeypatch.setenv("BITBOT_SECRET_KEYS", f"b:{KEY_B},a:{KEY_A}")
    assert main(["keys", "rotate"]) == 0
    captured = capsys.readouterr()
    assert "0 of 0 secrets re-encrypted to key 'b'." in captured.out
    assert "Re-encrypting secrets [" in captured.err


def test_operator_create_user_stores_an_argon2_hash(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_env(monkeypatch, backend.env(tmp_path))
    assert main(["migrate"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["operator", "create-user", "--email", "Ops@Example.com", "--password-stdin"]) == 0
    assert "Operator ops@example.com created" in capsys.readouterr().out

    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["operator", "create-user", "--email", "ops@example.com", "--password-stdin"]) == 2
    assert "already exists" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["operator", "create-user", "--email", "b@example.com", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err

    rows = _operator_rows(backend.env(tmp_path))
    assert len(rows) == 1
    assert rows[0].startswith("$argon2id$")
    assert "correct horse" not in rows[0]


def _operator_rows(env: dict[str, str]) -> list[str]:
    import asyncio

    async def read() -> list[str]:
        engine = create_async_engine(load_settings(env).database_url)
        async with engine.connect() as connection:
            hashes = (await connection.execute(sa.select(operators.c.password_hash))).scalars()
            result = list(hashes)
        await engine.dispose()
        return result

    return asyncio.run(read())
