"""How many replies per second one portal sustains through batching under its 2 req/s bucket.

Both buckets (the fake portal's and BitBot's shared one) start full, so the figure is the sustained
rate, not the burst. The target is >= 90 replies/s; the bucket's ceiling is 2 x 50 = 100/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2

from tenants.bitrix24 import Bitrix24Client, Budget, Coalescer, build_services
from tenants.migrate import upgrade
from tenants.runtime import build_runtime
from tenants.settings import load_settings
from tenants.store import Portal as PortalInstall
from tenants.store import TokenPair
from tests.fakes.bitrix24 import FakeBitrix24


async def measure(replies: int) -> None:
    cloud = FakeBitrix24(client_id="bench", client_secret="bench-secret")
    portal = cloud.add_portal("bench.bitrix24.com")
    bot = portal.add_v1_bot("bench", "https://bitbot.example.com/b24/events")
    async with cloud.serve(), httpx2.AsyncClient() as http:
        with tempfile.TemporaryDirectory() as data:
            runtime = build_runtime(load_settings(_env(Path(data), cloud.base_url)))
            await upgrade(runtime.engine)
            services = build_services(runtime, http)
            tenant = await services.store.install(
                PortalInstall(
                    portal.member_id,
                    portal.domain,
                    portal.client_endpoint,
                    portal.server_endpoint,
                    portal.scope,
                    portal.application_token,
                ),
                TokenPair(
                    portal.auth.access_token,
                    portal.auth.refresh_token,
                    datetime.fromtimestamp(time.time() + 3600, UTC),
                ),
            )
            budget = Budget()
            while portal.bucket.take():
                pass  # the portal's bucket is full, as on a busy portal
            await services.limiter.penalize(portal.member_id, budget)
            coalescer = Coalescer(Bitrix24Client(tenant, services, budget))

            started = time.perf_counter()
            await asyncio.gather(
                *(
                    coalescer.call(
                        "imbot.message.add",
                        {"BOT_ID": bot.id, "DIALOG_ID": "chat1", "MESSAGE": f"reply {n}"},
                    )
                    for n in range(replies)
                )
            )
            elapsed = time.perf_counter() - started
            await runtime.close()
    limited = sum(1 for call in portal.calls if call.error == "QUERY_LIMIT_EXCEEDED")
    print(f"replies delivered:          {len(portal.messages_to('chat1'))}")
    print(f"batch requests:             {len(portal.calls_of('batch'))}")
    print(f"QUERY_LIMIT_EXCEEDED:       {limited}")
    print(f"elapsed:                    {elapsed:.2f} s")
    print(f"sustained replies/s:        {replies / elapsed:.1f}  (target >= 90, ceiling 100)")


def _env(data: Path, oauth_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{data / 'bench.db'}",
        "BITBOT_SECRET_KEYS": "bench:" + base64.b64encode(b"k" * 32).decode(),
        "BITBOT_HASH_KEY": base64.b64encode(b"h" * 32).decode(),
        "BITBOT_B24_OAUTH_URL": oauth_url,
        "BITBOT_B24_CLIENT_ID": "bench",
        "BITBOT_B24_CLIENT_SECRET": "bench-secret",
        "BITBOT_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replies", type=int, default=1000)
    asyncio.run(measure(parser.parse_args().replies))


if __name__ == "__main__":
    main()
