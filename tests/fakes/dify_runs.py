"""How one validated run answers: a blocking JSON body or an event stream, faults included.

Event order (reference dify-typebot.md §A1/§A2): a Chatflow ends with ``message_end`` then
``workflow_finished``; a failed Chatflow with ``workflow_finished`` (failed) then an ``error``; a
Workflow ends with ``workflow_finished`` whatever its status; any other failure is one ``error``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from starlette.responses import JSONResponse, Response

from tests.fakes.dify_app import (
    JSON,
    DifyApp,
    DifyFault,
    DifyRun,
    DropConnection,
    RunFailed,
    StreamError,
)
from tests.fakes.dify_events import (
    ANSWER,
    END,
    LLM,
    PING,
    START,
    RunEvents,
    chat_reply,
    count_tokens,
    sse,
    usage,
    workflow_reply,
)
from tests.fakes.provider_wire import ConnectionDropped, DroppableStream

Release = Callable[[], None]
T = TypeVar("T")

_EVENT_STREAM = "text/event-stream"


class DifyHTTPError(Exception):
    """Answered as Dify's error body ``{"code", "message", "status"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "status": self.status}
        headers = {"WWW-Authenticate": 'Bearer realm="api"'} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def split_answer(text: str) -> list[str]:
    """Word-sized deltas whose concatenation is exactly ``text``."""
    return re.findall(r"\S+\s*|\s+", text)


async def chat_response(
    app: DifyApp, run: DifyRun, events: RunEvents, fault: DifyFault | None, *, streaming: bool
) -> Response:
    release = _admit(app)
    if streaming:
        stream = _chat_stream(app, run, events, fault, release)
        return DroppableStream(stream, media_type=_EVENT_STREAM)
    try:
        return await _chat_blocking(app, run, events, fault)
    finally:
        release()


async def workflow_response(
    app: DifyApp, run: DifyRun, events: RunEvents, fault: DifyFault | None, *, streaming: bool
) -> Response:
    release = _admit(app)
    if streaming:
        stream = _workflow_stream(app, run, events, fault, release)
        return DroppableStream(stream, media_type=_EVENT_STREAM)
    try:
        return await _workflow_blocking(app, run, events, fault)
    finally:
        release()


def ensure_capacity(app: DifyApp) -> None:
    """Dify's per-app ``RateLimit``; a run holds its slot until its response is complete."""
    if app.max_active_requests and app.active_runs >= app.max_active_requests:
        raise DifyHTTPError(
            429,
            "too_many_requests",
            "Too many requests. Please try again later. "
            f"The current maximum concurrent requests allowed is {app.max_active_requests}.",
        )


def _admit(app: DifyApp) -> Release:
    ensure_capacity(app)
    app.active_runs += 1

    def release() -> None:
        app.active_runs -= 1

    return release


async def _chat_stream(
    app: DifyApp, run: DifyRun, events: RunEvents, fault: DifyFault | None, release: Release
) -> AsyncIterator[bytes]:
    try:
        async for chunk in _until_model_answers(app, events):
            yield chunk
        if isinstance(fault, RunFailed):
            for event in _failed_run(events, fault.error):
                yield sse(event)
            yield sse(events.error("invalid_param", 400, f"Run failed: {fault.error}"))
            return
        answer = app.answer_for(run)
        for delta in _before_fault(split_answer(answer), fault):
            yield sse(events.message(delta))
        _drop_if(fault)
        if isinstance(fault, StreamError):
            yield sse(events.error(fault.code, fault.status, fault.message))
            return
        for event in _chat_success(events, run, answer):
            yield sse(event)
    finally:
        release()


async def _workflow_stream(
    app: DifyApp, run: DifyRun, events: RunEvents, fault: DifyFault | None, release: Release
) -> AsyncIterator[bytes]:
    try:
        async for chunk in _until_model_answers(app, events):
            yield chunk
        if isinstance(fault, RunFailed):
            for event in _failed_run(events, fault.error):
                yield sse(event)
            return
        outputs = app.outputs_for(run)
        for name, delta in _before_fault(_text_chunks(outputs), fault):
            yield sse(events.text_chunk(delta, name))
        _drop_if(fault)
        if isinstance(fault, StreamError):
            yield sse(events.error(fault.code, fault.status, fault.message))
            return
        for event in _workflow_success(events, outputs):
            yield sse(event)
    finally:
        release()


