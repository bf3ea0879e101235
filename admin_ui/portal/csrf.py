"""Cross-site request refusal for the portal's session routes, as a plain ASGI middleware.

A browser sends ``Sec-Fetch-Site`` (and ``Origin``) with every unsafe request, so a state change
under ``/b24/ui/`` or ``/b24/api/`` must say ``same-origin``, or come from our own origin. A client
that sends neither (a script using the API) must carry the session in the ``X-BitBot-Session``
header, which a cross-site page cannot set. ``POST /b24/app`` is cross-site by nature (Bitrix24
posts it from the portal) and is verified with the auth server instead.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from admin_ui.portal.session import HEADER

PROTECTED = ("/b24/ui/", "/b24/api/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class CrossSiteGuard:
    def __init__(self, app: ASGIApp, public_url: str | None) -> None:
        self.app = app
        self.public_origin = origin_of(public_url) if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = {
            "error": {
                "code": "cross_site",
                "message": "cross-site requests are refused; use BitBot from its own page",
                "fields": {},
            }
        }
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    def _guarded(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return scope["method"] not in SAFE_METHODS and path.startswith(PROTECTED)

    def _allowed(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site == "same-origin"
        origin = headers.get("origin")
        if origin is not None:
            return origin.lower() in self._own_origins(scope, headers)
        return HEADER.lower() in headers

    def _own_origins(self, scope: Scope, headers: Headers) -> set[str]:
        own = {f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()}
        if self.public_origin:
            own.add(self.public_origin)
        return own
