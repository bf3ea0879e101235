"""Sentry: errors in a request and in a worker turn arrive without tokens, keys or chat text."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from gateway.providers.base import ProviderConfig, ProviderReply, TurnRequest
from tenants.sentry import init_sentry, scrub_event
from tenants.settings import Settings
from tests.conftest import B24_SECRET, HASH_KEY, KEY_A, Backend
from tests.fakes.bitrix24 import Portal, message_add
from tests.log_capture import captured_logs
from tests.pipeline_stack import Stack, pipeline_stack, until

DSN = "https://public@sentry.example.com/1"
DIFY_KEY = "app-dify-key-sentry-77a1"
CUSTOMER_TEXT = "my card number is in this message"


class CaptureTransport(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        found = [envelope.get_event() for envelope in self.envelopes]
        return [dict(event) for event in found if event is not None]

    def raw(self) -> str:
        return "".join(
            envelope.serialize().decode("utf-8", "replace") for envelope in self.envelopes
        )


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


@pytest.fixture
def sentry(stack: Stack) -> Iterator[CaptureTransport]:
    transport = CaptureTransport()
    settings = dataclasses.replace(stack.runtime.settings, sentry_dsn=DSN)
    env = {"BITBOT_ENV": "test", "BITBOT_RELEASE": "bitbot@0.0.0-test"}
    assert init_sentry(settings, "pipeline", env=env, transport=transport)
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
        for scope in (sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
            scope.clear()


def assert_clean(transport: CaptureTransport, secrets: set[str]) -> None:
    raw = transport.raw()
    leaked = sorted(secret for secret in secrets if secret and secret in raw)
    assert leaked == []
    assert CUSTOMER_TEXT not in raw


def tokens_in(pairs: list[tuple[str, str]]) -> set[str]:
    return {value for key, value in pairs if "token" in key.lower()}


def fixed_secrets() -> set[str]:
    return {DIFY_KEY, KEY_A, HASH_KEY, B24_SECRET}


async def test_an_error_in_a_request_is_reported_without_secrets(
    stack: Stack, sentry: CaptureTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot, api_key=DIFY_KEY)
    customer = portal.add_customer("Ann")
    pairs = message_add(portal, bot, portal.open_line_chat(customer), customer, CUSTOMER_TEXT)

    async def broken(_: object, member_id: str, application_token: str) -> None:
        raise RuntimeError(f"tenant store failed for {member_id}: token={application_token}")

    monkeypatch.setattr("gateway.tenantcache.TenantCache.authenticate", broken)
    access, refresh = portal.auth.access_token, portal.auth.refresh_token
    query = urlencode({"auth": access, "access_token": access, "REFRESH_ID": refresh})
    with captured_logs("gateway", level="INFO"):
        response = await stack.http.post(
            f"{stack.events_url}?{query}",
            content=urlencode(pairs),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Bearer {DIFY_KEY}",
                "Cookie": f"bitbot_session={refresh}",
                "X-Api-Key": B24_SECRET,
                "X-Request-ID": "req-sentry-1",
            },
        )
    assert response.status_code == 500
    sentry_sdk.flush()

    (event,) = [e for e in sentry.events() if _exception_type(e) == "RuntimeError"]
    assert_clean(sentry, {access, refresh, portal.application_token, *tokens_in(pairs)})
    assert_clean(sentry, fixed_secrets())
    assert event["tags"]["service"] == "pipeline"
    assert event["tags"]["request_id"] == "req-sentry-1"
    assert (event["environment"], event["release"]) == ("test", "bitbot@0.0.0-test")
    assert event["request"]["url"].endswith("/b24/events")
    assert "[redacted]" in event["request"]["query_string"]
    assert "data" not in event["request"] or not event["request"]["data"]
    assert "token=[redacted]" in event["exception"]["values"][0]["value"]


class CarelessProvider:
    """A provider that puts everything it knows into Sentry, then crashes."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def _typing_shown(self) -> bool:
        return any(c.error is None for c in self.portal.calls_of("imbot.chat.sendTyping"))

    async def run(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply:
        # "Typing" leaves first, and its expired token is refreshed: that URL is a breadcrumb.
        await until(self._typing_shown, what="typing")
        sentry_sdk.set_context("turn", {"inputs": request.inputs, "query": request.query})
        sentry_sdk.set_extra("provider", {"api_key": config.api_key, "MESSAGE": request.query})
        sentry_sdk.add_breadcrumb(
            category="provider",
            message=f"POST {config.base_url}/chat-messages?api_key={config.api_key}",
            data={"text": request.query, "headers": {"Authorization": f"Bearer {config.api_key}"}},
        )
        logging.getLogger("bitbot.provider").info("inputs %s", request.inputs)
        token = request.inputs.get("bot_access_token", "")
        raise RuntimeError(
            f"adapter bug; access_token={token} Authorization: Bearer {config.api_key}"
        )


async def test_a_crashed_worker_turn_is_reported_without_secrets_or_chat_text(
    stack: Stack, sentry: CaptureTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    monkeypatch.setattr("gateway.turns.provider_for", lambda *_: CarelessProvider(portal))
    bot = portal.add_v1_bot("support", stack.events_url)
    tenant = await stack.install(portal)
    await stack.add_bot(tenant, bot, api_key=DIFY_KEY, pass_tokens=True)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    installer = {portal.auth.access_token, portal.auth.refresh_token}
    portal.expire_access_tokens()  # the refresh URL (client secret, refresh token) is a breadcrumb
    pairs = message_add(portal, bot, chat, customer, CUSTOMER_TEXT)
    with captured_logs("worker"):  # DEBUG: httpx2 logs each URL, the OAuth one included
        stack.start_worker()
        response = await stack.http.post(
            stack.events_url,
            content=urlencode(pairs),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        await until(lambda: _crash_reported(sentry), what="the crash report")
        await until(lambda: not any(w.in_flight for w, _, _ in stack.workers), what="idle")
    sentry_sdk.flush()

    (event,) = [e for e in sentry.events() if _exception_type(e) == "RuntimeError"]
    assert_clean(sentry, {*installer, portal.application_token, *tokens_in(pairs)})
    assert_clean(sentry, fixed_secrets())
    tags = event["tags"]
    assert (tags["tenant_id"], tags["bot_id"], tags["dialog_id"]) == (
        str(tenant.id),
        str(bot.id),
        chat.dialog_id,
    )
    assert event["logentry"]["message"] == "turn crashed"
    assert event["contexts"]["turn"] == {"inputs": "[removed]", "query": "[removed]"}
    assert event["extra"]["provider"] == {"api_key": "[redacted]", "MESSAGE": "[removed]"}
    crumbs = event["breadcrumbs"]["values"]
    (careless,) = [c for c in crumbs if c.get("category") == "provider"]
    assert careless["data"]["text"] == "[removed]"
    assert "api_key=[redacted]" in careless["message"]
    assert any("client_secret=[redacted]" in (c.get("message") or "") for c in crumbs)
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert all("vars" not in frame for frame in frames)


def _crash_reported(transport: CaptureTransport) -> bool:
    return any(_exception_type(e) == "RuntimeError" for e in transport.events())


def _exception_type(event: dict[str, Any]) -> str:
    values = (event.get("exception") or {}).get("values") or [{}]
    return str(values[-1].get("type", ""))


def test_without_a_dsn_nothing_is_started(settings: Settings) -> None:
    assert settings.sentry_dsn is None
    assert init_sentry(settings, "gateway") is False
    assert not sentry_sdk.get_client().is_active()


def test_every_part_of_an_event_is_scrubbed() -> None:
    secret = "tok-0a1b2c3d4e5f"
    event: Any = {
        "event_id": "e1",
        "message": f"refresh failed: refresh_token={secret}",
        "logentry": {"message": "call %s", "params": [f"https://p/rest/x?auth={secret}"]},
        "request": {
            "url": "https://gw/b24/events",
            "query_string": f"auth%5Baccess_token%5D={secret}&x=1",
            "headers": {"Authorization": f"Bearer {secret}", "X-Request-ID": "r-1"},
            "cookies": {"bitbot_session": secret},
            "data": {"auth": {"access_token": secret}, "data[PARAMS][MESSAGE]": CUSTOMER_TEXT},
        },
        "extra": {"payload": {"nested": {"APPLICATION_TOKEN": secret, "text": CUSTOMER_TEXT}}},
        "contexts": {"dify": {"inputs": {"MESSAGE": CUSTOMER_TEXT}, "api_key": secret}},
        "breadcrumbs": {"values": [{"message": f"Bearer {secret}", "data": {"query": "hi"}}]},
        "exception": {
            "values": [
                {
                    "type": "RuntimeError",
                    "value": f"client_secret={secret}",
                    "stacktrace": {
                        "frames": [
                            {
                                "function": "refresh",
                                "context_line": "    token = store.token(auth=auth)",
                                "vars": {"token": secret},
                            }
                        ]
                    },
                }
            ]
        },
    }
    clean: Any = scrub_event(event, "admin")
    text = json.dumps(clean)
    assert secret not in text
    assert CUSTOMER_TEXT not in text
    assert clean["tags"] == {"request_id": "r-1", "service": "admin"}
    assert clean["request"]["headers"]["X-Request-ID"] == "r-1"
    (frame,) = clean["exception"]["values"][0]["stacktrace"]["frames"]
    assert frame == {"function": "refresh", "context_line": "    token = store.token(auth=auth)"}
    assert clean["breadcrumbs"]["values"][0]["data"]["query"] == "[removed]"
