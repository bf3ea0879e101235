"""``POST /b24/events``: the minimum before answering Bitrix24, which never retries a delivery.

Read the body (at most 1 MiB), check the envelope, resolve the tenant (cached), compare the
application token in constant time, and append the raw event to the queue. Everything else
happens in the worker, so the intake never waits for a provider.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.appender import Appender
from gateway.events import EVENT_NAMES
from gateway.tenantcache import TenantCache
from tenants.bitrix24.phpform import FormError, envelope
from tenants.forms import BodyTooLarge, read_body
from tenants.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from tenants.queue import NewEntry, Queue

log = logging.getLogger("bitbot.intake")


QUEUED = b'{"status":"queued"}'


def rejected(status: int, code: str, message: str) -> JSONResponse:
    EVENTS_REJECTED.labels(code).inc()
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def intake_routes(queue: Queue, tenants: TenantCache) -> list[Route]:
    appender = Appender(queue)

    async def events(request: Request) -> Response:
        received_at = time.time()
        try:
            body = await read_body(request)
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
        tenant = await tenants.authenticate(member_id, token)
        if tenant is None:
            return rejected(401, "unauthorized", "unknown portal or wrong application token")
        if tenant.status != "active":
            return rejected(403, "inactive", "BitBot is not active on this portal")
        await appender.append(NewEntry("b24", tenant.id, member_id, body.decode(), received_at))
        EVENTS_ACCEPTED.inc()
        return Response(QUEUED, media_type="application/json")

    return [Route("/b24/events", events, methods=["POST"])]


def _field(fields: dict[str, str], name: str, limit: int) -> str:
    value = fields.get(name, "")
    if not value:
        raise FormError(f"{name} is missing")
    if len(value) > limit:
        raise FormError(f"{name} is longer than {limit} characters")
    return value
