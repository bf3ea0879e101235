"""(2) The pipeline's own latency per message, and (3) turns one worker keeps in flight.

A real ``bitbot gateway`` and ``bitbot worker`` run as processes on PostgreSQL and Redis; this
process hosts the fake Bitrix24 portals and the fake Dify and plays the customers.

(2) 500 messages from 50 portals (10 dialogs each), paced at ~100/s by a sender process of its own
(``bench.sender``), instant Dify, after one message per portal that warms the worker's caches (its
latency is printed apart). Latency is from posting the event (the sender's clock, just before
its request is written) to the reply reaching the portal (the fake's clock, when the request comes
in, before the fake's own work); the pipeline's own share is that minus the time the provider took
for the message. The worker's limiter waits come from its /metrics and
are reported apart; typing notifications are counted. Targets: p50 <= 5 ms, p99 <= 25 ms.

(3) 2,500 conversations (50 portals x 50 dialogs) against a Dify that takes 2 s per answer, after
one warm-up turn per portal (as in a worker that has been running). The fake counts runs in
flight; the worker's memory and CPU time are read from /proc. Target: >= 2,000 in flight.

BITBOT_BENCH_PROFILE=FILE runs the worker under cProfile (its figures are then not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx2
import sqlalchemy as sa
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.support import (
    BENCH_REDIS_URL,
    bench_env,
    cpu_seconds,
    free_port,
    fresh_database,
    install,
    rss_kib,
    start,
    wait_ready,
)
from tenants.migrate import upgrade
from tenants.queue import NewEntry, Queue
from tenants.runtime import Runtime, build_runtime
from tenants.schema import bots, connectors, providers, utcnow
from tenants.settings import load_settings
from tenants.vault import tenant_context
from tests.fakes.bitrix24 import Bot, Chat, FakeBitrix24, Portal, User, message_add
from tests.fakes.bitrix24_php import parse_query
from tests.fakes.dify import DifyApp, FakeDify
from tests.fakes.server import serve

API_KEY = "app-bench"


@dataclass
class Conversation:
    portal: Portal
    bot: Bot
    chat: Chat
    customer: User


async def run_reading_body(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> bytes:
    """Run ``app`` on the request; the body it read."""
    body = b""

    async def capture() -> Message:
        nonlocal body
        message = await receive()
        body += message.get("body", b"")
        return message

    await app(scope, capture, send)
    return body


@dataclass
class ProviderTimer:
    """Wraps the fake Dify: how long each run took, keyed by the query it answered."""

    app: ASGIApp
    took: dict[str, float] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat-messages"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body = await run_reading_body(self.app, scope, receive, send)
        self.took[str(json.loads(body)["query"])] = time.perf_counter() - started


@dataclass
class ReplyClock:
    """Wraps the fake Bitrix24: when the first reply to each dialog reached it, before its work.

    A reply is an ``imbot.message.add`` call, on its own or inside a ``batch``.
    """

    app: ASGIApp
    arrived: dict[str, float] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.endswith(("/imbot.message.add", "/batch")):
            await self.app(scope, receive, send)
            return
        at = time.time()
        body = await run_reading_body(self.app, scope, receive, send)
        domain = path.split("/")[1]  # /{portal}/rest/{method}
        for dialog in _reply_dialogs(json.loads(body)):
            key = f"{domain}/{dialog}"
            self.arrived[key] = min(at, self.arrived.get(key, at))


def _reply_dialogs(params: dict[str, object]) -> list[str]:
    if "DIALOG_ID" in params:
        return [str(params["DIALOG_ID"])]
    commands = params.get("cmd")
    if not isinstance(commands, dict):
        return []
    dialogs = []
    for command in commands.values():
        method, _, query = str(command).partition("?")
        if method == "imbot.message.add":
            dialogs.append(str(parse_query(query).get("DIALOG_ID", "")))
    return dialogs


async def setup(
    runtime: Runtime, cloud: FakeBitrix24, dify_url: str, portals: int, dialogs: int
) -> list[Conversation]:
    conversations: list[Conversation] = []
    now = utcnow()
    stamps = {"created_at": now, "updated_at": now}
    async with runtime.engine.begin() as connection:
        provider_id = await connection.scalar(
            sa.insert(providers)
            .values(name="Dify", type="dify_chatflow", base_url=f"{dify_url}/v1", **stamps)
            .returning(providers.c.id)
        )
    for number in range(portals):
        portal = cloud.add_portal(f"p{number}.bitrix24.com", v2=False)
        bot = portal.add_v1_bot("bench", "https://bitbot.example.com/b24/events")
        tenant = await install(runtime, portal)
        sealed = runtime.vault.seal(API_KEY, tenant_context(tenant.id, "connectors", "api_key"))
        async with runtime.engine.begin() as connection:
            connector_id = await connection.scalar(
                sa.insert(connectors)
                .values(
                    tenant_id=tenant.id, provider_id=provider_id, name="c", api_key=sealed, **stamps
                )
                .returning(connectors.c.id)
            )
            await connection.execute(
                sa.insert(bots).values(
                    tenant_id=tenant.id,
                    connector_id=connector_id,
                    name="Bench",
                    code="bench",
                    b24_bot_id=bot.id,
                    type="openline",
                    api_version=1,
                    registration_state="registered",
                    **stamps,
                )
            )
        for _ in range(dialogs):
            customer = portal.add_customer("Ann")
            conversations.append(
                Conversation(portal, bot, portal.open_line_chat(customer), customer)
            )
    return conversations


def worker_command(port: int) -> list[str]:
    """``bitbot worker``; with BITBOT_BENCH_PROFILE=FILE under cProfile, its stats written there."""
    profile_to = os.environ.get("BITBOT_BENCH_PROFILE")
    profile = ["-m", "cProfile", "-o", profile_to] if profile_to else []
    return [*profile, "-m", "bitbot", "worker", "--port", str(port)]


def replied(conversations: list[Conversation]) -> int:
    return sum(len(c.portal.messages_to(c.chat.dialog_id)) for c in conversations)


async def metric(http: httpx2.AsyncClient, url: str, name: str) -> float:
    total = 0.0
    for line in (await http.get(url)).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def latency(runtime: Runtime, env: dict[str, str], data: Path) -> None:
    cloud = FakeBitrix24(client_id="bench", client_secret="bench-secret")
    dify = FakeDify()
    dify.add_app(DifyApp(API_KEY, answer="ok"))
    timer = ProviderTimer(dify.asgi)
    replies = ReplyClock(cloud.app)
    async with serve(replies) as cloud.base_url, serve(timer) as dify_url:
        everyone = await setup(runtime, cloud, dify_url, portals=50, dialogs=11)
        # The first message of each portal finds the worker's caches cold (tenant, bot, tokens,
        # plan); those are sent first and reported apart from the 500 measured messages.
        cold = everyone[::11]
        conversations = [c for c in everyone if c not in cold]
        env = env | {"BITBOT_B24_OAUTH_URL": cloud.base_url}
        gateway_port, worker_port = free_port(), free_port()
        gateway = start(["-m", "bitbot", "gateway", "--port", str(gateway_port)], env)
        worker = start(worker_command(worker_port), env)
        try:
            wait_ready(f"http://127.0.0.1:{gateway_port}/readyz")
            wait_ready(f"http://127.0.0.1:{worker_port}/readyz")
            await asyncio.sleep(1.0)  # the worker takes its shards
            url = f"http://127.0.0.1:{gateway_port}/b24/events"
            sent = await send_paced(url, cold, data, "c")
            await until_replied(cold)
            cpu = {
                name: cpu_seconds(p.pid) for name, p in (("gateway", gateway), ("worker", worker))
            }
            sent |= await send_paced(url, conversations, data, "m")
            await until_replied(conversations)
            cpu = {
                name: cpu_seconds(p.pid) - cpu[name]
                for name, p in (("gateway", gateway), ("worker", worker))
            }
            async with httpx2.AsyncClient() as http:
                metrics_url = f"http://127.0.0.1:{worker_port}/metrics"
                waits = await metric(http, metrics_url, "bitbot_limiter_wait_seconds_sum")
                waited = await metric(http, metrics_url, "bitbot_limiter_wait_seconds_count")
        finally:
            for process in (gateway, worker):
                process.terminate()
                process.wait()
    end_to_end, own = timings(conversations, sent, replies, timer, "m")
    _, own_cold = timings(cold, sent, replies, timer, "c")
    typing = sum(len(p.calls_of("imbot.chat.sendTyping")) for p in cloud.portals)
    print(f"(2) pipeline latency: {len(conversations)} messages over 50 portals, instant Dify")
    print(
        f"    end to end         p50 {1000 * percentile(end_to_end, 0.5):7.1f} ms"
        f"   p99 {1000 * percentile(end_to_end, 0.99):7.1f} ms"
    )
    print(
        f"    pipeline's own     p50 {1000 * percentile(own, 0.5):7.1f} ms"
        f"   p99 {1000 * percentile(own, 0.99):7.1f} ms   (targets <= 5 / <= 25 ms)"
    )
    print(f"    provider (fake)    p50 {1000 * statistics.median(timer.took.values()):7.1f} ms")
    print(f"    limiter waits      {int(waited)} waits, {waits:.3f} s in all (not in the above)")
    print(f"    typing sent        {typing} for {len(conversations)} turns")
    print(
        f"    CPU per message    gateway {1000 * cpu['gateway'] / len(conversations):.2f} ms,"
        f" worker {1000 * cpu['worker'] / len(conversations):.2f} ms"
    )
    print(
        f"    a portal's first message (cold caches, {len(cold)} of them, not in the above): "
        f"p50 {1000 * percentile(own_cold, 0.5):.1f} ms, max {1000 * max(own_cold):.1f} ms"
    )


async def send_paced(
    url: str, talks: list[Conversation], data: Path, prefix: str
) -> dict[str, float]:
    """Post one message per conversation through ``bench.sender``; when each was sent."""
    events = [
        [
            _key(talk),
            urlencode(message_add(talk.portal, talk.bot, talk.chat, talk.customer, f"{prefix}{n}")),
        ]
        for n, talk in enumerate(talks)
    ]
    (data / "events.json").write_text(json.dumps(events))
    sender = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.sender",
        url,
        str(data / "events.json"),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await sender.communicate()
    sent: dict[str, float] = json.loads(output)
    return sent


async def until_replied(talks: list[Conversation], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while replied(talks) < len(talks) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def timings(
    talks: list[Conversation],
    sent: dict[str, float],
    replies: ReplyClock,
    timer: ProviderTimer,
    prefix: str,
) -> tuple[list[float], list[float]]:
    """End to end, and the pipeline's own share (minus the provider's time), per message."""
    end_to_end, own = [], []
    for number, talk in enumerate(talks):
        total = replies.arrived[_key(talk)] - sent[_key(talk)]
        end_to_end.append(total)
        own.append(total - timer.took.get(f"{prefix}{number}", 0.0))
    return end_to_end, own


def _key(talk: Conversation) -> str:
    return f"{talk.portal.domain}/{talk.chat.dialog_id}"


async def in_flight(runtime: Runtime, env: dict[str, str], conversations_wanted: int) -> None:
    cloud = FakeBitrix24(client_id="bench", client_secret="bench-secret")
    dify = FakeDify()
    app = dify.add_app(DifyApp(API_KEY, answer="ok", delay=2.0))
    async with cloud.serve(), serve(dify.asgi) as dify_url:
        per_portal = conversations_wanted // 50
        everyone = await setup(runtime, cloud, dify_url, portals=50, dialogs=per_portal + 1)
        # One conversation per portal warms the worker up (tenant, bot, tokens, plan), as in a
        # worker that has been running; the others are the measured burst.
        warm_up = everyone[:: per_portal + 1]
        conversations = [c for c in everyone if c not in warm_up]
        env = env | {"BITBOT_B24_OAUTH_URL": cloud.base_url}
        worker_port = free_port()
        worker = start(worker_command(worker_port), env)
        try:
            wait_ready(f"http://127.0.0.1:{worker_port}/readyz")
            await asyncio.sleep(1.0)
            store_tenants = {
                c.portal.member_id: await _tenant_id(runtime, c.portal) for c in warm_up
            }
            queue = Queue(runtime.redis, runtime.vault, runtime.settings.queue_shards)

            def entry(c: Conversation) -> NewEntry:
                return NewEntry(
                    "b24",
                    store_tenants[c.portal.member_id],
                    c.portal.member_id,
                    urlencode(message_add(c.portal, c.bot, c.chat, c.customer, "Where is it?")),
                    time.time(),
                )

            await queue.enqueue_many([entry(c) for c in warm_up])
            deadline = time.monotonic() + 30
            while replied(warm_up) < len(warm_up) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            idle = rss_kib(worker.pid)
            entries = [entry(c) for c in conversations]
            started = time.perf_counter()
            worker_cpu, own_cpu = cpu_seconds(worker.pid), time.process_time()
            for chunk in range(0, len(entries), 200):
                await queue.enqueue_many(entries[chunk : chunk + 200])
            peak, peak_rss = 0, idle
            deadline = time.monotonic() + 120
            while replied(conversations) < len(conversations) and time.monotonic() < deadline:
                peak = max(peak, app.active_runs)
                peak_rss = max(peak_rss, rss_kib(worker.pid))
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            worker_cpu = cpu_seconds(worker.pid) - worker_cpu
            own_cpu = time.process_time() - own_cpu
            done = replied(conversations)
        finally:
            worker.terminate()
            worker.wait()
    per_turn = (peak_rss - idle) / peak if peak else 0.0
    print(f"(3) in flight: {len(conversations)} conversations, Dify answering in 2 s")
    print(f"    most turns in flight at once   {peak}   (target >= 2,000)")
    memory = f"{idle / 1024:.0f} MiB idle, {peak_rss / 1024:.0f} MiB at peak"
    print(f"    worker memory                  {memory}")
    print(f"    memory per in-flight turn      {per_turn:.0f} KiB")
    print(f"    answered                       {done} of {len(conversations)} in {elapsed:.1f} s")
    print(
        f"    worker CPU per turn            {1000 * worker_cpu / max(done, 1):.2f} ms"
        f"   (fakes in this process: {1000 * own_cpu / max(done, 1):.2f} ms)"
    )


async def _tenant_id(runtime: Runtime, portal: Portal) -> int:
    from tenants.schema import tenants

    async with runtime.engine.connect() as connection:
        value = await connection.scalar(
            sa.select(tenants.c.id).where(tenants.c.member_id == portal.member_id)
        )
    return int(str(value))


async def fresh_state(runtime: Runtime) -> None:
    await runtime.redis.flushdb()
    async with runtime.engine.begin() as connection:
        for table in ("commands", "bots", "connectors", "providers", "credentials", "tenants"):
            await connection.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608


async def main_async(which: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        await fresh_database()
        await Redis.from_url(BENCH_REDIS_URL).flushdb()
        env = bench_env(data, BITBOT_QUEUE_SHARDS="8")
        runtime = build_runtime(load_settings(env))
        await upgrade(runtime.engine)
        try:
            if which in ("all", "latency"):
                await latency(runtime, env, data)
            if which in ("all", "inflight"):
                await fresh_state(runtime)
                await in_flight(runtime, env, 2500)
        finally:
            await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=["all", "latency", "inflight"])
    asyncio.run(main_async(parser.parse_args().which))


if __name__ == "__main__":
    main()
