"""A worker process killed mid-turn, and one stopped with SIGTERM: nothing is lost, nothing is
answered twice. Real PostgreSQL and Redis, a real `bitbot worker` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import B24_CLIENT_ID, B24_SECRET, PUBLIC_URL, Backend
from tests.fakes.bitrix24 import message_add, send_event
from tests.fakes.dify import DifyApp
from tests.fakes.server import free_port
from tests.pipeline_stack import Stack, pipeline_stack, replies, until

pytestmark = [
    pytest.mark.pg,
    pytest.mark.redis,
    pytest.mark.parametrize("backend", ["services"], indirect=True),
]


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


@contextmanager
def worker_process(
    stack: Stack, backend: Backend, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BITBOT_")}
    env |= backend.env(
        tmp_path,
        BITBOT_B24_OAUTH_URL=stack.cloud.base_url,
        BITBOT_B24_CLIENT_ID=B24_CLIENT_ID,
        BITBOT_B24_CLIENT_SECRET=B24_SECRET,
        BITBOT_PUBLIC_URL=PUBLIC_URL,
        BITBOT_ALLOW_PRIVATE_HOSTS="127.0.0.1",
        BITBOT_QUEUE_SHARDS="4",
        BITBOT_WORKER_LEASE_S="2",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bitbot", "worker", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout and not process.stdout.closed:
            process.communicate()


async def a_slow_conversation(stack: Stack) -> tuple[DifyApp, str, list[tuple[str, str]]]:
    app = stack.dify.add_app(DifyApp("app-key-1", answer="Here you go", delay=1.5))
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("support", stack.events_url)
    await stack.add_bot(await stack.install(portal), bot)
    customer = portal.add_customer("Ann")
    chat = portal.open_line_chat(customer)
    return app, chat.dialog_id, message_add(portal, bot, chat, customer, "Where is my order?")


async def test_a_turn_of_a_killed_worker_completes_on_another(
    stack: Stack, backend: Backend, tmp_path: Path
) -> None:
    app, dialog_id, event = await a_slow_conversation(stack)
    (portal,) = stack.cloud.portals
    with worker_process(stack, backend, tmp_path) as process:
        assert (await send_event(stack.events_url, event)).status_code == 200
        await until(lambda: app.active_runs == 1, timeout_s=30, what="the turn to start")
        process.send_signal(signal.SIGKILL)
        process.communicate()

    stack.start_worker()  # takes the shard over once the dead worker's lease runs out

    (reply,) = await replies(portal, dialog_id)
    assert reply.text == "Here you go"
    await until(lambda: not any(w.in_flight for w, _, _ in stack.workers), what="idle")
    assert len(portal.messages_to(dialog_id)) == 1


async def test_sigterm_lets_the_running_turn_finish(
    stack: Stack, backend: Backend, tmp_path: Path
) -> None:
    app, dialog_id, event = await a_slow_conversation(stack)
    (portal,) = stack.cloud.portals
    with worker_process(stack, backend, tmp_path) as process:
        assert (await send_event(stack.events_url, event)).status_code == 200
        await until(lambda: app.active_runs == 1, timeout_s=30, what="the turn to start")
        process.send_signal(signal.SIGTERM)
        await until(lambda: process.poll() is not None, timeout_s=30, what="the worker to exit")
        output, _ = process.communicate()
        assert process.returncode == 0, output

    (reply,) = portal.messages_to(dialog_id)
    assert reply.text == "Here you go"
