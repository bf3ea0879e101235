"""``POST /b24/events``: the minimum before answering Bitrix24, which never retries a delivery.

Read the body (at most 1 MiB), check the envelope, resolve the tenant (cached), compare the
application token in constant time, and append the raw event to the queue. Everything else
happens in the worker, so the intake never waits for a provider.
"""

from __future__ import annotations

import logging
import time

from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.appender import Appender
from gateway.events import EVENT_NAMES
from gateway.tenantcache import TenantCache
from tenants.bitrix24.phpform import FormError, envelope
from tenants.forms import MAX_BODY_BYTES, BodyTooLarge
from tenants.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from tenants.queue import NewEntry, Queue

log = logging.getLogger("bitbot.intake")


QUEUED = b'{"status":"queued"}'


def rejected(status: int, code: str, message: str) -> JSONResponse:
    EVENTS_REJECTED.labels(code).inc()
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


INTAKE_PATH = "/b24/events"


def intake_routes(intake: EventIntake) -> list[Route]:
    return [Route(INTAKE_PATH, intake, methods=["POST"])]


def intake_shortcut(intake: EventIntake) -> Middleware:
    """For the gateway app's ``middleware``, last (innermost): see ``IntakeShortcut``."""
    return Middleware(IntakeShortcut, intake=intake)


class IntakeShortcut:
    """``POST /b24/events`` straight to the intake, past Starlette's exception middleware and
    router, which build a Request object and match the routes for every event.

    The layers outside it stay: an unexpected error still becomes a 500 and reaches Sentry with
    its request, and the request id is bound. Everything else, including another method on this
    path (405), goes the usual way through the router.
    """

    def __init__(self, app: ASGIApp, intake: EventIntake) -> None:
        self.app = app
        self._intake = intake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == INTAKE_PATH and scope["method"] == "POST":
            await self._intake(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class EventIntake:
    """The endpoint as a plain ASGI app: the busiest route skips building Request/Response."""

    def __init__(self, queue: Queue, tenants: TenantCache) -> None:
        self._appender = Appender(queue)
        self._tenants = tenants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self._handle(scope, receive)
        if answer is None:
            await send(_QUEUED_START)
            await send(_QUEUED_BODY)
        else:
            await answer(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive) -> Response | None:
        received_at = time.time()
        try:
            body = await _body(scope, receive)
            fields = envelope(body)
            event = _field(fields, "event", 64).upper()
            member_id = _field(fields, "auth[member_id]", 64)
            token = _field(fields, "auth[application_token]", 256)
        except BodyTooLarge:
            return rejected(413, "too_large", "the request body is larger than 1 MiB")
        except FormError as problem:
            return rejected(400, "bad_request", str(problem))
        if event not in EVENT_NAMES:
            log.warning("rejected unknown event %.64s", event)
            return rejected(
                400, "unknown_event", f"event {event} is not a bot event BitBot handles"
            )
        tenant = await self._tenants.authenticate(member_id, token)
        if tenant is None:
            return rejected(401, "unauthorized", "unknown portal or wrong application token")
        if tenant.status != "active":
            return rejected(403, "inactive", "BitBot is not active on this portal")
        entry = NewEntry("b24", tenant.id, member_id, body.decode(), received_at)
        await self._appender.append(entry)
        EVENTS_ACCEPTED.inc()
        return None


_QUEUED_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(QUEUED))],
}
_QUEUED_BODY: Message = {"type": "http.response.body", "body": QUEUED}


async def _body(scope: Scope, receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise FormError("the client went away before the body was read")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _field(fields: dict[str, str], name: str, limit: int) -> str:
    value = fields.get(name, "")
    if not value:
        raise FormError(f"{name} is missing")
    if len(value) > limit:
        raise FormError(f"{name} is longer than {limit} characters")
    return value
