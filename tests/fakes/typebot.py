"""A recording fake of Typebot's Chat API (``startChat`` / ``continueChat``) hosting several bots.

Protocol: shared/reference/dify-typebot.md Part B. Usage::

    typebot = FakeTypebot()
    greeting = Step([TextBubble("Hello {{FIRST_NAME}}")], TextInput(variable="city"))
    typebot.add_typebot(Typebot("my-bot", [greeting]))
    async with serve(typebot.asgi) as base_url:
        ...  # POST f"{base_url}/api/v1/typebots/my-bot/startChat"

Assumption beyond the reference: a session whose flow already ended inside ``startChat`` answers
``continueChat`` with ``404 Session not found.`` like a completed live session does.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.clock import Clock
from tests.fakes.provider_wire import RecordedRequest, record
from tests.fakes.typebot_flow import (
    JSON,
    Choice,
    ChoiceInput,
    ImageBubble,
    Reply,
    RichTextBubble,
    Step,
    TextBubble,
    TextFormat,
    TextInput,
    accept,
    input_id,
    referenced_variables,
    render_actions,
    render_bubbles,
    render_input,
    text_bubble,
)

__all__ = [
    "Choice",
    "ChoiceInput",
    "FakeTypebot",
    "ImageBubble",
    "RichTextBubble",
    "Step",
    "TextBubble",
    "TextInput",
    "Typebot",
    "TypebotError",
    "TypebotSession",
]

# Codes Typebot's oRPC middleware declares; errors with these codes say ``"defined": true``.
_DECLARED_CODES = frozenset(
    {"BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "INTERNAL_SERVER_ERROR"}
)
_DEFAULT_INVALID_MESSAGE = "Invalid message. Please, try again."


@dataclass(frozen=True)
class TypebotError:
    """A fault: the next call answers with this oRPC error instead of running the bot."""

    status: int = 500
    code: str = "INTERNAL_SERVER_ERROR"
    message: str = "Internal server error"


class TypebotHTTPError(Exception):
    def __init__(self, status: int, code: str, message: str, data: JSON | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data

    def response(self) -> JSONResponse:
        body = {
            "defined": self.code in _DECLARED_CODES,
            "code": self.code,
            "status": self.status,
            "message": self.message,
            "data": self.data,
        }
        return JSONResponse(body, status_code=self.status)


@dataclass(eq=False)
class Typebot:
    """A published bot. Change any field between requests to script the next one."""

    public_id: str
    steps: Sequence[Step]
    api_key: str | None = None
    """When set, both chat endpoints require ``Authorization: Bearer <api_key>``."""
    variables: Sequence[str] = ()
    """Declared beyond those the flow mentions; other prefilled variables are ignored."""
    invalid_message: str | None = None
    closed: bool = False
    expiry_timeout: float | None = None
    """Seconds of inactivity after which ``continueChat`` says the session expired."""
    delay: float = 0.0
    fault: TypebotError | None = None
    id: str = field(default_factory=lambda: f"typebot-{uuid.uuid4().hex[:12]}")
    requests: list[RecordedRequest] = field(default_factory=list)
    _one_shot: deque[TypebotError] = field(default_factory=deque)

    def fail_next(self, fault: TypebotError, times: int = 1) -> None:
        self._one_shot.extend([fault] * times)

    def heal(self) -> None:
        self._one_shot.clear()
        self.fault = None

    def take_fault(self) -> TypebotError | None:
        return self._one_shot.popleft() if self._one_shot else self.fault

    def declared_variables(self) -> set[str]:
        return referenced_variables(self.steps) | set(self.variables)


@dataclass
class TypebotSession:
    id: str
    typebot: Typebot
    result_id: str
    variables: dict[str, Any]
    updated_at: float
    waiting_at: int | None = None
    """Index of the step whose input (or client-side action) is pending; ``None`` once ended."""
    answers: list[str] = field(default_factory=list)
    expired: bool = False


@dataclass
class _Turn:
    messages: list[JSON] = field(default_factory=list)
    input: JSON | None = None
    actions: list[JSON] = field(default_factory=list)
    new_format: str | None = None

    def body(self) -> JSON:
        body: JSON = {"messages": self.messages}
        if self.input is not None:
            body["input"] = self.input
        if self.actions:
            body["clientSideActions"] = self.actions
        if self.new_format is not None:
            body["lastMessageNewFormat"] = self.new_format
        return body


@dataclass(frozen=True)
class _ChatBody:
    message: Reply | None
    text_format: TextFormat
    prefilled: JSON


class FakeTypebot:
    """Several bots behind one viewer URL; ``asgi`` is the Starlette app to ``serve``."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self.typebots: dict[str, Typebot] = {}
        self.sessions: dict[str, TypebotSession] = {}
        self.requests: list[RecordedRequest] = []
        self.asgi = Starlette(
            routes=[
                Route("/api/v1/typebots/{public_id}/startChat", self._start, methods=["POST"]),
                Route(
                    "/api/v1/sessions/{session_id}/continueChat", self._continue, methods=["POST"]
                ),
            ],
            exception_handlers={TypebotHTTPError: _error_response},
        )

    def add_typebot(self, typebot: Typebot) -> Typebot:
        self.typebots[typebot.public_id] = typebot
        return typebot

    def expire_session(self, session_id: str) -> None:
        """The next ``continueChat`` gets ``404 Session expired...``."""
        self.sessions[session_id].expired = True

    def delete_session(self, session_id: str) -> None:
        """Like Typebot's cleanup job: the next ``continueChat`` gets ``404 Session not found.``."""
        del self.sessions[session_id]

    async def _start(self, request: Request) -> Response:
        recorded = await self._record(request)
        typebot = self.typebots.get(request.path_params["public_id"])
        if typebot is None:
            raise TypebotHTTPError(404, "NOT_FOUND", "Typebot not found")
        body = await self._admit(typebot, recorded)
        if typebot.closed:
            raise TypebotHTTPError(400, "BAD_REQUEST", "This bot is now closed")
        session = self._open_session(typebot, body.prefilled)
        turn = _walk(session, 0, body.text_format)
        if body.message is not None and session.waiting_at is not None:
            _extend(turn, _answer(session, body.message, body.text_format))
        return JSONResponse(self._start_reply(session, turn))

    async def _continue(self, request: Request) -> Response:
        recorded = await self._record(request)
        session = self.sessions.get(request.path_params["session_id"])
        if session is None:
            raise _session_not_found()
        body = await self._admit(session.typebot, recorded)
        self._check_alive(session)
        turn = _answer(session, body.message, body.text_format)
        session.updated_at = self.clock()
        if session.waiting_at is None:
            del self.sessions[session.id]
        return JSONResponse(turn.body())

    async def _record(self, request: Request) -> RecordedRequest:
        recorded = await record(request)
        self.requests.append(recorded)
        return recorded

    async def _admit(self, typebot: Typebot, recorded: RecordedRequest) -> _ChatBody:
        typebot.requests.append(recorded)
        _check_api_key(typebot, recorded)
        body = _parse_body(recorded.json)
        await asyncio.sleep(typebot.delay)
        fault = typebot.take_fault()
        if fault is not None:
            raise TypebotHTTPError(fault.status, fault.code, fault.message)
        return body

    def _open_session(self, typebot: Typebot, prefilled: JSON) -> TypebotSession:
        declared = typebot.declared_variables()
        session = TypebotSession(
            id=secrets.token_hex(12),
            typebot=typebot,
            result_id=secrets.token_hex(12),
            variables={name: value for name, value in prefilled.items() if name in declared},
            updated_at=self.clock(),
        )
        self.sessions[session.id] = session
        return session

    def _check_alive(self, session: TypebotSession) -> None:
        timeout = session.typebot.expiry_timeout
        idle_too_long = timeout is not None and session.updated_at + timeout < self.clock()
        if session.expired or idle_too_long:
            raise TypebotHTTPError(
                404, "NOT_FOUND", "Session expired. You need to start a new session."
            )
        if session.waiting_at is None:
            raise _session_not_found()

    def _start_reply(self, session: TypebotSession, turn: _Turn) -> JSON:
        published = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="milliseconds")
        typebot = {
            "id": session.typebot.id,
            "version": "6.1",
            "theme": {},
            "settings": {},
            "publishedAt": published.replace("+00:00", "Z"),
        }
        return {
            "sessionId": session.id,
            "resultId": session.result_id,
            "typebot": typebot,
            **turn.body(),
        }


