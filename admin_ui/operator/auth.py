"""``/operator/login`` and ``/operator/logout``.

Every refusal shows the same words, whether the e-mail is unknown, the password wrong, the
account locked or disabled (``lockout``); only the per-address limit says "wait", because it is
about the address, not the account. Sign-ins, failures of known accounts and lockouts go to the
audit log.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin_ui.operator.audit import Actor, record_now
from admin_ui.operator.console import Console
from admin_ui.operator.errors import InputError
from admin_ui.operator.session import (
    SessionError,
    clear_session_cookie,
    cookie_of,
    set_session_cookie,
)
from admin_ui.operator.web import (
    Gate,
    Renderer,
    client_address,
    form_fields,
    redirect,
    safe_next,
)

log = logging.getLogger("bitbot.operator")
REFUSED = "The e-mail or password is wrong, or the account is locked for a while. Try again later."


def auth_routes(console: Console, renderer: Renderer, gate: Gate) -> list[Route]:
    async def show(request: Request) -> Response:
        try:
            await gate.operator_of(request)
        except SessionError:
            return await _form(request, renderer, "", 200)
        return redirect(safe_next(request.query_params.get("next", "")))

    async def sign_in(request: Request) -> Response:
        address = client_address(request)
        wait = await console.throttle.retry_after(address)
        if wait:
            log.warning("operator sign-in throttled for %s", address)
            minutes = max(1, round(wait / 60))
            message = f"Too many sign-in attempts from your address. Wait {minutes} min."
            response = await _form(request, renderer, message, 429)
            response.headers["Retry-After"] = str(wait)
            return response
        try:
            form = await form_fields(request)
        except InputError as error:
            return await _form(request, renderer, error.message, 400)
        email, password = form.get("email", "")[:254], form.get("password", "")[:1024]
        outcome = await console.accounts.sign_in(email, password)
        if outcome.operator is None:
            if outcome.known_id is not None:
                action = "operator.locked" if outcome.locked else "operator.login_failed"
                actor = Actor(outcome.known_id, "", via="console")
                await record_now(console.engine, actor, action, details={"address": address})
            return await _form(
                request, renderer, REFUSED, 401, email=email, wanted=form.get("next", "")
            )
        actor = Actor(outcome.operator.id, outcome.operator.email)
        await record_now(console.engine, actor, "operator.login", details={"address": address})
        cookie = await console.sessions.start(outcome.operator.id)
        response = redirect(safe_next(form.get("next", "")))
        set_session_cookie(response, cookie, console.sessions.lifetime_s)
        return response

    async def sign_out(request: Request) -> Response:
        try:
            operator = await gate.operator_of(request)
            await record_now(console.engine, Actor(operator.id, operator.email), "operator.logout")
            await console.sessions.end(cookie_of(request))
        except SessionError:
            pass
        response = redirect("/operator/login", "signed_out")
        clear_session_cookie(response)
        return response

    return [
        Route("/login", show, methods=["GET"]),
        Route("/login", sign_in, methods=["POST"]),
        Route("/logout", sign_out, methods=["POST"]),
    ]


async def _form(
    request: Request,
    renderer: Renderer,
    error: str,
    status: int,
    email: str = "",
    wanted: str | None = None,
) -> Response:
    expired = request.query_params.get("expired") == "1" and not error
    return await renderer.render(
        request,
        "login.html",
        operator=None,
        status=status,
        error=error,
        email=email,
        expired=expired,
        next=safe_next(request.query_params.get("next", "") if wanted is None else wanted),
    )
