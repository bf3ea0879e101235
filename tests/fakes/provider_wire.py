"""Pieces the provider fakes share: request recording and a response that can break off mid-body."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Message, Scope, Send


@dataclass(frozen=True)
class RecordedRequest:
    """One request as a fake received it; ``json`` is the parsed body or ``None``."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    """Multipart file parts: field name -> file name."""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


async def record(request: Request) -> RecordedRequest:
    """Read the body once (Starlette caches it, so handlers can read it again)."""
    headers = {key.lower(): value for key, value in request.headers.items()}
    form: dict[str, str] = {}
    files: dict[str, str] = {}
    raw = await request.body()
    body: Any = None
    if headers.get("content-type", "").startswith("multipart/form-data"):
        form, files = await _multipart(request.scope, raw)
    else:
        body = _json_or_none(raw)
    return RecordedRequest(
        method=request.method,
        path=request.url.path,
        headers=headers,
        query=dict(request.query_params),
        json=body,
        form=form,
        files=files,
    )


async def _multipart(scope: Scope, raw: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """Parse a private copy so the handler's own ``request.form()`` stays open for it."""

    async def replay() -> Message:
        return {"type": "http.request", "body": raw, "more_body": False}

    form: dict[str, str] = {}
    files: dict[str, str] = {}
    async with Request(scope, replay).form() as parts:
        for name, value in parts.multi_items():
            if isinstance(value, UploadFile):
                files[name] = value.filename or ""
            else:
                form[name] = value
    return form, files


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class ConnectionDropped(Exception):
    """Raised by a body iterator to end the connection without finishing the response."""


class DroppableStream(StreamingResponse):
    """A streaming response that a ``ConnectionDropped`` from its body cuts off mid-way.

    Returning without the final body message makes uvicorn close the socket, which the client
    sees as an incomplete chunked body — the same thing a crashed upstream or a proxy reset shows.
    """

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self.body_iterator:
                body = chunk if isinstance(chunk, bytes) else str(chunk).encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except ConnectionDropped:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
