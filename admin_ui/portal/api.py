"""The JSON API under ``/b24/api/`` (docs/portal-api.md): the page's own calls, and automation's.

Same session as the pages (the ``X-BitBot-Session`` header or the cookie); changes need a portal
admin. Errors are ``{"error": {"code", "message", "fields"}}`` worded in the session's language.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from admin_ui.errors import error_response
from admin_ui.portal.context import Viewer
from admin_ui.portal.i18n import Translator
from admin_ui.portal.plan import NO_SUBSCRIPTION
from admin_ui.portal.providercheck import CheckResult
from admin_ui.portal.session import SessionError
from admin_ui.portal.validation import Message, PortalError
from admin_ui.portal.wiring import Portal
from tenants.forms import BodyTooLarge, read_body

MAX_JSON_BYTES = 256 * 1024
Handler = Callable[[Request, Viewer], Awaitable[Response]]
PortalHandler = Callable[[Portal, Request, Viewer], Awaitable[Response]]


CONNECTOR = "/connectors/{connector_id:int}"
BOT = "/bots/{bot_id:int}"
COMMAND = BOT + "/commands/{command_id:int}"


def api_routes(portal: Portal) -> list[Route]:
    def route(path: str, handler: PortalHandler, method: str = "GET") -> Route:
        endpoint = _endpoint(portal, partial(handler, portal), write=method != "GET")
        return Route(f"/b24/api{path}", endpoint, methods=[method])

    return [
        route("/session", _session),
        route("/providers", _providers),
        route("/plan", _plan),
        route("/connectors", _connectors),
        route("/connectors", _create_connector, "POST"),
        route("/connectors/test", _check_draft, "POST"),
        route(CONNECTOR, _get_connector),
        route(CONNECTOR, _patch_connector, "PATCH"),
        route(CONNECTOR, _delete_connector, "DELETE"),
        route(f"{CONNECTOR}/test", _check_stored, "POST"),
        route("/bots", _bots),
        route("/bots", _create_bot, "POST"),
        route(BOT, _get_bot),
        route(BOT, _patch_bot, "PATCH"),
        route(BOT, _delete_bot, "DELETE"),
        route(f"{BOT}/register", _register, "POST"),
        route(f"{BOT}/commands", _commands),
        route(f"{BOT}/commands", _create_command, "POST"),
        route(COMMAND, _get_command),
        route(COMMAND, _patch_command, "PATCH"),
        route(COMMAND, _delete_command, "DELETE"),
        route(f"{BOT}/test-chat", _chat_send, "POST"),
        route(f"{BOT}/test-chat/restart", _chat_restart, "POST"),
        route(f"{BOT}/test-chat/{{chat_id}}", _chat_replies),
    ]


def _endpoint(
    portal: Portal, handler: Handler, write: bool
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            viewer = await portal.gate.viewer(request)
        except SessionError as error:
            return error_response(401, error.code, Translator("en")(f"session.{error.code}"))
        t = viewer.t
        if write and not viewer.session.admin:
            return error_response(403, "read_only", t("error.read_only"))
        try:
            return await handler(request, viewer)
        except PortalError as error:
            message, fields = t.message(error.message), t.fields(error.fields)
            return error_response(error.status, error.code, message, fields)
        except BodyTooLarge:
            return error_response(413, "too_large", t("error.too_large"))

    return run


async def json_body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, MAX_JSON_BYTES)
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise PortalError(Message("error.bad_json"))
    return data


def _id(request: Request) -> int:
    return int(request.path_params["connector_id"])


def _bot(request: Request) -> int:
    return int(request.path_params["bot_id"])


def _command(request: Request) -> int:
    return int(request.path_params["command_id"])


def _force(request: Request) -> bool:
    return request.query_params.get("force", "") in ("1", "true", "yes")


async def _list(items: Awaitable[list[Any]]) -> Response:
    return JSONResponse([_plain(item) for item in await items])


async def _one(item: Awaitable[Any], status: int = 200) -> Response:
    return JSONResponse(_plain(await item), status_code=status)


def _plain(item: Any) -> Any:
    return item.as_json() if hasattr(item, "as_json") else item.__dict__


async def _session(p: Portal, request: Request, viewer: Viewer) -> Response:
    s, tenant = viewer.session, viewer.tenant
    return JSONResponse(
        {
            "tenant": {
                "domain": tenant.domain,
                "status": tenant.status,
                "bot_api_version": tenant.bot_api_version or 1,
            },
            "user": {"id": s.user_id, "admin": s.admin, "language": s.language},
            "expires_at": s.expires_at,
        }
    )


async def _providers(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _list(p.connectors.providers())


async def _plan(p: Portal, request: Request, viewer: Viewer) -> Response:
    facts = await p.plan.facts(viewer.tenant)
    return JSONResponse(NO_SUBSCRIPTION if facts is None else facts.as_json())


async def _connectors(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _list(p.connectors.list(viewer.actor))


async def _get_connector(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.connectors.get(viewer.actor, _id(request)))


async def _create_connector(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.connectors.create(viewer.actor, await json_body(request)), 201)


async def _patch_connector(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.connectors.update(viewer.actor, _id(request), await json_body(request)))


async def _delete_connector(p: Portal, request: Request, viewer: Viewer) -> Response:
    await p.connectors.delete(viewer.actor, _id(request))
    return Response(status_code=204)


async def _check_draft(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _check(p, request, viewer, None)


async def _check_stored(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _check(p, request, viewer, _id(request))


async def _check(p: Portal, request: Request, viewer: Viewer, connector_id: int | None) -> Response:
    settings = await p.connectors.settings(viewer.actor, await json_body(request), connector_id)
    return JSONResponse(result_json(await p.checks.run(settings), viewer.t))


def result_json(result: CheckResult, t: Translator) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "message": t.message(result.message),
        "warnings": [t.message(w) for w in result.warnings],
    }


async def _bots(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _list(p.bots.list(viewer.actor))


async def _get_bot(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.bots.get(viewer.actor, _bot(request)))


async def _commands(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _list(p.commands.list(viewer.actor, _bot(request)))


async def _create_bot(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.bots.create(viewer.actor, await json_body(request)), 201)


async def _patch_bot(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.bots.update(viewer.actor, _bot(request), await json_body(request)))


async def _delete_bot(p: Portal, request: Request, viewer: Viewer) -> Response:
    await p.bots.delete(viewer.actor, _bot(request), force=_force(request))
    return Response(status_code=204)


async def _register(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.bots.register_again(viewer.actor, _bot(request)))


async def _get_command(p: Portal, request: Request, viewer: Viewer) -> Response:
    return await _one(p.commands.get(viewer.actor, _bot(request), _command(request)))


async def _create_command(p: Portal, request: Request, viewer: Viewer) -> Response:
    saved = await p.commands.create(viewer.actor, _bot(request), await json_body(request))
    return JSONResponse({**saved.command.as_json(), "sync_error": saved.sync_error}, 201)


async def _patch_command(p: Portal, request: Request, viewer: Viewer) -> Response:
    data = await json_body(request)
    saved = await p.commands.update(viewer.actor, _bot(request), _command(request), data)
    return JSONResponse({**saved.command.as_json(), "sync_error": saved.sync_error})


async def _delete_command(p: Portal, request: Request, viewer: Viewer) -> Response:
    force = _force(request)
    await p.commands.delete(viewer.actor, _bot(request), _command(request), force=force)
    return Response(status_code=204)


async def _chat_send(p: Portal, request: Request, viewer: Viewer) -> Response:
    bot = await p.bots.get(viewer.actor, _bot(request))
    chat_id = await p.testchat.send(viewer.tester, bot, await json_body(request))
    return JSONResponse({"chat_id": chat_id}, status_code=202)


async def _chat_replies(p: Portal, request: Request, viewer: Viewer) -> Response:
    await p.bots.get(viewer.actor, _bot(request))
    try:
        wait = float(request.query_params.get("wait", "0"))
    except ValueError:
        wait = 0.0
    replies = await p.testchat.replies(viewer.actor, request.path_params["chat_id"], wait)
    return JSONResponse({"replies": replies})


async def _chat_restart(p: Portal, request: Request, viewer: Viewer) -> Response:
    bot = await p.bots.get(viewer.actor, _bot(request))
    await p.testchat.restart(viewer.tester, bot)
    return Response(status_code=204)
