"""Typebot adapter: ``startChat`` opens a session, ``continueChat`` answers its pending input.

Reference: shared/reference/dify-typebot.md Part B. Sessions answer ``404`` once Typebot deleted or
expired them; the adapter then starts a new one with the same message, once.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlsplit

from gateway.providers.base import Button, ProviderConfig, ProviderReply, Sessions, TurnRequest
from gateway.providers.errors import ProviderError, ProviderRejected, ProviderUnavailable
from gateway.providers.http import ProviderHttp, Timeouts

JSON = dict[str, Any]
TYPEBOT = "Typebot"
_START_PATH = "/api/v1/typebots/"
# Typebot converts rich text to CommonMark itself; rich text still arrives from older servers.
_TEXT_FORMAT = "markdown"


class TypebotAdapter:
    """``typebot``: the session id lives in ``Sessions`` until the flow ends."""

    def __init__(
        self,
        http: ProviderHttp,
        sessions: Sessions,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
        turn_timeout_s: float = 300.0,
    ) -> None:
        self._http = http
        self._sessions = sessions
        # Typebot runs AI blocks server-side before answering, so the read wait is generous.
        self._timeouts = Timeouts(connect_s=connect_timeout_s, read_s=read_timeout_s)
        self._turn_timeout_s = turn_timeout_s

    async def run(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply:
        try:
            async with asyncio.timeout(self._turn_timeout_s):
                return await self._turn(config, request)
        except TimeoutError as error:
            raise ProviderUnavailable(
                f"Typebot did not finish the turn within {self._turn_timeout_s:g} s",
                code="turn_timeout",
            ) from error

    async def _turn(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply:
        start_url = _start_url(config)
        message = {"type": "text", "text": request.query}
        session_id = None if request.greeting else await self._sessions.get(request.session_key)
        if session_id is not None:
            url = f"{_viewer_base(start_url)}/api/v1/sessions/{quote(session_id, safe='')}"
            body = {"message": message, "textBubbleContentFormat": _TEXT_FORMAT}
            try:
                answer = await self._post(config, f"{url}/continueChat", body)
            except ProviderRejected as error:
                if error.status != 404:
                    raise
                await self._sessions.forget(request.session_key)
            else:
                return await self._reply(request, session_id, answer)
        start: JSON = {
            "prefilledVariables": dict(request.inputs),
            "textBubbleContentFormat": _TEXT_FORMAT,
        }
        if not request.greeting:
            # startChat's message answers the flow's first input; a greeting has nothing to answer.
            start["message"] = message
        answer = await self._post(config, start_url, start)
        session_id = answer.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            raise ProviderUnavailable("Typebot started no session", code="no_session")
        return await self._reply(request, session_id, answer)

    async def _reply(self, request: TurnRequest, session_id: str, answer: JSON) -> ProviderReply:
        reply = chat_reply(answer)
        if reply.session_ended:
            await self._sessions.forget(request.session_key)
        else:
            await self._sessions.set(request.session_key, session_id, request.session_ttl_s)
        return reply

    async def _post(self, config: ProviderConfig, url: str, body: JSON) -> JSON:
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        answer = await self._http.send(
            "POST", url, provider=TYPEBOT, timeouts=self._timeouts, json_body=body, headers=headers
        )
        payload = answer.json()
        if answer.status != 200:
            raise typebot_error(answer.status, payload)
        if not isinstance(payload, dict):
            raise ProviderUnavailable("Typebot sent an unreadable answer", code="bad_answer")
        return payload


def typebot_error(status: int, body: object) -> ProviderError:
    """Map a non-200 answer; the free-text message is not copied, it may echo the request."""
    code = str(body.get("code") or "") if isinstance(body, dict) else ""
    reason = f"{status} {code}".rstrip()
    if status == 401:
        return ProviderRejected("the Typebot API key is not accepted", code, status)
    if status in (408, 429) or status >= 500:
        return ProviderUnavailable(f"Typebot is unavailable ({reason})", code, status)
    if status == 404:
        return ProviderRejected(
            "Typebot does not know this bot; check the start URL and that it is published",
            code,
            status,
        )
    return ProviderRejected(f"Typebot refused the request ({reason})", code, status)


def chat_reply(answer: JSON) -> ProviderReply:
    """Every bubble as text, a pending choice as buttons; no pending input ends the session."""
    texts = (_bubble_text(bubble) for bubble in _objects(answer.get("messages")))
    pending = answer.get("input")
    buttons: tuple[Button, ...] = ()
    if isinstance(pending, dict) and pending.get("type") == "choice input":
        labels = [item.get("content") for item in _objects(pending.get("items"))]
        buttons = tuple(
            Button(label, label) for label in labels if isinstance(label, str) and label
        )
    return ProviderReply(
        text="\n\n".join(text for text in texts if text),
        buttons=buttons,
        session_ended=not _waiting(answer),
    )


def flatten_rich_text(nodes: object) -> str:
    """Plate rich text as Markdown: paragraphs as lines, ``**bold**``, ``*italic*``, links."""
    return "\n".join(_block(node, 0) for node in _objects(nodes))


def _waiting(answer: JSON) -> bool:
    if isinstance(answer.get("input"), dict):
        return True
    if any(
        action.get("expectsDedicatedReply") for action in _objects(answer.get("clientSideActions"))
    ):
        return True
    return any(_waits_for_event(bubble) for bubble in _objects(answer.get("messages")))


def _waits_for_event(bubble: JSON) -> bool:
    if bubble.get("type") == "custom-embed":
        return True
    content = bubble.get("content")
    wait = content.get("waitForEvent") if isinstance(content, dict) else None
    return bubble.get("type") == "embed" and isinstance(wait, dict) and bool(wait.get("isEnabled"))


def _bubble_text(bubble: JSON) -> str:
    content = bubble.get("content")
    if not isinstance(content, dict):
        return ""
    if bubble.get("type") == "text":
        if isinstance(content.get("markdown"), str):
            return str(content["markdown"])
        return flatten_rich_text(content.get("richText"))
    if bubble.get("type") in ("image", "video", "audio"):
        return str(content.get("url") or "")
    return ""


def _block(node: JSON, depth: int) -> str:
    kind = node.get("type")
    if kind in ("ul", "ol"):
        items = enumerate(_objects(node.get("children")), start=1)
        return "\n".join(
            _list_item(item, f"{number}." if kind == "ol" else "-", depth) for number, item in items
        )
    return _inline(node)


def _list_item(item: JSON, marker: str, depth: int) -> str:
    head: list[str] = []
    nested: list[str] = []
    for child in _objects(item.get("children")):
        if child.get("type") in ("ul", "ol"):
            nested.append(_block(child, depth + 1))
        else:
            head.append(_inline(child))
    return "\n".join([f"{'  ' * depth}{marker} {''.join(head)}", *nested])


def _inline(node: JSON) -> str:
    if "text" in node:
        return _leaf(node)
    inner = "".join(_inline(child) for child in _objects(node.get("children")))
    url = node.get("url")
    if node.get("type") == "a" and isinstance(url, str) and url:
        return f"[{inner or url}]({url})"
    return inner


def _leaf(leaf: JSON) -> str:
    text = str(leaf.get("text") or "")
    core = text.strip()
    mark = ("**" if leaf.get("bold") else "") + ("*" if leaf.get("italic") else "")
    if not core or not mark:
        return text
    # Markdown emphasis must hug its text: "**Hi **" does not render, so spaces go outside.
    start = text.index(core)
    return f"{text[:start]}{mark}{core}{mark[::-1]}{text[start + len(core) :]}"


def _start_url(config: ProviderConfig) -> str:
    url = config.typebot_start_url
    if not url or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ProviderRejected("the Typebot start URL is missing or invalid", code="no_start_url")
    return url


def _viewer_base(start_url: str) -> str:
    """The start URL's origin, keeping a path prefix a self-hosted viewer may be served under."""
    parts = urlsplit(start_url)
    prefix = parts.path.split(_START_PATH)[0] if _START_PATH in parts.path else ""
    return f"{parts.scheme}://{parts.netloc}{prefix.rstrip('/')}"


def _objects(value: object) -> list[JSON]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