def _walk(session: TypebotSession, start: int, text_format: TextFormat) -> _Turn:
    """Run steps from ``start`` until one waits for the user or the flow ends."""
    turn = _Turn()
    steps = session.typebot.steps
    for index in range(start, len(steps)):
        step = steps[index]
        turn.messages += render_bubbles(index, step, session.variables, text_format)
        turn.actions += render_actions(index, step)
        if step.waits:
            session.waiting_at = index
            if step.input is not None:
                turn.input = render_input(index, step.input, session.variables)
            return turn
    session.waiting_at = None
    return turn


def _answer(session: TypebotSession, reply: Reply | None, text_format: TextFormat) -> _Turn:
    index = session.waiting_at
    assert index is not None
    if reply is not None and reply.type == "command":
        raise TypebotHTTPError(400, "BAD_REQUEST", "Command event not found")
    block = session.typebot.steps[index].input
    if block is None:
        return _walk(session, index + 1, text_format)
    saved = accept(block, index, reply)
    if saved is None:
        return _retry(session, index, text_format)
    session.answers.append(saved)
    if block.variable:
        session.variables[block.variable] = saved
    turn = _walk(session, index + 1, text_format)
    turn.new_format = saved if reply is not None and saved != reply.text else None
    return turn


def _retry(session: TypebotSession, index: int, text_format: TextFormat) -> _Turn:
    """Invalid answers are not HTTP errors: one bubble with the input's id, then the input again."""
    block = session.typebot.steps[index].input
    assert block is not None
    message = session.typebot.invalid_message or _DEFAULT_INVALID_MESSAGE
    retry_text = [{"type": "p", "children": [{"text": message}]}]
    bubble = text_bubble(input_id(index), retry_text, text_format)
    return _Turn(messages=[bubble], input=render_input(index, block, session.variables))


