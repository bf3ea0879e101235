"""Provider calls reach only public addresses: checked as the connection is made, not only when
the tenant saved the URL, so a host name that later resolves to a private address is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.providers.errors import ProviderRejected
from gateway.providers.http import ProviderHttp, Timeouts
from tenants.netguard import HostGuard
from tests.fakes.server import serve

TIMEOUTS = Timeouts(connect_s=2, read_s=2)


@pytest.fixture
async def internal() -> AsyncIterator[tuple[str, list[str]]]:
    """A service on loopback standing in for the cluster's own; it records what reaches it."""
    hits: list[str] = []

    async def parameters(request: Request) -> JSONResponse:
        hits.append(request.url.path)
        return JSONResponse({"user_input_form": []})

    app = Starlette(routes=[Route("/v1/parameters", parameters)])
    async with serve(app) as url:
        yield url, hits


async def get(http: ProviderHttp, url: str) -> int:
    answer = await http.send("GET", url, provider="Dify", timeouts=TIMEOUTS)
    return answer.status


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_provider_address_is_refused_before_any_request(
    internal: tuple[str, list[str]], host: str
) -> None:
    base, hits = internal
    url = base.replace("127.0.0.1", host) + "/v1/parameters"
    http = ProviderHttp(HostGuard(()))
    try:
        with pytest.raises(ProviderRejected) as refused:
            await get(http, url)
    finally:
        await http.aclose()

    assert refused.value.code == "private_address"
    assert "Dify" in str(refused.value)
    assert host not in str(refused.value)  # the tenant's URL is not repeated
    assert hits == []


async def test_allow_listed_private_address_is_called(internal: tuple[str, list[str]]) -> None:
    base, hits = internal
    http = ProviderHttp(HostGuard(("127.0.0.1",)))
    try:
        assert await get(http, base + "/v1/parameters") == 200
    finally:
        await http.aclose()

    assert hits == ["/v1/parameters"]


async def test_allow_listed_network_covers_a_resolved_name(internal: tuple[str, list[str]]) -> None:
    base, hits = internal
    http = ProviderHttp(HostGuard(("127.0.0.0/8", "::1/128")))
    try:
        status = await get(http, base.replace("127.0.0.1", "localhost") + "/v1/parameters")
    finally:
        await http.aclose()

    assert status == 200
    assert hits == ["/v1/parameters"]


async def test_without_a_guard_nothing_is_checked(internal: tuple[str, list[str]]) -> None:
    """Tests and tools that talk to local fakes build the client without a guard."""
    base, hits = internal
    http = ProviderHttp()
    try:
        assert await get(http, base + "/v1/parameters") == 200
    finally:
        await http.aclose()

    assert hits == ["/v1/parameters"]
