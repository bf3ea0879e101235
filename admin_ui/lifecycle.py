"""Routes Bitrix24 calls through the app's life: ``/b24/install`` and ``/b24/app-events``."""

from __future__ import annotations

import logging

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from admin_ui.errors import error_response
from admin_ui.marketplace import InstallRefused, InstallRequest, Marketplace
from tenants.bitrix24.errors import Bitrix24Error
from tenants.bitrix24.phpform import Form, FormError
from tenants.forms import BodyTooLarge, integer, read_form, text

log = logging.getLogger("bitbot.lifecycle")


def lifecycle_routes(marketplace: Marketplace | None, templates: Environment) -> list[Route]:
    async def install(request: Request) -> Response:
        frame = "event" not in request.query_params and request.query_params.get("DOMAIN")
        try:
            form = await read_form(request)
            install_request = _frame_install(form, request) if frame else _event_install(form)
            tenant = await _ready(marketplace).install(install_request)
        except BodyTooLarge:
            return error_response(413, "too_large", "the request body is larger than 1 MiB")
        except FormError as error:
            return error_response(400, "bad_request", str(error))
        except InstallRefused as error:
            log.warning("install refused: %s", error)
            return await _refused(str(error), bool(frame), templates)
        except Bitrix24Error as error:
            log.warning("install failed talking to Bitrix24: %s", error.code)
            return error_response(502, "bitrix24_error", f"Bitrix24 answered {error.code}")
        log.info("installed tenant %s", tenant.id)
        if frame:
            page = templates.get_template("install_finish.html")
            return HTMLResponse(await page.render_async(domain=tenant.domain))
        return JSONResponse({"status": "installed"})

    async def app_events(request: Request) -> Response:
        try:
            form = await read_form(request)
            event = text(form, "event").upper()
            handler = _EVENT_HANDLERS.get(event)
            if handler is None:
                log.warning("unknown lifecycle event %.40s", event)
                return error_response(400, "unknown_event", f"event {event[:40]} is not handled")
            return await handler(_ready(marketplace), form)
        except BodyTooLarge:
            return error_response(413, "too_large", "the request body is larger than 1 MiB")
        except FormError as error:
            return error_response(400, "bad_request", str(error))
        except InstallRefused as error:
            log.warning("lifecycle event refused: %s", error)
            return error_response(401, "unauthorized", str(error))
        except Bitrix24Error as error:
            return error_response(502, "bitrix24_error", f"Bitrix24 answered {error.code}")

    return [
        Route("/b24/install", install, methods=["POST"]),
        Route("/b24/app-events", app_events, methods=["POST"]),
    ]


def _ready(marketplace: Marketplace | None) -> Marketplace:
    if marketplace is None:
        raise InstallRefused(
            "BitBot has no Bitrix24 app credentials (BITBOT_B24_CLIENT_ID/SECRET) configured"
        )
    return marketplace


def _frame_install(form: Form, request: Request) -> InstallRequest:
    return InstallRequest(
        member_id=text(form, "member_id", limit=64),
        access_token=text(form, "AUTH_ID"),
        refresh_token=text(form, "REFRESH_ID"),
        expires_in=integer(form, "AUTH_EXPIRES", default=3600),
        application_token=text(form, "APPLICATION_TOKEN"),
        language=request.query_params.get("LANG", "")[:8] or None,
    )


def _event_install(form: Form) -> InstallRequest:
    if text(form, "event").upper() != "ONAPPINSTALL":
        raise FormError("event must be ONAPPINSTALL")
    return InstallRequest(
        member_id=text(form, "auth", "member_id", limit=64),
        access_token=text(form, "auth", "access_token"),
        refresh_token=text(form, "auth", "refresh_token"),
        expires_in=integer(form, "auth", "expires_in", default=3600),
        application_token=text(form, "auth", "application_token"),
        language=text(form, "data", "LANGUAGE_ID", required=False, limit=8) or None,
    )


async def _refused(message: str, frame: bool, templates: Environment) -> Response:
    if not frame:
        return error_response(401, "unauthorized", message)
    body = await templates.get_template("install_refused.html").render_async(message=message)
    return HTMLResponse(body, status_code=401)


async def _on_uninstall(marketplace: Marketplace, form: Form) -> Response:
    clean = text(form, "data", "CLEAN", required=False) == "1"
    await marketplace.uninstall(
        text(form, "auth", "member_id", limit=64),
        text(form, "auth", "application_token"),
        clean=clean,
    )
    return JSONResponse({"status": "uninstalled", "clean": clean})


async def _on_update(marketplace: Marketplace, form: Form) -> Response:
    update = _event_install({**form, "event": "ONAPPINSTALL"})
    await marketplace.update(update)
    return JSONResponse({"status": "updated"})


async def _on_payment(marketplace: Marketplace, form: Form) -> Response:
    tenant = await marketplace.payment(text(form, "auth", "member_id", limit=64))
    return JSONResponse({"status": "checked" if tenant else "ignored"})


_EVENT_HANDLERS = {
    "ONAPPUNINSTALL": _on_uninstall,
    "ONAPPUPDATE": _on_update,
    "ONAPPPAYMENT": _on_payment,
}