def _extend(turn: _Turn, more: _Turn) -> None:
    turn.messages += more.messages
    turn.actions += more.actions
    turn.input = more.input
    turn.new_format = more.new_format


def _check_api_key(typebot: Typebot, recorded: RecordedRequest) -> None:
    if typebot.api_key is None:
        return
    scheme, _, token = (recorded.authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token.strip() != typebot.api_key:
        raise TypebotHTTPError(
            401, "UNAUTHORIZED", "You must be authenticated to access this resource"
        )


def _parse_body(raw: Any) -> _ChatBody:
    body = {} if raw is None else raw
    if not isinstance(body, dict):
        raise _invalid_input([], "Expected object")
    text_format = body.get("textBubbleContentFormat", "richText")
    if text_format not in ("richText", "markdown"):
        raise _invalid_input(["textBubbleContentFormat"], "Expected 'richText' | 'markdown'")
    prefilled = body.get("prefilledVariables", {})
    if not isinstance(prefilled, dict):
        raise _invalid_input(["prefilledVariables"], "Expected object")
    for flag in ("isStreamEnabled", "isOnlyRegistering"):
        if not isinstance(body.get(flag, False), bool):
            raise _invalid_input([flag], "Expected boolean")
    message = _parse_message(body.get("message"))
    return _ChatBody(message, text_format, prefilled)


def _parse_message(raw: Any) -> Reply | None:
    if raw is None:
        return None
    message: JSON = {"type": "text", "text": raw} if isinstance(raw, str) else _object(raw)
    kind, text = message.get("type"), message.get("text")
    if kind == "text" and isinstance(text, str):
        return Reply("text", text, _object(message.get("metadata")).get("replyId"))
    if kind == "audio" and isinstance(message.get("url"), str):
        return Reply("audio", message["url"])
    if kind == "command" and isinstance(message.get("command"), str):
        return Reply("command", message["command"])
    raise _invalid_input(["message"], "Invalid input")


def _object(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _invalid_input(path: list[str], problem: str) -> TypebotHTTPError:
    issues = [{"message": problem, "path": path}]
    return TypebotHTTPError(400, "BAD_REQUEST", "Input validation failed", {"issues": issues})


def _session_not_found() -> TypebotHTTPError:
    return TypebotHTTPError(404, "NOT_FOUND", "Session not found.")


async def _error_response(request: Request, error: Exception) -> Response:
    assert isinstance(error, TypebotHTTPError)
    return error.response()
