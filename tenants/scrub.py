"""What never leaves the process in logs or error reports: secrets and the text of chats.

One set of rules, used by the log pipeline (``tenants.logs``) and by Sentry (``tenants.sentry``):

- a value under a secret-looking key is replaced by ``[redacted]``, whatever its type. Keys are
  compared case-insensitively and piece by piece, so ``auth[access_token]``, ``X-Api-Key`` and
  ``data.AUTH_ID`` count as well as ``access_token``;
- a value under a chat-body key (``MESSAGE``, ``text``, ``query``, ``inputs``…; compared exactly,
  since Sentry's own ``message`` fields must stay) is replaced by ``[removed]``;
- in free text, ``key=value`` / ``"key": "value"`` pairs with a secret key, ``Bearer``/``Basic``
  credentials, passwords in URLs and every registered literal secret are masked, and so are the
  values of chat-body keys in reprs, JSON and query strings (``'MESSAGE': '…'``, ``text=…``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tenants.settings import Settings

REDACTED = "[redacted]"
REMOVED = "[removed]"

SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "application_token",
        "auth",
        "auth_id",
        "refresh_id",
        "api_key",
        "apikey",
        "x_api_key",
        "password",
        "passwd",
        "authorization",
        "proxy_authorization",
        "client_secret",
        "secret",
        "token",
        "cookie",
        "cookies",
        "set_cookie",
        "session",
        "session_id",
        "dsn",
        "sentry_dsn",
        "secret_keys",
        "hash_key",
    }
)
SECRET_SUFFIXES = ("_token", "_secret", "_password", "_secret_keys", "_hash_key")
BODY_KEYS = frozenset({"MESSAGE", "MESSAGE_BATCH", "text", "query", "inputs", "answer"})

_KEY_PARTS = re.compile(r"[\[\].\s/]+")
# Longest alternatives first: the regex takes the first one that fits.
_PAIR_WORDS = (
    "access_token",
    "refresh_token",
    "application_token",
    "client_secret",
    "authorization",
    "secret_keys",
    "hash_key",
    "auth_id",
    "refresh_id",
    "api_key",
    "password",
    "passwd",
    "secret",
    "token",
    "auth",
    "dsn",
)
_SECRET_WORDS = "|".join(word.replace("_", "[_-]?") for word in _PAIR_WORDS)
_PAIR = re.compile(
    r"(?i)(?<![A-Za-z0-9])"
    rf"([A-Za-z0-9_-]*?(?:{_SECRET_WORDS})(?:\]|%5D)?[\"']?\s*(?:=|%3D|:)\s*[\"']?)"
    r"[^\s\"'&,;<>(){}\[\]]+"
)
_CREDENTIAL = re.compile(r"(?i)\b(bearer\s+|basic\s+(?=[A-Za-z0-9+/=]{8}))[A-Za-z0-9._~+/=-]+")
_BODY_WORDS = "|".join(sorted(BODY_KEYS, key=len, reverse=True))
# A chat body inside a repr or JSON (``'MESSAGE': '…'``) or a query string (``MESSAGE=…``).
_BODY_START = r"(?:(?<=%5B)|(?<=%5b)|(?<![A-Za-z0-9_]))"  # also inside url-encoded brackets
_BODY_QUOTED = re.compile(
    rf"{_BODY_START}((?:{_BODY_WORDS})(?:\]|%5D)?[\"']?\s*:\s*)([\"'])(?:\\.|(?!\2).)*\2"
)
_BODY_FORM = re.compile(rf"{_BODY_START}((?:{_BODY_WORDS})(?:\]|%5D)?(?:=|%3D))[^&\s\"']+")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@")

_known: set[str] = set()
_known_pattern: re.Pattern[str] | None = None


def remember_secrets(*values: str | bytes | None) -> None:
    """Mask these exact values wherever they appear (process-wide keys, client secrets).

    Bytes are remembered in their base64 form, which is how keys travel in the environment.
    """
    global _known_pattern
    for value in values:
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        if value and len(value) >= 8:
            _known.add(value)
    if _known:
        ordered = sorted(_known, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(value) for value in ordered))


def remember_settings(settings: Settings) -> None:
    """The process-wide secrets of ``settings``: vault keys, hash key, client secret, DSN, and
    passwords inside the database and Redis URLs."""
    passwords = [
        urlsplit(url).password for url in (settings.database_url, settings.redis_url or "")
    ]
    remember_secrets(
        settings.b24_client_secret,
        settings.sentry_dsn,
        settings.hash_key,
        *(key.material for key in settings.secret_keys),
        *passwords,
    )


def forget_secrets() -> None:
    global _known_pattern
    _known.clear()
    _known_pattern = None


def is_secret_key(key: str) -> bool:
    normalized = key.lower().replace("-", "_")
    parts = [part for part in _KEY_PARTS.split(normalized) if part]
    return any(part in SECRET_KEYS or part.endswith(SECRET_SUFFIXES) for part in parts)


def is_body_key(key: str) -> bool:
    return any(part in BODY_KEYS for part in _KEY_PARTS.split(key))


def scrub_text(text: str) -> str:
    if _known_pattern is not None:
        text = _known_pattern.sub(REDACTED, text)
    text = _CREDENTIAL.sub(lambda m: m.group(1) + REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _BODY_QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REMOVED}{m.group(2)}", text)
    text = _BODY_FORM.sub(lambda m: m.group(1) + REMOVED, text)
    return _PAIR.sub(lambda m: m.group(1) + REDACTED, text)


def scrub_mapping(mapping: Mapping[Any, Any], keep: Iterable[str] = ()) -> dict[Any, Any]:
    """A scrubbed copy; keys in ``keep`` are copied as they are (our own, known-safe fields)."""
    kept = set(keep)
    clean: dict[Any, Any] = {}
    for key, value in mapping.items():
        name = str(key)
        if name in kept:
            clean[key] = value
        elif is_secret_key(name):
            clean[key] = REDACTED if value not in (None, "") else value
        elif is_body_key(name):
            clean[key] = REMOVED if value not in (None, "") else value
        else:
            clean[key] = scrub_value(value)
    return clean


def scrub_value(value: Any) -> Any:
    """Scrub any value: containers recursively, text by pattern, other objects by their repr."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return scrub_mapping(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub_value(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return scrub_text(bytes(value).decode("utf-8", "replace"))
    return scrub_text(repr(value))