async def _chat_blocking(
    app: DifyApp, run: DifyRun, events: RunEvents, fault: DifyFault | None
) -> Response:
    await asyncio.sleep(app.delay)
    if isinstance(fault, RunFailed):
        raise DifyHTTPError(400, "invalid_param", f"Run failed: {fault.error}")
    _raise_stream_error(fault)
    answer = app.answer_for(run)
    body = chat_reply(events.ids, answer, usage(run.query, answer, events.ids.elapsed()))
    return _json_response(body, fault)


async def _workflow_blocking(
    app: DifyApp, run: DifyRun, events: RunEvents, fault: DifyFault | None
) -> Response:
    await asyncio.sleep(app.delay)
    if isinstance(fault, RunFailed):
        result = events.run_result(status="failed", outputs={}, error=fault.error, tokens=0)
    else:
        _raise_stream_error(fault)
        outputs = app.outputs_for(run)
        result = events.run_result(
            status="succeeded", outputs=outputs, error=None, tokens=_output_tokens(outputs)
        )
    return _json_response(workflow_reply(events, result), fault)


async def _until_model_answers(app: DifyApp, events: RunEvents) -> AsyncIterator[bytes]:
    yield sse(events.workflow_started())
    yield sse(events.node_started(START))
    yield sse(events.node_finished(START, outputs=events.inputs))
    yield sse(events.node_started(LLM))
    elapsed = 0.0
    # Dify pings every ``ping_interval`` seconds of waiting, never at the moment the answer lands.
    while elapsed + app.ping_interval < app.delay:
        await asyncio.sleep(app.ping_interval)
        elapsed += app.ping_interval
        yield PING
    await asyncio.sleep(app.delay - elapsed)


def _failed_run(events: RunEvents, error: str) -> list[JSON]:
    result = events.run_result(status="failed", outputs={}, error=error, tokens=0)
    return [events.node_finished(LLM, error=error), events.workflow_finished(result)]


def _chat_success(events: RunEvents, run: DifyRun, answer: str) -> list[JSON]:
    spent = usage(run.query, answer, events.ids.elapsed())
    result = events.run_result(
        status="succeeded", outputs={"answer": answer}, error=None, tokens=spent["total_tokens"]
    )
    return [
        events.node_finished(LLM, outputs={"text": answer}),
        events.node_started(ANSWER),
        events.node_finished(ANSWER, outputs={"answer": answer}),
        events.message_end(spent),
        events.workflow_finished(result),
    ]


def _workflow_success(events: RunEvents, outputs: JSON) -> list[JSON]:
    result = events.run_result(
        status="succeeded", outputs=outputs, error=None, tokens=_output_tokens(outputs)
    )
    return [
        events.node_finished(LLM, outputs={"text": json.dumps(outputs, ensure_ascii=False)}),
        events.node_started(END),
        events.node_finished(END, outputs=outputs),
        events.workflow_finished(result),
    ]


def _text_chunks(outputs: JSON) -> list[tuple[str, str]]:
    return [
        (name, delta)
        for name, value in outputs.items()
        if isinstance(value, str)
        for delta in split_answer(value)
    ]


def _output_tokens(outputs: JSON) -> int:
    return sum(count_tokens(value) for value in outputs.values() if isinstance(value, str))


def _before_fault(chunks: Sequence[T], fault: DifyFault | None) -> Sequence[T]:
    if isinstance(fault, StreamError | DropConnection):
        return chunks[: fault.after_chunks]
    return chunks


def _drop_if(fault: DifyFault | None) -> None:
    if isinstance(fault, DropConnection):
        raise ConnectionDropped


def _raise_stream_error(fault: DifyFault | None) -> None:
    # Blocking mode re-raises the pipeline's error, so the caller sees an HTTP error, not a 200.
    if isinstance(fault, StreamError):
        raise DifyHTTPError(fault.status, fault.code, fault.message)


def _json_response(body: JSON, fault: DifyFault | None) -> Response:
    if not isinstance(fault, DropConnection):
        return JSONResponse(body)
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def half_then_drop() -> AsyncIterator[bytes]:
        yield encoded[: len(encoded) // 2]
        raise ConnectionDropped

    return DroppableStream(half_then_drop(), media_type="application/json")
