"""(1) Events per second one gateway process acknowledges, as a ratio to a bare Starlette endpoint.

Both run as single uvicorn processes and are loaded by ``wrk`` in the same run with the same body:
a real v1 Open Channel message, authenticated against an installed tenant and appended (sealed) to
a real Redis stream. Target: ratio >= 0.5.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from redis.asyncio import Redis

from bench.support import (
    BENCH_REDIS_URL,
    bench_env,
    free_port,
    fresh_database,
    install,
    start,
    wait_ready,
)
from tenants.migrate import upgrade
from tenants.runtime import build_runtime
from tenants.settings import load_settings
from tests.fakes.bitrix24 import FakeBitrix24, message_add

DURATION_S = 4
CONNECTIONS = 32


async def prepare(data: Path) -> str:
    await fresh_database()
    await (Redis.from_url(BENCH_REDIS_URL)).flushdb()
    runtime = build_runtime(load_settings(bench_env(data)))
    await upgrade(runtime.engine)
    cloud = FakeBitrix24()
    portal = cloud.add_portal("bench.bitrix24.com", v2=False)
    bot = portal.add_v1_bot("bench", "https://bitbot.example.com/b24/events")
    await install(runtime, portal)
    await runtime.close()
    customer = portal.add_customer("Ann")
    return urlencode(message_add(portal, bot, portal.open_line_chat(customer), customer, "Hi"))


def load(url: str, body: str, data: Path) -> tuple[float, str]:
    script = data / "post.lua"
    lua_body = body.replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{lua_body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )
    output = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rate, errors.group(1) if errors else "0"


SERVERS = {
    "bare Starlette endpoint": ["-m", "uvicorn", "bench.bare_app:app", "--log-level", "warning"],
    "BitBot gateway": ["-m", "bitbot", "gateway"],
}
ROUNDS = 3


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make bench` installs it (apt-get install wrk)")
    rates: dict[str, list[float]] = {name: [] for name in SERVERS}
    rejected = 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        body = asyncio.run(prepare(data))
        env = bench_env(data)
        # Alternate the two servers so a noisy neighbour hurts both alike.
        for _ in range(ROUNDS):
            for name, args in SERVERS.items():
                rate, errors = _measure(args, env, body, data)
                rates[name].append(rate)
                rejected += int(errors) if "bitbot" in args else 0
    bare = statistics.median(rates["bare Starlette endpoint"])
    gateway = statistics.median(rates["BitBot gateway"])
    print(f"bare Starlette endpoint:   {bare:8.0f} requests/s (median of {ROUNDS} rounds)")
    print(f"gateway acknowledged:      {gateway:8.0f} events/s  (non-2xx: {rejected})")
    print(f"ratio:                     {gateway / bare:8.2f}  (target >= 0.5)")


def _measure(args: list[str], env: dict[str, str], body: str, data: Path) -> tuple[float, str]:
    port = free_port()
    process = start([*args, "--port", str(port)], env)
    try:
        if "bitbot" in args:
            wait_ready(f"http://127.0.0.1:{port}/readyz")
        else:
            _wait_listening(port)
        return load(f"http://127.0.0.1:{port}/b24/events", body, data)
    finally:
        process.terminate()
        process.wait()


def _wait_listening(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the bare app did not start")


if __name__ == "__main__":
    main()
