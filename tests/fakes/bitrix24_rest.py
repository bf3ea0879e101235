"""The portal REST endpoint of the fake: routing, auth, limits, faults, ``batch`` and the record.

Order of checks for one call: portal moved (302) or deleted, leaky bucket, injected fault, access
token, method lookup (Chatbots 2.0 missing → ``ERROR_METHOD_NOT_FOUND``), scope, then the method.
Reference: shared/reference/bitrix24.md §2.4, §7.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.bitrix24_files import download_routes
from tests.fakes.bitrix24_methods import METHODS
from tests.fakes.bitrix24_methods_v2 import METHODS_V2
from tests.fakes.bitrix24_model import RestCall, RestError
from tests.fakes.bitrix24_openlines import METHODS_OPENLINES
from tests.fakes.bitrix24_params import Caller, Method, Params, param_bool, param_dict
from tests.fakes.bitrix24_php import nest, parse_query, php_array
from tests.fakes.bitrix24_portal import Portal

BATCH_LIMIT = 50
ALL_METHODS = {**METHODS, **METHODS_V2, **METHODS_OPENLINES}
_BY_LOWER_NAME = {name.lower(): name for name in ALL_METHODS}
# ``user.*`` methods accept any of the user scope family.
_SCOPE_FAMILIES = {"user": ("user", "user_brief", "user_basic")}

PortalFinder = Callable[[str], Portal | None]


@dataclass(frozen=True)
class Outcome:
    status: int
    result: Any = None
    error: RestError | None = None


def portal_routes(find_portal: PortalFinder) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await _serve_call(request, find_portal)

    return [
        *download_routes(find_portal),
        Route("/{portal}/rest/{method:path}", endpoint, methods=["GET", "POST"]),
    ]


async def _serve_call(request: Request, find_portal: PortalFinder) -> Response:
    domain = request.path_params["portal"]
    portal = find_portal(domain)
    if portal is None:
        # A real unknown host fails in DNS; this is the closest an HTTP fake can get.
        return JSONResponse({"error": "NOT_FOUND", "error_description": "No such portal"}, 404)
    if domain != portal.domain:
        return _moved(request, portal)
    method = _method_name(request.path_params["method"])
    try:
        params = await read_params(request)
    except ValueError:
        return _error_response(RestError(400, "INVALID_REQUEST", "Request body is malformed"))
    outcome = _admit(portal, method, params) or call(portal, method, params)
    if outcome.error is not None:
        return _error_response(outcome.error)
    return JSONResponse({"result": outcome.result, "time": time_block(portal.now())})


def _moved(request: Request, portal: Portal) -> Response:
    location = f"{portal.client_endpoint}{request.path_params['method']}"
    if request.url.query:
        location = f"{location}?{request.url.query}"
    return RedirectResponse(location, status_code=302)


def _admit(portal: Portal, method: str, params: Params) -> Outcome | None:
    """Portal-wide refusals that come before any method logic; recorded like any call."""
    error = None
    if portal.deleted:
        # DOCS give 500, PYSDK has seen 410 (§7.4); the fake follows DOCS.
        error = RestError(500, "PORTAL_DELETED", "Portal was deleted")
    elif not portal.bucket.take():
        error = RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    if error is None:
        return None
    _record(portal, method, params, None, error)
    return Outcome(error.status, error=error)


def _method_name(raw: str) -> str:
    name = raw.rstrip("/").removesuffix(".json")
    return _BY_LOWER_NAME.get(name.lower(), name)


async def read_params(request: Request) -> Params:
    """Query and body merged, as Bitrix24 reads them: JSON, urlencoded or multipart."""
    params = parse_query(request.url.query)
    content_type = request.headers.get("content-type", "")
    if "multipart/form-data" in content_type:
        form = await request.form()
        params.update(nest([(k, v) for k, v in form.multi_items() if isinstance(v, str)]))
        return params
    body = await request.body()
    if not body:
        return params
    if "json" in content_type:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        params.update(data)
    else:
        params.update(nest(parse_qsl(body.decode(), keep_blank_values=True)))
    return params


def time_block(now: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    return {
        "start": now,
        "finish": now,
        "duration": 0.0,
        "processing": 0.0,
        "date_start": stamp,
        "date_finish": stamp,
        "operating_reset_at": int(now) + 600,
        "operating": 0,
    }


def _error_response(error: RestError) -> Response:
    body = {"error": error.error, "error_description": error.description}
    return JSONResponse(body, status_code=error.status)


# -- one call -------------------------------------------------------------------------------


def call(portal: Portal, method: str, params: Params, batch_key: str | None = None) -> Outcome:
    """Run one method (or a batch) for the portal and record it.

    A batch is recorded before its sub-commands, so ``portal.calls`` reads in arrival order.
    """
    token = _token(params)
    caller = _caller(portal, token)
    position = len(portal.calls)
    try:
        result = _invoke(portal, method, params, token, caller, batch_key)
    except RestError as error:
        _record(portal, method, params, caller, error, batch_key, position)
        return Outcome(error.status, error=error)
    _record(portal, method, params, caller, None, batch_key, position)
    return Outcome(200, result=result)


def _invoke(
    portal: Portal,
    method: str,
    params: Params,
    token: str,
    caller: Caller | None,
    batch_key: str | None,
) -> Any:
    fault = portal.take_fault(method)
    if fault is not None:
        raise RestError(fault.status, fault.error, fault.description)
    caller = _authenticate(portal, token, caller)
    arguments = {k: v for k, v in params.items() if k != "auth"}
    if method == "batch":
        if batch_key is not None:
            raise RestError(
                405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
            )
        return _batch(portal, arguments, token)
    spec = _lookup(portal, method)
    return spec.handler(portal, arguments, caller)


def _token(params: Params) -> str:
    auth = params.get("auth")
    return auth if isinstance(auth, str) else ""


def _caller(portal: Portal, token: str) -> Caller | None:
    grant = portal.token_store.access_grant(token) if token else None
    if grant is None or grant.member_id != portal.member_id:
        return None
    user = portal.users.get(grant.user_id)
    return Caller(token, user) if user is not None else None


def _authenticate(portal: Portal, token: str, caller: Caller | None) -> Caller:
    if caller is None:
        raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
    if not portal.installed:
        raise RestError(401, "invalid_token", "Unable to get application by token")
    grant = portal.token_store.access_grant(token)
    if grant is None or portal.token_store.is_expired(grant):
        raise RestError(401, "expired_token", "The access token provided has expired.")
    return caller


def _lookup(portal: Portal, method: str) -> Method:
    spec = ALL_METHODS.get(method)
    if spec is None or (method.startswith("imbot.v2.") and not portal.v2):
        # HTTP status is undocumented (§7.4); 404 is what Bitrix24 answers for unknown methods.
        raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    granted = _SCOPE_FAMILIES.get(spec.scope, (spec.scope,))
    if spec.scope != "basic" and not set(granted) & set(portal.scopes):
        raise RestError(
            403,
            "insufficient_scope",
            "The request requires higher privileges than provided by the access token",
        )
    return spec


def _record(
    portal: Portal,
    method: str,
    params: Params,
    caller: Caller | None,
    error: RestError | None,
    batch_key: str | None = None,
    position: int | None = None,
) -> None:
    portal.calls.insert(
        len(portal.calls) if position is None else position,
        RestCall(
            method=method,
            params={k: v for k, v in params.items() if k != "auth"},
            auth=_token(params) or None,
            user_id=caller.user.id if caller else None,
            status=error.status if error else 200,
            error=error.error if error else None,
            at=portal.now(),
            batch_key=batch_key,
        ),
    )


# -- batch (§7.3) ---------------------------------------------------------------------------


def _batch(portal: Portal, params: Params, token: str) -> Any:
    commands = param_dict(params, "cmd")
    if len(commands) > BATCH_LIMIT:
        raise RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
    halt = param_bool(params, "halt")
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    times: dict[str, Any] = {}
    for key, command in commands.items():
        method, sub_params = _parse_command(str(command), token)
        outcome = call(portal, method, sub_params, batch_key=key)
        times[key] = time_block(portal.now())
        if outcome.error is None:
            results[key] = outcome.result
            continue
        errors[key] = {"error": outcome.error.error, "error_description": outcome.error.description}
        if halt:
            break
    return {
        "result": php_array(results),
        "result_error": php_array(errors),
        "result_total": [],
        "result_next": [],
        "result_time": php_array(times),
    }


def _php_lists(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        out[key] = php_array(_php_lists(value)) if isinstance(value, dict) and value else value
    return out


def _parse_command(command: str, token: str) -> tuple[str, Params]:
    """``"imbot.message.add?BOT_ID=1&DIALOG_ID=chat7"`` → method and PHP-parsed parameters."""
    raw_method, _, query = command.partition("?")
    # PHP sees ``A[0]=x&A[1]=y`` as the same array a JSON body's ``"A": ["x", "y"]`` gives.
    params = _php_lists(parse_query(query))
    params.setdefault("auth", token)
    return _method_name(raw_method), params
