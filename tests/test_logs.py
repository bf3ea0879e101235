"""Structured logs: whole turns through the real pipeline leave JSON lines with ids, no secret."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from admin_ui import create_admin_app
from tenants.errors import SettingsError
from tenants.logs import bound_context, configure_logging
from tenants.requestid import REQUEST_ID
from tenants.runtime import Runtime
from tenants.scrub import forget_secrets, remember_secrets
from tenants.store import TenantStore
from tests.conftest import B24_SECRET, HASH_KEY, KEY_A, Backend
from tests.fakes.bitrix24 import Portal, message_add
from tests.fakes.dify import DifyApp, HttpError
from tests.log_capture import captured_logs, json_lines
from tests.pipeline_stack import Stack, pipeline_stack, replies, until

DIFY_KEY = "app-dify-key-5c1e0a9b7d"
FAILING_DIFY_KEY = "app-dify-key-failing-3e8f"
CUSTOMER_TEXT = "where is my parcel 4711"
FIELDS = ("timestamp", "level", "logger", "event", "service")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


def token_values(pairs: list[tuple[str, str]]) -> set[str]:
    return {value for key, value in pairs if "token" in key.lower() and value}


async def post(
    stack: Stack, pairs: list[tuple[str, str]], request_id: str | None = None
) -> httpx2.Response:
    headers = dict(FORM)
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return await stack.http.post(stack.events_url, content=urlencode(pairs), headers=headers)


async def test_a_whole_turn_logs_json_lines_with_ids_and_no_secret(stack: Stack) -> None:
    with captured_logs("pipeline") as buffer:
        stack.dify.add_app(DifyApp(DIFY_KEY, answer="On its way"))
        stack.dify.add_app(DifyApp(FAILING_DIFY_KEY)).fault = HttpError(500)
        portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
        bot = portal.add_v1_bot("support", stack.events_url)
        failing_bot = portal.add_v1_bot("sales", stack.events_url)
        tenant = await stack.install(portal)
        await stack.add_bot(tenant, bot, api_key=DIFY_KEY, pass_tokens=True)
        await stack.add_bot(tenant, failing_bot, api_key=FAILING_DIFY_KEY, fallback_text="Later")
        installer = (portal.auth.access_token, portal.auth.refresh_token)
        customer = portal.add_customer("Ann", "Lee")
        chat, other_chat = portal.open_line_chat(customer), portal.open_line_chat(customer)
        portal.expire_access_tokens()  # the first call refreshes: secrets in the OAuth URL
        stack.start_worker()

        answered = message_add(portal, bot, chat, customer, CUSTOMER_TEXT)
        failed = message_add(portal, failing_bot, other_chat, customer, CUSTOMER_TEXT)
        forged = [
            (k, "forged-token-0f3c9" if k == "auth[application_token]" else v)
            for k, v in message_add(portal, bot, chat, customer, "hello")
        ]
        sent = await post(stack, answered, request_id="req-logs-1")
        unnamed = await post(stack, failed)
        rejected = await post(stack, forged, request_id="no spaces allowed")
        await replies(portal, chat.dialog_id)
        await replies(portal, other_chat.dialog_id)
        await until(lambda: not any(w.in_flight for w, _, _ in stack.workers), what="idle")
        careless_logging(portal, answered)
        stored = await TenantStore(
            stack.runtime.engine, stack.runtime.vault, stack.runtime.hasher
        ).tokens(tenant.id)
        assert stored is not None

    secrets = {
        *installer,
        stored.access_token,
        stored.refresh_token,
        portal.application_token,
        *token_values(answered),
        *token_values(failed),
        *token_values(forged),
        "forged-token-0f3c9",
        DIFY_KEY,
        FAILING_DIFY_KEY,
        KEY_A,
        HASH_KEY,
        B24_SECRET,
    }
    assert stored.access_token not in installer  # the refresh really happened
    text = buffer.getvalue()
    leaked = sorted(secret for secret in secrets if secret in text)
    assert leaked == []
    assert CUSTOMER_TEXT not in text
    lines = json_lines(buffer)
    assert all(all(field in line for field in FIELDS) for line in lines)
    assert {line["service"] for line in lines} == {"pipeline"}
    # The secrets were really on their way to the log, and were masked there.
    assert any("client_secret=[redacted]" in line["event"] for line in lines)
    assert any("refresh_token=[redacted]" in line["event"] for line in lines)

    assert (sent.status_code, sent.headers["x-request-id"]) == (200, "req-logs-1")
    generated = unnamed.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert rejected.status_code == 401
    assert re.fullmatch(r"[0-9a-f]{32}", rejected.headers["x-request-id"])
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    for request_id in ("req-logs-1", generated, rejected.headers["x-request-id"]):
        assert any(line.get("request_id") == request_id for line in access), request_id

    (failure,) = [line for line in lines if "turn for bot" in line["event"]]
    assert failure["level"] == "warning"
    assert (failure["tenant_id"], failure["bot_id"], failure["dialog_id"]) == (
        tenant.id,
        failing_bot.id,
        other_chat.dialog_id,
    )


def careless_logging(portal: Portal, pairs: list[tuple[str, str]]) -> None:
    """What a careless change might log; the pipeline must mask it all."""
    auth = {k: v for k, v in pairs if k.startswith("auth[") or "token" in k}
    careless = logging.getLogger("bitbot.careless")
    careless.warning("event auth block %s", auth)
    careless.info(
        "calling %s", f"{portal.client_endpoint}user.admin?auth={portal.auth.access_token}"
    )
    careless.info("headers %s", {"Authorization": f"Bearer {DIFY_KEY}"})
    structlog.get_logger("bitbot.careless").info(
        "refreshed",
        access_token=portal.auth.access_token,
        nested={"AUTH_ID": portal.auth.access_token, "REFRESH_ID": portal.auth.refresh_token},
        text=CUSTOMER_TEXT,
        inputs={"MESSAGE": CUSTOMER_TEXT},
    )
    try:
        raise RuntimeError(f"portal said no to access_token={portal.auth.access_token}")
    except RuntimeError:
        careless.exception("call failed")


async def test_console_rendering_for_a_terminal_is_scrubbed_too() -> None:
    with captured_logs("run", as_json=False) as buffer:
        log = logging.getLogger("bitbot.console")
        log.warning("token refresh %s", {"refresh_token": "rt-console-9a8b7c6d"})
        try:
            raise ValueError("client_secret=cs-console-1f2e3d4c")
        except ValueError:
            log.exception("refresh failed")
    text = buffer.getvalue()
    assert "refresh failed" in text
    assert "Traceback" in text
    assert "rt-console-9a8b7c6d" not in text
    assert "cs-console-1f2e3d4c" not in text
    assert not text.lstrip().startswith("{")


async def test_registered_process_secrets_are_masked_anywhere() -> None:
    key = base64.b64encode(b"K" * 32).decode()
    remember_secrets(b"K" * 32, "plain-client-secret-value")
    try:
        with captured_logs("worker") as buffer:
            logging.getLogger("bitbot.x").error("env: %s %s", key, "plain-client-secret-value")
    finally:
        forget_secrets()
    (line,) = json_lines(buffer)
    assert line["event"] == "env: [redacted] [redacted]"


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(SettingsError, match="BITBOT_LOG_LEVEL"):
        configure_logging("gateway", level="LOUD")


def request_app(seen: list[dict[str, Any]]) -> Starlette:
    async def page(_: Request) -> PlainTextResponse:
        seen.append(dict(structlog.contextvars.get_contextvars()))
        logging.getLogger("bitbot.page").info("page served")
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/page", page)], middleware=[REQUEST_ID])
    return Starlette(routes=[Mount("/app", inner)], middleware=[REQUEST_ID])


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123_X.y", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
    ],
)
async def test_request_id_is_taken_when_sane_and_made_otherwise(given: str, kept: bool) -> None:
    seen: list[dict[str, Any]] = []
    transport = httpx2.ASGITransport(app=request_app(seen))
    with captured_logs("admin") as buffer:
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/app/page", headers={"X-Request-ID": given})
    echoed = response.headers["x-request-id"]
    assert response.headers.get_list("x-request-id") == [echoed]  # nested apps: one id
    if kept:
        assert echoed == given
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    assert seen == [{"request_id": echoed}]
    (line,) = [line for line in json_lines(buffer) if line["logger"] == "bitbot.page"]
    assert line["request_id"] == echoed
    assert structlog.contextvars.get_contextvars() == {}  # nothing stays bound after it


def test_bound_context_is_undone_after_the_block() -> None:
    with bound_context(tenant_id=7, bot_id=3):
        assert structlog.contextvars.get_contextvars() == {"tenant_id": 7, "bot_id": 3}
    assert structlog.contextvars.get_contextvars() == {}
    structlog.contextvars.bind_contextvars(tenant_id=1)
    try:
        with bound_context(tenant_id=2, dialog_id="chat7"), pytest.raises(RuntimeError):
            raise RuntimeError("the block fails")
        assert structlog.contextvars.get_contextvars() == {"tenant_id": 1}
    finally:
        structlog.contextvars.clear_contextvars()


async def test_the_admin_service_carries_request_ids(
    migrated: Runtime, http: httpx2.AsyncClient
) -> None:
    transport = httpx2.ASGITransport(app=create_admin_app(migrated, http=http))
    async with httpx2.AsyncClient(transport=transport, base_url="http://admin") as client:
        response = await client.get("/healthz", headers={"X-Request-ID": "req-admin-1"})
    assert response.headers["x-request-id"] == "req-admin-1"
