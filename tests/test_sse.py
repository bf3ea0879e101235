"""The SSE reader over real HTTP: byte streams cut at awkward places, connections that break."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import pytest

from gateway.providers.errors import ProviderUnavailable
from gateway.providers.http import ProviderHttp, Timeouts
from gateway.providers.sse import EventParser, ServerSentEvent

Ending = Literal["end", "cut", "stall"]


async def events(chunks: Sequence[bytes], ending: Ending = "end") -> list[ServerSentEvent]:
    """Serve ``chunks`` as separate HTTP chunks (each written on its own), then end the body,
    cut the connection, or go silent; read them back through the provider HTTP client."""

    handlers: set[asyncio.Task[None]] = set()

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await serve(reader, writer)
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for chunk in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0.01)
        if ending == "end":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif ending == "stall":
            await asyncio.sleep(2)

    server = await asyncio.start_server(respond, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = ProviderHttp()
    try:
        async with http.stream(
            "POST",
            f"http://127.0.0.1:{port}/v1/chat-messages",
            provider="Dify",
            timeouts=Timeouts(connect_s=2, read_s=0.3),
            json_body={},
        ) as response:
            batches = [lines async for lines in response.line_batches()]
    finally:
        await http.aclose()
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
    parser = EventParser("Dify")
    found = [event for lines in batches for event in parser.feed(lines)]
    # The same lines fed one at a time give the same events: where the body was cut into pieces
    # does not matter.
    one_by_one = EventParser("Dify")
    assert [event for lines in batches for line in lines for event in one_by_one.feed([line])] == (
        found
    )
    return found


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


@pytest.mark.parametrize(("ending", "code"), [("cut", "connection_error"), ("stall", "timeout")])
async def test_cut_or_stalled_connection_is_unavailable(ending: Ending, code: str) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await events([b"data: one\n\ndata: tw"], ending)

    assert caught.value.code == code
    assert "Dify" in str(caught.value)
