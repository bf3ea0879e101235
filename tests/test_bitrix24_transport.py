"""Both transports of portal REST calls over real HTTP on loopback: the answer as sent, redirects
left to the client, and every way a portal can fail to answer becoming a ``ServerError`` that
names neither the URL nor the payload."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tenants.bitrix24 import PooledTransport, ServerError, Transport
from tenants.bitrix24.transport import HttpxTransport
from tests.fakes.provider_wire import ConnectionDropped, DroppableStream
from tests.fakes.server import free_port, serve

SECRET = "token-that-must-not-leak"


async def echo(request: Request) -> Response:
    body = await request.json()
    headers = request.headers
    return JSONResponse(
        {
            "result": body,
            "content_type": headers.get("content-type", ""),
            "user_agent": headers.get("user-agent", ""),
        }
    )


async def moved(request: Request) -> Response:
    return RedirectResponse("/new/rest/user.admin", status_code=302)


async def html_error(request: Request) -> Response:
    return PlainTextResponse("<html>Bad Gateway</html>", status_code=502)


async def cut_off(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"result": '
        raise ConnectionDropped

    return DroppableStream(body(), media_type="application/json")


PORTAL = Starlette(
    routes=[
        Route("/rest/echo", echo, methods=["POST"]),
        Route("/old/rest/user.admin", moved, methods=["POST"]),
        Route("/rest/broken", html_error, methods=["POST"]),
        Route("/rest/cut", cut_off, methods=["POST"]),
    ]
)


@pytest.fixture(params=["httpx", "pooled"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    if request.param == "httpx":
        async with httpx2.AsyncClient(headers={"User-Agent": "BitBot"}) as http:
            yield HttpxTransport(http)
        return
    pooled = PooledTransport()
    try:
        yield pooled
    finally:
        await pooled.aclose()


@pytest.fixture
async def portal_url() -> AsyncIterator[str]:
    async with serve(PORTAL) as url:
        yield url


async def test_the_payload_goes_as_json_and_the_answer_comes_back(
    transport: Transport, portal_url: str
) -> None:
    payload = {"DIALOG_ID": "chat7", "MESSAGE": "Привет, [b]мир[/b]", "auth": SECRET}
    posted = await transport.post_json(f"{portal_url}/rest/echo", payload)
    assert posted.status == 200
    assert posted.location == ""
    answer = posted.json()
    assert answer["result"] == payload
    assert answer["content_type"].startswith("application/json")
    assert answer["user_agent"] == "BitBot"


async def test_a_redirect_is_not_followed_and_its_target_is_absolute(
    transport: Transport, portal_url: str
) -> None:
    posted = await transport.post_json(f"{portal_url}/old/rest/user.admin", {"auth": SECRET})
    assert posted.status == 302
    assert posted.location == f"{portal_url}/new/rest/user.admin"


async def test_a_non_json_answer_is_handed_back_as_it_came(
    transport: Transport, portal_url: str
) -> None:
    posted = await transport.post_json(f"{portal_url}/rest/broken", {"auth": SECRET})
    assert posted.status == 502
    assert posted.body == b"<html>Bad Gateway</html>"
    with pytest.raises(json.JSONDecodeError):
        posted.json()


async def test_an_answer_cut_off_midway_is_unreachable(
    transport: Transport, portal_url: str
) -> None:
    with pytest.raises(ServerError) as raised:
        await transport.post_json(f"{portal_url}/rest/cut", {"auth": SECRET})
    assert raised.value.code == "UNREACHABLE"
    assert portal_url not in str(raised.value)
    assert SECRET not in str(raised.value)


async def test_a_portal_that_does_not_listen_is_unreachable(transport: Transport) -> None:
    url = f"http://127.0.0.1:{free_port()}/rest/user.admin"
    with pytest.raises(ServerError) as raised:
        await transport.post_json(url, {"auth": SECRET})
    assert raised.value.code == "UNREACHABLE"
    assert "127.0.0.1" not in str(raised.value)
    assert SECRET not in str(raised.value)


async def test_the_pool_opens_again_after_it_was_closed(portal_url: str) -> None:
    pooled = PooledTransport()
    try:
        assert (await pooled.post_json(f"{portal_url}/rest/echo", {"n": 1})).status == 200
        await pooled.aclose()
        answer = (await pooled.post_json(f"{portal_url}/rest/echo", {"n": 2})).json()
        assert answer["result"] == {"n": 2}
    finally:
        await pooled.aclose()


def test_posted_never_shows_its_body() -> None:
    from tenants.bitrix24.transport import Posted

    shown = repr(Posted(200, json.dumps({"access_token": SECRET}).encode()))
    assert SECRET not in shown
