"""The SSE reader on byte streams cut at awkward places, and on a connection that breaks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx2
import pytest

from gateway.providers.errors import ProviderUnavailable
from gateway.providers.sse import ServerSentEvent, read_events


class Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: Sequence[bytes], error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error


async def events(chunks: Sequence[bytes], error: Exception | None = None) -> list[ServerSentEvent]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, headers=headers, stream=Chunks(chunks, error))

    async with (
        httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http,
        http.stream("POST", "http://dify.test/v1/chat-messages") as response,
    ):
        return [event async for event in read_events(response, provider="Dify")]


async def test_data_lines_dispatch_on_blank_lines() -> None:
    assert await events([b'data: {"a": 1}\n\ndata: {"b": 2}\n\n']) == [
        ServerSentEvent(data='{"a": 1}'),
        ServerSentEvent(data='{"b": 2}'),
    ]


async def test_events_split_across_chunks_and_line_endings() -> None:
    stream = [b"da", b'ta: {"answer": "Hi', b' there"}\r', b"\n\r\n", b"data:x\r\rdata: y\n", b"\n"]

    assert [event.data for event in await events(stream)] == ['{"answer": "Hi there"}', "x", "y"]


async def test_multi_line_data_joins_with_newlines() -> None:
    stream = [b"event: update\nid: 7\ndata: first\ndata:  second\ndata\n\n"]

    assert await events(stream) == [ServerSentEvent("update", "first\n second\n", "7")]


async def test_comments_and_bare_pings_are_skipped() -> None:
    stream = [b": keep-alive\n\nevent: ping\n\ndata: real\n\n", b"event: ping\n\n"]

    assert await events(stream) == [ServerSentEvent(data="real")]


async def test_unknown_fields_are_ignored_and_event_names_reset() -> None:
    stream = [b"event: special\nretry: 100\nfoo: bar\ndata: one\n\ndata: two\n\n"]

    assert await events(stream) == [ServerSentEvent("special", "one"), ServerSentEvent(data="two")]


async def test_unterminated_last_event_is_discarded() -> None:
    assert await events([b"data: done\n\ndata: half"]) == [ServerSentEvent(data="done")]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (httpx2.RemoteProtocolError("incomplete chunked read"), "connection_error"),
        (httpx2.ReadError("connection reset"), "connection_error"),
        (httpx2.ReadTimeout("no data"), "timeout"),
    ],
)
async def test_cut_connection_is_unavailable(error: Exception, code: str) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await events([b"data: one\n\ndata: tw"], error)

    assert caught.value.code == code
    assert "Dify" in str(caught.value)
