"""A request id for every HTTP request: taken from ``X-Request-ID`` when sane, made otherwise.

The id is bound to the log context for the request (``request_id`` on every line it causes,
uvicorn's access line included), replaces the request's own header so that error reports see the
id actually used, and goes back to the client in the response's ``X-Request-ID``.
"""

from __future__ import annotations

import os
import re

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenants.logs import context_var

HEADER = b"x-request-id"
SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")
SCOPE_KEY = "bitbot.request_id"
_BOUND = context_var("request_id")


def request_id_of(value: bytes | None) -> str:
    """The caller's id when it is ≤ 64 characters of ``[A-Za-z0-9._-]``, else 32 new random hex
    digits."""
    text = value.decode("latin-1") if value else ""
    return text if SANE.fullmatch(text) else os.urandom(16).hex()


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or SCOPE_KEY in scope:  # an outer app already did it
            await self.app(scope, receive, send)
            return
        # ASGI servers give header names in lower case. This runs on every gateway request:
        # plain loops, one scope copy, the log context bound through its variable.
        headers = scope["headers"]
        given = None
        for name, value in headers:
            if name == HEADER:
                given = value
                break
        request_id = request_id_of(given)
        raw = request_id.encode("latin-1")
        if given is None:
            headers = [*headers, (HEADER, raw)]
        elif given != raw:
            headers = [(k, v) for k, v in headers if k != HEADER]
            headers.append((HEADER, raw))
        scope = {**scope, "headers": headers, SCOPE_KEY: request_id}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                kept.append((HEADER, raw))
                message = {**message, "headers": kept}
            await send(message)

        token = _BOUND.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _BOUND.reset(token)


# For ``Starlette(middleware=[REQUEST_ID, …])``; put it first so that it wraps the others.
REQUEST_ID = Middleware(RequestId)
