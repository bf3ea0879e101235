"""PHP-style form encoding as Bitrix24 speaks it (``http_build_query`` and ``$_POST`` parsing).

Bitrix24 sends events as ``a[b][c]=v`` pairs and accepts the same shape in REST form bodies and in
``batch`` commands. Reference: shared/reference/bitrix24.md §4.1, §7.3.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

FormPairs = list[tuple[str, str]]
"""Flat ``(key, value)`` pairs in wire order, e.g. ``("data[PARAMS][MESSAGE]", "hi")``."""

NullPolicy = Literal["drop", "empty"]

_KEY_PART = re.compile(r"[^\[\]]+|\[\]")


def flatten(data: dict[str, Any], *, nulls: NullPolicy = "drop") -> FormPairs:
    """Flatten nested data like PHP ``http_build_query``.

    Booleans become ``"1"``/``"0"``; empty containers vanish. ``None`` vanishes too (PHP), except
    that Chatbots 2.0 webhooks document ``null`` as ``""`` (``nulls="empty"``).
    """
    pairs: FormPairs = []
    for key, value in data.items():
        _flatten_into(pairs, str(key), value, nulls)
    return pairs


def _flatten_into(pairs: FormPairs, key: str, value: Any, nulls: NullPolicy) -> None:
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            _flatten_into(pairs, f"{key}[{sub_key}]", sub_value, nulls)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten_into(pairs, f"{key}[{index}]", item, nulls)
    elif value is None:
        if nulls == "empty":
            pairs.append((key, ""))
    else:
        pairs.append((key, php_scalar(value)))


def php_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def encode(pairs: FormPairs) -> str:
    return urlencode(pairs)


def nest(pairs: FormPairs) -> dict[str, Any]:
    """Rebuild nested dicts from flat PHP keys; ``a[]`` appends. Ids stay string dict keys."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _KEY_PART.findall(key)
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            node = _child(node, part)
        _assign(node, parts[-1], value)
    return root


def _child(node: dict[str, Any], part: str) -> dict[str, Any]:
    name = str(len(node)) if part == "[]" else part
    child = node.get(name)
    if not isinstance(child, dict):
        child = {}
        node[name] = child
    return child


def _assign(node: dict[str, Any], part: str, value: str) -> None:
    node[str(len(node)) if part == "[]" else part] = value


def parse_query(query: str) -> dict[str, Any]:
    return nest(parse_qsl(query, keep_blank_values=True))


def php_array(mapping: dict[str, Any]) -> dict[str, Any] | list[Any]:
    """How PHP's ``json_encode`` renders an array: ``[]`` when empty, a list when keys are 0..n-1.

    Real answers carry this quirk (e.g. ``"result_error": []`` in a clean ``batch``).
    """
    if list(mapping) == [str(i) for i in range(len(mapping))]:
        return list(mapping.values())
    return mapping
