""" "Test connection": ask the provider something harmless and say plainly what is wrong.

Dify: ``GET /info`` with the key (bad key, unreachable, not a Dify app, wrong app type), then
``GET /parameters`` for input variables too short for what BitBot passes. Typebot: ``startChat``
creates a session and a result, so only the start URL's shape (checked on save) and that the
host answers are tested; the bot itself meets its first message in the test chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2

from admin_ui.portal.connectors import ConnectorSettings
from admin_ui.portal.validation import Message
from tenants.netguard import HostGuard, PrivateAddressError

TIMEOUT = httpx2.Timeout(10.0)
DIFY_MODES = {"dify_chatflow": "advanced-chat", "dify_workflow": "workflow"}
# Inputs BitBot fills that routinely exceed Dify's default limit of 48 characters.
LONG_INPUTS = (
    "MESSAGE", "COMMAND_PARAMS", "CHAT_TITLE", "CHAT_ENTITY_DATA_1", "CHAT_ENTITY_DATA_2",
    "CHAT_ENTITY_ID", "client_endpoint", "scope", "MESSAGE_BATCH", "user_access_token",
    "bot_access_token", "access_token",
)  # fmt: skip
ROOMY_INPUT = 256


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: Message
    warnings: list[Message] = field(default_factory=list)


class Unreachable(Exception):
    def __init__(self, message: Message) -> None:
        super().__init__(message.key)
        self.message = message


class ConnectionCheck:
    def __init__(self, http: httpx2.AsyncClient, guard: HostGuard) -> None:
        self._http = http
        self._guard = guard

    async def run(self, settings: ConnectorSettings) -> CheckResult:
        try:
            if settings.provider.type == "typebot":
                return await self._typebot(settings)
            return await self._dify(settings)
        except Unreachable as problem:
            return CheckResult(False, problem.message)

    async def _dify(self, settings: ConnectorSettings) -> CheckResult:
        if not settings.api_key:
            return CheckResult(False, Message("check.no_key"))
        base = settings.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {settings.api_key}"}
        response = await self._get(f"{base}/info", headers)
        body = _json(response)
        if response.status_code == 401:
            return CheckResult(False, Message("check.bad_key"))
        if response.status_code == 403:
            return CheckResult(False, Message("check.forbidden", {"reason": _said(body)}))
        if response.status_code != 200 or not isinstance(body.get("mode"), str):
            return CheckResult(False, _not_dify(response, base))
        expected = DIFY_MODES[settings.provider.type]
        if body["mode"] != expected:
            params = {"mode": body["mode"], "expected": expected}
            return CheckResult(False, Message("check.wrong_mode", params))
        name = str(body.get("name") or "")
        warnings = await self._dify_inputs(base, headers)
        return CheckResult(True, Message("check.dify_ok", {"name": name}), warnings)

    async def _dify_inputs(self, base: str, headers: dict[str, str]) -> list[Message]:
        response = await self._get(f"{base}/parameters", headers)
        body = _json(response)
        if response.status_code != 200:
            return [Message("check.parameters_failed", {"reason": _said(body)})]
        short = []
        for item in body.get("user_input_form") or []:
            for variable in item.values() if isinstance(item, dict) else []:
                if not isinstance(variable, dict) or variable.get("variable") not in LONG_INPUTS:
                    continue
                limit = variable.get("max_length")
                if isinstance(limit, int) and 0 < limit < ROOMY_INPUT:
                    short.append(f"{variable['variable']} ({limit})")
        return [Message("check.short_inputs", {"names": ", ".join(short)})] if short else []

    async def _typebot(self, settings: ConnectorSettings) -> CheckResult:
        url = settings.typebot_start_url
        if not url:
            return CheckResult(False, Message("check.no_start_url"))
        response = await self._get(url, {})
        host = urlsplit(url).hostname or ""
        if response.status_code >= 500:
            return CheckResult(False, Message("check.http_status", _status(response)))
        public_id = urlsplit(url).path.rstrip("/").split("/")[-2]
        return CheckResult(True, Message("check.typebot_ok", {"host": host, "bot": public_id}))

    async def _get(self, url: str, headers: dict[str, str]) -> httpx2.Response:
        host = urlsplit(url).hostname or url
        try:
            await self._guard.check(url)
        except PrivateAddressError as error:
            key = "url.unresolvable" if "does not resolve" in str(error) else "url.private"
            raise Unreachable(Message(key, {"host": host})) from None
        try:
            return await self._http.get(
                url, headers=headers, timeout=TIMEOUT, follow_redirects=False
            )
        except httpx2.TimeoutException:
            raise Unreachable(Message("check.timeout", {"host": host})) from None
        except httpx2.HTTPError:
            raise Unreachable(Message("check.unreachable", {"host": host})) from None


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _said(body: dict[str, Any]) -> str:
    return str(body.get("message") or body.get("code") or "")[:200]


def _status(response: httpx2.Response) -> dict[str, object]:
    return {"status": response.status_code, "reason": _said(_json(response))}


def _not_dify(response: httpx2.Response, base: str) -> Message:
    if response.status_code in (301, 302, 307, 308):
        return Message("check.redirect", {"location": response.headers.get("location", "")})
    if response.status_code in (200, 404, 405):
        return Message("check.not_dify", {"url": base})
    return Message("check.http_status", _status(response))
