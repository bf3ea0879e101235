"""PHP ``http_build_query``-style forms, the way Bitrix24 sends events and ``batch`` takes commands.

Decoding keeps every scalar a string and keeps numeric keys as dict keys (bot ids, file ids), as the
protocol reference advises; callers validate shapes with typed accessors.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote_plus, unquote_to_bytes

KEY_PART = re.compile(r"[^\[\]]+|\[\]")

Form = dict[str, Any]


class FormError(ValueError):
    pass


MAX_FIELDS = 10_000
_KEY_CACHE_SIZE = 4_096
_CACHED_KEY_LENGTH = 160
# Events of one kind repeat the same few dozen field names: each name is split once. A name maps
# to its group (``data\0PARAMS`` for ``data[PARAMS][MESSAGE]``, "" at the top) and its parts.
_Key = tuple[str, tuple[str, ...]]
_keys: dict[str, _Key] = {}


def decode(body: bytes) -> Form:
    """The whole form as nested dicts, like PHP's ``$_POST`` (``parse_qsl`` semantics: ``&``
    separates, ``+`` is a space, bad escapes are kept, a field without ``=`` is empty)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("the body is not UTF-8") from None
    if text.count("&") >= MAX_FIELDS:
        raise FormError(f"the body is not a form: more than {MAX_FIELDS} fields")
    root: Form = {}
    # The dict of each group met so far in this form: its fields go there without walking the
    # path again. A group's dict never leaves the form: replacing it with a value is an error.
    groups: dict[str, Form] = {}
    for field in text.split("&"):
        if not field:
            continue
        raw_key, _, value = field.partition("=")
        if "%" in value:
            value = _unquote_plus(value)
        elif "+" in value:
            value = value.replace("+", " ")
        group, parts = _keys.get(raw_key) or _key_of(raw_key)
        node = groups.get(group) if group else root
        if node is None:
            node = groups[group] = _group(root, parts)
        last = parts[-1]
        if last == "[]":
            last = str(len(node))
        if type(node.get(last)) is dict:
            raise FormError(f"field {'.'.join(parts)!r} is both a value and a group")
        node[last] = value
    return root


def _unquote_plus(value: str) -> str:
    """``unquote_plus`` in one pass: it unquotes each ASCII run apart and decodes it alone, which
    gives the same text, since a run never ends inside a character the next run completes."""
    return unquote_to_bytes(value.replace("+", " ")).decode("utf-8", "replace")


def _key_of(raw_key: str) -> _Key:
    """``data%5BPARAMS%5D%5BMESSAGE%5D`` → ``("data\0PARAMS", ("data", "PARAMS", "MESSAGE"))``,
    cached."""
    key = unquote_plus(raw_key) if "%" in raw_key or "+" in raw_key else raw_key
    parts = tuple(KEY_PART.findall(key)) if "[" in key or "]" in key else (key,)
    if not key or not parts or parts[0] == "[]":
        raise FormError(f"malformed field name {key[:60]!r}")
    entry = ("\0".join(parts[:-1]), parts)
    if len(raw_key) <= _CACHED_KEY_LENGTH:
        if len(_keys) >= _KEY_CACHE_SIZE:
            _keys.clear()
        _keys[raw_key] = entry
    return entry


def _group(root: Form, parts: tuple[str, ...]) -> Form:
    """The dict the last of ``parts`` goes into, made along the way where missing."""
    node = root
    for index, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if type(child) is not dict:
            raise FormError(f"field {'.'.join(parts[: index + 1])!r} is both a value and a group")
        node = child
    return node


ENVELOPE_FIELDS = ("event", "auth[member_id]", "auth[application_token]")


def envelope(body: bytes) -> dict[str, str]:
    """Only the intake's fields (``ENVELOPE_FIELDS``), without decoding the whole form.

    The intake needs three fields of a body that carries dozens; the worker parses the rest.
    A field given twice counts once, last one wins, as in PHP.
    """
    try:
        text = "&" + body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("the body is not UTF-8") from None
    if text.find("&auth=") >= 0:
        raise FormError("field 'auth' is both a value and a group")
    found: dict[str, str] = {}
    for name, markers in _ENVELOPE_MARKERS:
        value = _last_value(text, markers)
        if value is not None:
            found[name] = value
    return found


def _last_value(text: str, markers: tuple[str, ...]) -> str | None:
    """The value after the last of ``markers`` (``&name=`` in each spelling) in ``text``."""
    best = -1
    for marker in markers:
        at = text.rfind(marker)
        if at > best:
            best, start = at, at + len(marker)
    if best < 0:
        return None
    end = text.find("&", start)
    return unquote_plus(text[start : None if end < 0 else end])


def _spellings(name: str) -> tuple[str, ...]:
    if "[" not in name:
        return (name,)
    return (
        name,
        name.replace("[", "%5B").replace("]", "%5D"),
        name.replace("[", "%5b").replace("]", "%5d"),
    )


_ENVELOPE_MARKERS = tuple(
    (name, tuple(f"&{spelling}=" for spelling in _spellings(name))) for name in ENVELOPE_FIELDS
)


def encode(params: dict[str, Any]) -> str:
    """Encode nested params for a ``batch`` command string or a form body."""
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in _flatten(params, ""))


def _flatten(value: Any, prefix: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        return [(prefix, _scalar(value))]
    pairs: list[tuple[str, str]] = []
    for key, child in items:
        pairs += _flatten(child, f"{prefix}[{key}]" if prefix else str(key))
    return pairs


def _scalar(value: Any) -> str:
    if value is True:
        return "Y"
    if value is False:
        return "N"
    return "" if value is None else str(value)
