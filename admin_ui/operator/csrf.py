"""Cross-site request refusal for the console, as a plain ASGI middleware.

Every unsafe request under ``/operator/`` (login and logout included) must say
``Sec-Fetch-Site: same-origin``, or, from a browser too old to send it, carry an ``Origin`` of
BitBot itself. A request with neither is refused: the console's forms are only posted by
browsers, and browsers send one or the other. The JSON API under ``/operator/api/`` is
authenticated by a bearer token that a cross-site page cannot attach, so it is not checked here.
The session cookie is ``SameSite=Strict`` as well; this is the second lock on the same door.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

CONSOLE = "/operator/"
API = "/operator/api/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REFUSAL = json.dumps(
    {
        "error": {
            "code": "cross_site",
            "message": "cross-site requests to the operator console are refused",
            "fields": {},
        }
    }
).encode()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class ConsoleCrossSiteGuard:
    def __init__(self, app: ASGIApp, public_url: str | None) -> None:
        self.app = app
        self.public_origin = origin_of(public_url) if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope) or self._same_origin(scope):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": _REFUSAL})

    @staticmethod
    def _guarded(scope: Scope) -> bool:
        path: str = scope["path"]
        unsafe = scope["method"] not in SAFE_METHODS
        return unsafe and path.startswith(CONSOLE) and not path.startswith(API)

    def _same_origin(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site == "same-origin"
        origin = headers.get("origin")
        if origin is None:
            return False
        own = {f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()}
        if self.public_origin:
            own.add(self.public_origin)
        return origin.lower() in own
