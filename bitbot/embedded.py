"""Development keys for the embedded run, kept in ``{data_dir}/dev-keys.env``."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

from tenants.vault import generate_key

KEY_FILE = "dev-keys.env"
KEY_VARIABLES = ("BITBOT_SECRET_KEYS", "BITBOT_HASH_KEY")


def with_dev_keys(env: Mapping[str, str], data_dir: Path) -> tuple[dict[str, str], Path | None]:
    """Return ``env`` with development keys filled in where none are set, and the file used."""
    merged = dict(env)
    if all(merged.get(name) for name in KEY_VARIABLES):
        return merged, None
    path = data_dir / KEY_FILE
    if not path.exists():
        _write_keys(path)
    for name, value in _read_keys(path).items():
        if not merged.get(name):
            merged[name] = value
    return merged, path


def _write_keys(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    hash_key = base64.b64encode(os.urandom(32)).decode()
    text = (
        "# Development keys written by `bitbot run`. Not for production.\n"
        f"BITBOT_SECRET_KEYS={generate_key('dev1')}\n"
        f"BITBOT_HASH_KEY={hash_key}\n"
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _read_keys(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs if name.strip() in KEY_VARIABLES}
