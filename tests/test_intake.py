"""``POST /b24/events`` refuses what it can see is wrong, cheaply, and enqueues nothing for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa

from tenants.queue import Queue
from tenants.schema import tenants
from tests.conftest import Backend
from tests.fakes.bitrix24 import message_add, send_event
from tests.pipeline_stack import Stack, pipeline_stack

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


async def queued(stack: Stack) -> int:
    return sum((await Queue(stack.runtime.redis, stack.runtime.vault, 4).lag()).values())


async def post(stack: Stack, body: bytes) -> httpx2.Response:
    return await stack.http.post(stack.events_url, content=body, headers=FORM)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"\xff\xfeevent=x", 400, "the body is not UTF-8"),
        (b"event=ONIMBOTMESSAGEADD&auth[member_id]=abc&auth[applica", 400, "auth[application_"),
        (b"event=ONIMBOTMESSAGEADD&auth%5Bmember_id%5D=" + b"m" * 65, 400, "longer than 64"),
        (b"event=ONIMBOTMESSAGEADD&auth=1&auth[member_id]=abc", 400, "both a value and a group"),
        (b"auth[member_id]=abc&auth[application_token]=t", 400, "event is missing"),
        (b"event[]=a&auth[member_id]=abc&auth[application_token]=t", 400, "event is missing"),
        (b"event=ONSOMETHING&auth[member_id]=a&auth[application_token]=t", 400, "ONSOMETHING"),
        (b"event=ONIMBOTMESSAGEADD&auth[member_id]=nobody&auth[application_token]=t", 401, ""),
        (b"x=" + b"y" * (1 << 20), 413, "larger than 1 MiB"),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    stack: Stack, body: bytes, status: int, message: str
) -> None:
    response = await post(stack, body)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert await queued(stack) == 0


async def test_forged_application_token_is_refused(stack: Stack) -> None:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.install(portal)
    customer = portal.add_customer("Ann")
    pairs = message_add(portal, bot, portal.open_line_chat(customer), customer, "Hi")
    forged = [(k, "x" + v if k == "auth[application_token]" else v) for k, v in pairs]

    response = await send_event(stack.events_url, forged)

    assert response.status_code == 401
    assert portal.application_token not in response.text
    assert await queued(stack) == 0


async def test_inactive_portal_is_refused(stack: Stack) -> None:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    tenant = await stack.install(portal)
    async with stack.runtime.engine.begin() as connection:
        await connection.execute(
            sa.update(tenants).where(tenants.c.id == tenant.id).values(status="needs_attention")
        )
    customer = portal.add_customer("Ann")
    pairs = message_add(portal, bot, portal.open_line_chat(customer), customer, "Hi")

    assert (await send_event(stack.events_url, pairs)).status_code == 403
    assert await queued(stack) == 0


async def test_valid_event_is_queued_sealed(stack: Stack) -> None:
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.install(portal)
    customer = portal.add_customer("Ann")
    pairs = message_add(portal, bot, portal.open_line_chat(customer), customer, "Hi")

    assert (await send_event(stack.events_url, pairs)).status_code == 200

    assert await queued(stack) == 1
    raw = repr(await stack.runtime.redis.xrange(f"bitbot:q:{_shard(portal.member_id)}"))
    bot_token = dict(pairs)[f"data[BOT][{bot.id}][access_token]"]
    assert portal.application_token not in raw
    assert bot_token not in raw


def _shard(member_id: str) -> int:
    from tenants.queue import shard_of

    return shard_of(member_id, 4)


async def test_other_methods_on_the_intake_path_are_405_and_carry_a_request_id(
    stack: Stack,
) -> None:
    """Only POST takes the intake's shortcut; the rest goes through the router as before."""
    for method in ("GET", "PUT"):
        response = await stack.http.request(method, stack.events_url)
        assert response.status_code == 405
        assert response.headers["x-request-id"]
    posted = await post(stack, b"event=x")
    assert posted.status_code == 400
    assert posted.headers["x-request-id"]
