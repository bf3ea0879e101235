"""Error reports to Sentry, when ``SENTRY_DSN`` is set, with secrets and chat text taken out.

No personal data, cookies or request bodies are collected; frame locals are off (they hold tokens
and messages under names no key rule can recognise). Whatever still reaches an event or a
breadcrumb — headers, query strings, extra, contexts, log messages, exception texts — passes
``tenants.scrub`` before it is sent, and events are tagged with the service and the ids bound to
the log context (request, tenant, bot, dialog).

Integrations: Starlette (request context and unhandled errors) and logging (records at ERROR
become events, from INFO breadcrumbs). The asyncio integration is left out on purpose: it reports
the exception of every task, including those its awaiting code handles (a failed delivery inside
``asyncio.gather``, a best-effort typing notice), which would flood Sentry with non-errors.
Crashes of tasks nobody awaits still arrive, through asyncio's own ERROR log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, cast

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.transport import Transport
from sentry_sdk.types import Breadcrumb, BreadcrumbHint, DataCollectionUserOptions, Event, Hint

from tenants.logs import current_context
from tenants.scrub import scrub_mapping
from tenants.settings import Settings

# Structural fields of an event that carry no user data.
EVENT_FIELDS = (
    "event_id",
    "timestamp",
    "start_timestamp",
    "level",
    "platform",
    "sdk",
    "release",
    "environment",
    "server_name",
    "type",
)
BREADCRUMB_FIELDS = ("type", "category", "level", "timestamp")
# Where a frame is and its source lines: code, not data (scrubbing would only garble it).
FRAME_FIELDS = (
    "filename",
    "abs_path",
    "function",
    "module",
    "lineno",
    "colno",
    "in_app",
    "context_line",
    "pre_context",
    "post_context",
)
# sentry-sdk 2.x's successor of ``send_default_pii=False``, at its strictest: no user, cookies,
# bodies or frame variables; headers and query parameters minus those Sentry deems sensitive.
DATA_COLLECTION: DataCollectionUserOptions = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {
        "request": {"mode": "denylist", "terms": ["cookie", "forwarded", "-ip", "via"]}
    },
    "http_bodies": [],
    "url_query_params": {"mode": "denylist"},
    "graphql": {"document": False, "variables": False},
    "gen_ai": {"inputs": False, "outputs": False},
    "database_query_data": False,
    "queues": False,
    "stack_frame_variables": False,
}


def init_sentry(
    settings: Settings,
    service: str,
    *,
    env: Mapping[str, str] | None = None,
    transport: Transport | None = None,
) -> bool:
    """Start reporting to Sentry if ``SENTRY_DSN`` is set; True when it was started.

    ``BITBOT_ENV`` and ``BITBOT_RELEASE`` (optional) name the environment and the release.
    ``transport`` replaces the HTTP transport (tests capture events locally with it).
    """
    if not settings.sentry_dsn:
        return False
    env = os.environ if env is None else env
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=env.get("BITBOT_ENV") or None,
        release=env.get("BITBOT_RELEASE") or None,
        data_collection=DATA_COLLECTION,
        max_request_body_size="never",
        include_local_variables=False,
        auto_enabling_integrations=False,
        integrations=[
            StarletteIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        before_send=_EventScrubber(service),
        before_breadcrumb=scrub_breadcrumb,
        transport=transport,
    )
    return True


class _EventScrubber:
    def __init__(self, service: str) -> None:
        self._service = service

    def __call__(self, event: Event, hint: Hint) -> Event | None:
        return scrub_event(event, self._service)


def scrub_event(event: Event, service: str = "") -> Event:
    """A copy of ``event`` fit to leave the process, tagged with service and bound ids."""
    raw = cast(Mapping[str, Any], event)
    clean = scrub_mapping(raw, keep=EVENT_FIELDS)
    for section in ("exception", "threads"):
        originals = (raw.get(section) or {}).get("values") or []
        cleaned = (clean.get(section) or {}).get("values") or []
        for original, item in zip(originals, cleaned, strict=True):
            frames = (original.get("stacktrace") or {}).get("frames")
            if frames:
                item["stacktrace"]["frames"] = [_frame(frame) for frame in frames]
    tags = clean.get("tags")
    tags = dict(tags) if isinstance(tags, dict) else {}
    ids = current_context()
    if "request_id" not in ids:
        headers = (clean.get("request") or {}).get("headers") or {}
        found = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
        if found:
            ids["request_id"] = found
    tags.update({key: str(value) for key, value in ids.items()})
    if service:
        tags["service"] = service
    clean["tags"] = tags
    return cast(Event, clean)


def _frame(frame: Mapping[str, Any]) -> dict[str, Any]:
    """A stack frame without its local variables, and with anything else scrubbed."""
    return scrub_mapping({k: v for k, v in frame.items() if k != "vars"}, keep=FRAME_FIELDS)


def scrub_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    try:
        clean = scrub_mapping(cast(Mapping[str, Any], crumb), keep=BREADCRUMB_FIELDS)
    except Exception:  # Sentry would keep the unscrubbed breadcrumb; drop it instead
        return None
    ids = current_context()
    if ids:
        data = clean.get("data")
        clean["data"] = {**(data if isinstance(data, dict) else {}), **ids}
    return cast(Breadcrumb, clean)
