"""Reading Bitrix24's form posts at the edge: size-limited, parsed, with typed accessors.

Shared by the gateway (bot events) and the admin service (lifecycle events)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tenants.bitrix24.phpform import Form, FormError, decode

MAX_BODY_BYTES = 1 << 20


class BodyTooLarge(Exception):
    pass


async def read_form(request: Request, limit: int = MAX_BODY_BYTES) -> Form:
    return decode(await read_body(request, limit))


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def text(form: Form, *path: str, required: bool = True, limit: int = 512) -> str:
    """The string at ``form[path[0]][path[1]]…``; a clear FormError when absent or not a string."""
    node: Any = form
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    name = path[0] + "".join(f"[{part}]" for part in path[1:])
    if node is None or node == "":
        if required:
            raise FormError(f"{name} is missing")
        return ""
    if not isinstance(node, str):
        raise FormError(f"{name} must be a single value")
    if len(node) > limit:
        raise FormError(f"{name} is longer than {limit} characters")
    return node


def integer(form: Form, *path: str, default: int) -> int:
    value = text(form, *path, required=False)
    if not value:
        return default
    if not value.isdigit():
        raise FormError(f"{path[-1]} must be a whole number")
    return int(value)
