"""What every console page shares: the signed-in operator, rendering, forms and redirects.

Pages read with GET; every change is a same-origin form POST answered with a redirect to a page
(``?done=…`` picks a fixed notice, so no text is reflected) or, when refused, with the same form
shown again and the reason in words.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from admin_ui.operator.audit import Actor
from admin_ui.operator.console import Console
from admin_ui.operator.errors import ConsoleError, InputError
from admin_ui.operator.lockout import Operator
from admin_ui.operator.session import SessionError, clear_session_cookie, cookie_of
from billing import UnknownPlan
from tenants.forms import BodyTooLarge, read_body

STATIC = Path(__file__).parent.parent / "static"
MAX_FORM_BYTES = 64 * 1024
LOCAL_NEXT = re.compile(r"/operator/(?!login)[A-Za-z0-9/_.?=&%+-]{0,500}")
NOTICES = {
    "plan_changed": "The plan was changed.",
    "trial_extended": "The trial was extended.",
    "suspended": "The tenant is suspended: its events are acknowledged and not processed.",
    "resumed": "The tenant is resumed.",
    "replayed": "The dead letter is back in the queue.",
    "plan_created": "The plan was created.",
    "plan_saved": "The plan was saved.",
    "plan_deleted": "The plan was deleted.",
    "provider_created": "The provider was created.",
    "provider_saved": "The provider was saved.",
    "provider_deleted": "The provider was deleted.",
    "token_revoked": "The token was revoked; it no longer opens the API.",
    "signed_out": "You are signed out.",
}
Handler = Callable[[Request, Operator], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def actor_of(operator: Operator) -> Actor:
    return Actor(operator.id, operator.email)


def redirect(path: str, done: str | None = None) -> Response:
    target = f"{path}{'&' if '?' in path else '?'}done={done}" if done else path
    return RedirectResponse(target, status_code=303)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body, at most 64 KiB; a repeated field keeps its last value."""
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except BodyTooLarge:
        raise InputError("the form is larger than 64 KiB") from None
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=400)
    except (UnicodeDecodeError, ValueError):
        raise InputError("the form could not be read") from None
    return dict(pairs)


def secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


class Renderer:
    def __init__(self, templates: Environment) -> None:
        self._templates = templates
        self._versions = {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            for path in STATIC.glob("*.css")
        }

    def static_url(self, name: str) -> str:
        return f"/operator/static/{name}?v={self._versions.get(name, '0')}"

    async def render(
        self,
        request: Request,
        name: str,
        *,
        operator: Operator | None,
        section: str = "",
        status: int = 200,
        **context: Any,
    ) -> Response:
        page = self._templates.get_template(f"operator/{name}")
        body = await page.render_async(
            operator=operator,
            section=section,
            static=self.static_url,
            notice=NOTICES.get(request.query_params.get("done", "")),
            **context,
        )
        return secured(HTMLResponse(body, status_code=status))


class Gate:
    """Admits a request with a live session of an operator who is still enabled."""

    def __init__(self, console: Console, renderer: Renderer) -> None:
        self._console = console
        self._renderer = renderer

    async def operator_of(self, request: Request) -> Operator:
        session = await self._console.sessions.resume(cookie_of(request))
        operator = await self._console.accounts.active(session.operator_id)
        if operator is None:
            raise SessionError("expired")
        return operator

    def page(self, handler: Handler) -> Endpoint:
        async def run(request: Request) -> Response:
            try:
                operator = await self.operator_of(request)
            except SessionError as error:
                return _to_login(request, error.code)
            try:
                return await handler(request, operator)
            except UnknownPlan as missing:
                return await self._message(request, operator, 404, str(missing))
            except ConsoleError as error:  # what a page did not show in its own form
                return await self._message(request, operator, error.status, error.message)

        return run

    async def _message(
        self, request: Request, operator: Operator, status: int, message: str
    ) -> Response:
        return await self._renderer.render(
            request,
            "message.html",
            operator=operator,
            status=status,
            message=message,
            heading="Not found" if status == 404 else "Not done",
        )


def _to_login(request: Request, code: str) -> Response:
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/operator/login"
    if request.method == "GET" and LOCAL_NEXT.fullmatch(wanted):
        target += f"?next={quote(wanted, safe='')}"
    if code == "expired":
        target += ("&" if "?" in target else "?") + "expired=1"
    response = RedirectResponse(target, status_code=303)
    if code != "no_session":
        clear_session_cookie(response)
    return response


def safe_next(value: str) -> str:
    return value if LOCAL_NEXT.fullmatch(value) else "/operator/tenants"
