"""The per-portal REST client against the fake Bitrix24, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest

from tenants.bitrix24 import (
    Bitrix24Client,
    Budget,
    Call,
    Coalescer,
    MethodError,
    PooledTransport,
    PortalGone,
    ReinstallRequired,
    Services,
    build_services,
)
from tenants.netguard import HostGuard, PrivateAddressError
from tenants.runtime import Runtime
from tenants.store import Tenant
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, Portal
from tests.installs import install_portal


@pytest.fixture(params=["httpx", "pooled"])
async def services(
    request: pytest.FixtureRequest,
    b24_runtime: Runtime,
    http: httpx2.AsyncClient,
    clock: SteppedClock,
) -> AsyncIterator[Services]:
    """Every test runs on both transports: httpx2 (the portal pages) and the worker's pool."""
    if request.param == "httpx":
        yield build_services(b24_runtime, http, clock)
        return
    pooled = PooledTransport()
    try:
        yield build_services(b24_runtime, http, clock, pooled)
    finally:
        await pooled.aclose()


async def installed(services: Services, portal: Portal, clock: SteppedClock) -> Tenant:
    return await install_portal(services.store, portal, clock.now(), installer_id=1)


async def test_call_returns_the_result(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    client = Bitrix24Client(await installed(services, portal, clock), services)
    assert await client.call("user.admin") is True
    (call,) = portal.calls_of("user.admin")
    assert call.auth == portal.auth.access_token


async def test_twenty_concurrent_calls_with_an_expired_token_refresh_once(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    tenant = await installed(services, portal, clock)
    portal.expire_access_tokens()  # the portal says expired while our record still looks valid
    # Separate clients stand for separate workers: only Redis and the database are shared.
    clients = [Bitrix24Client(tenant, services) for _ in range(20)]

    results = await asyncio.gather(*(client.call("user.admin") for client in clients))

    assert results == [True] * 20
    assert portal.refresh_count == 1
    tokens = await services.store.tokens(tenant.id)
    assert tokens is not None
    assert tokens.refresh_token != portal.auth.refresh_token  # rotated and stored


async def test_rotated_refresh_token_is_the_one_used_next(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    tenant = await installed(services, portal, clock)
    for _ in range(3):
        clock.fake.advance(3601)
        assert await Bitrix24Client(tenant, services).call("user.admin") is True
    assert portal.refresh_count == 3
    refreshes = [r for r in bitrix24.token_requests if r.grant_type == "refresh_token"]
    # The fake refuses a refresh token that was already used: none of ours was refused.
    assert [r.error for r in refreshes] == [None, None, None]


async def test_invalid_grant_marks_the_tenant_instead_of_retrying(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    tenant = await installed(services, portal, clock)
    clock.fake.advance(3601)
    bitrix24.fail_next_token(400, "invalid_grant", "refresh token expired")

    with pytest.raises(ReinstallRequired):
        await Bitrix24Client(tenant, services).call("user.admin")

    refreshed = await services.store.find(portal.member_id)
    assert refreshed is not None
    assert (refreshed.status, refreshed.attention_reason) == (
        "needs_attention",
        "reinstall_required",
    )
    assert len(bitrix24.token_requests) == 1


async def test_portal_deleted_marks_the_tenant(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    tenant = await installed(services, portal, clock)
    portal.delete()
    with pytest.raises(PortalGone):
        await Bitrix24Client(tenant, services).call("user.admin")
    found = await services.store.find(portal.member_id)
    assert found is not None
    assert found.attention_reason == "portal_deleted"


@pytest.mark.parametrize(
    ("status", "error"), [(503, "QUERY_LIMIT_EXCEEDED"), (429, "OPERATION_TIME_LIMIT")]
)
async def test_rate_limit_answers_are_retried_with_backoff(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock, status: int, error: str
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    tenant = await installed(services, portal, clock)
    portal.fail_next("user.admin", status, error, times=2)
    assert await Bitrix24Client(tenant, services).call("user.admin") is True
    assert [c.status for c in portal.calls_of("user.admin")] == [status, status, 200]
    assert clock.slept > 0


async def test_method_errors_are_not_retried(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    tenant = await installed(services, portal, clock)
    with pytest.raises(MethodError) as raised:
        await Bitrix24Client(tenant, services).call("imbot.message.add", {"MESSAGE": "hi"})
    assert len(portal.calls_of("imbot.message.add")) == 1
    assert portal.auth.access_token not in str(raised.value)


async def test_renamed_portal_is_followed_and_remembered(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("old-name.bitrix24.com")
    tenant = await installed(services, portal, clock)
    portal.rename("new-name.bitrix24.com")

    assert await Bitrix24Client(tenant, services).call("user.admin") is True

    moved = await services.store.find(portal.member_id)
    assert moved is not None
    assert moved.client_endpoint == portal.client_endpoint
    assert moved.client_endpoint.endswith("/new-name.bitrix24.com/rest/")


async def test_batch_returns_results_and_errors_per_call(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    client = Bitrix24Client(await installed(services, portal, clock), services)
    results = await client.batch(
        [Call("user.admin", {}), Call("imbot.message.add", {"MESSAGE": "x"})]
    )
    assert results[0] is True
    assert isinstance(results[1], MethodError)
    assert len(portal.calls_of("batch")) == 1
    with pytest.raises(ValueError, match="1 to 50"):
        await client.batch([Call("user.admin", {})] * 51)


async def test_five_hundred_calls_to_one_portal_never_hit_the_limit(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    bot = portal.add_v1_bot("support", "https://bitbot.example.com/b24/events")
    coalescer = Coalescer(Bitrix24Client(await installed(services, portal, clock), services))

    sent = await asyncio.gather(
        *(
            coalescer.call(
                "imbot.message.add",
                {"BOT_ID": bot.id, "DIALOG_ID": "chat7", "MESSAGE": f"reply {n}"},
            )
            for n in range(500)
        )
    )

    assert len(set(sent)) == 500
    assert [c for c in portal.calls if c.error == "QUERY_LIMIT_EXCEEDED"] == []
    assert [m.text for m in portal.messages_to("chat7")] == [f"reply {n}" for n in range(500)]
    assert len(portal.calls_of("batch")) <= 20


async def test_typing_is_dropped_when_the_budget_is_spent(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    client = Bitrix24Client(await installed(services, portal, clock), services, Budget(2, 5))
    coalescer = Coalescer(client)
    for _ in range(3):
        await client.call("user.admin")
    bot = portal.add_v1_bot("support", "https://bitbot.example.com/b24/events")
    typing = {"BOT_ID": bot.id, "DIALOG_ID": "chat7"}
    coalescer.notify("imbot.chat.sendTyping", typing)
    await settled(coalescer)
    assert portal.calls_of("imbot.chat.sendTyping") == []
    clock.fake.advance(5)
    coalescer.notify("imbot.chat.sendTyping", typing)
    await settled(coalescer)
    assert len(portal.calls_of("imbot.chat.sendTyping")) == 1


async def test_typing_rides_in_the_batch_ahead_of_the_answers(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    bot = portal.add_v1_bot("support", "https://bitbot.example.com/b24/events")
    coalescer = Coalescer(Bitrix24Client(await installed(services, portal, clock), services))
    for chat in range(30):
        coalescer.notify("imbot.chat.sendTyping", {"BOT_ID": bot.id, "DIALOG_ID": f"chat{chat}"})
    # A typing call that fails (an unknown bot) changes nothing for the answers beside it.
    coalescer.notify("imbot.chat.sendTyping", {"BOT_ID": 999, "DIALOG_ID": "chat1"})
    answers = [
        coalescer.call(
            "imbot.message.add", {"BOT_ID": bot.id, "DIALOG_ID": f"chat{c}", "MESSAGE": "hi"}
        )
        for c in range(30)
    ]
    assert len(await asyncio.gather(*answers)) == 30
    await settled(coalescer)

    # 61 calls queued before the first left: two requests of 50 and 11, in the order queued.
    assert [c.method for c in portal.calls if c.batch_key is None] == ["batch", "batch"]
    inner = [c.method for c in portal.calls if c.batch_key is not None]
    assert inner == ["imbot.chat.sendTyping"] * 31 + ["imbot.message.add"] * 30
    assert all(len(portal.messages_to(f"chat{c}")) == 1 for c in range(30))


async def settled(coalescer: Coalescer) -> None:
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not coalescer.busy:
            return
    raise AssertionError("the coalescer kept working")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/rest/",
        "http://10.1.2.3/rest/",
        "http://[::1]/rest/",
        "http://169.254.169.254/latest/",
        "http://localhost/rest/",
        "ftp://example.com/",
    ],
)
async def test_private_hosts_are_refused(url: str) -> None:
    with pytest.raises(PrivateAddressError):
        await HostGuard(()).check(url)


async def test_allow_list_admits_named_hosts_and_networks() -> None:
    guard = HostGuard(("dify.internal", "10.0.0.0/8"))
    await guard.check("http://10.1.2.3/v1")
    await guard.check("http://dify.internal/v1")
    with pytest.raises(PrivateAddressError):
        await guard.check("http://192.168.1.1/v1")
    await HostGuard(("*",)).check("http://127.0.0.1:8080/")


async def test_call_as_uses_the_given_token(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com")
    manager = portal.add_user("Mia", admin=False)
    user_tokens = portal.issue_tokens(manager.id)
    client = Bitrix24Client(await installed(services, portal, clock), services)
    assert await client.call_as(user_tokens.access_token, "user.admin") is False
    (call,) = portal.calls_of("user.admin")
    assert call.auth == user_tokens.access_token
