"""The real commands as a newcomer and an operator start them, as separate processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from tests.conftest import Backend
from tests.fakes.server import free_port

START_TIMEOUT_S = 30


def bare_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("BITBOT_")}
    keep.pop("DATABASE_URL", None)
    keep.pop("REDIS_URL", None)
    return keep | extra


@contextmanager
def bitbot(args: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bitbot", *args],
        cwd=cwd,
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
            process.wait()


def wait_for(url: str, process: subprocess.Popen[str]) -> httpx2.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"bitbot exited with {process.returncode}:\n{output}")
        try:
            return httpx2.get(url, timeout=1)
        except httpx2.TransportError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT_S} s")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


def test_embedded_run_needs_no_services_and_no_keys(tmp_path: Path) -> None:
    port = free_port()
    with bitbot(["run", "--port", str(port)], tmp_path, bare_env()) as process:
        health = wait_for(f"http://127.0.0.1:{port}/healthz", process)
        ready = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        output = stop(process)
    assert health.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert "Using development keys from var/dev-keys.env (not for production)." in output
    assert f"http://127.0.0.1:{port}" in output
    key_file = tmp_path / "var" / "dev-keys.env"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "var" / "bitbot.db").exists()


def test_embedded_run_keeps_its_keys_across_restarts(tmp_path: Path) -> None:
    for _ in range(2):
        port = free_port()
        with bitbot(["run", "--port", str(port)], tmp_path, bare_env()) as process:
            wait_for(f"http://127.0.0.1:{port}/healthz", process)
            stop(process)
    assert (tmp_path / "var" / "dev-keys.env").read_text().count("BITBOT_SECRET_KEYS=") == 1


@pytest.mark.pg
@pytest.mark.redis
@pytest.mark.parametrize("backend", ["services"], indirect=True)
@pytest.mark.parametrize("service", ["gateway", "worker", "admin"])
def test_services_start_on_postgresql_and_redis(
    backend: Backend, tmp_path: Path, service: str
) -> None:
    env = bare_env(
        **backend.env(tmp_path),
        BITBOT_PUBLIC_URL="https://bitbot.example.com",
        BITBOT_B24_CLIENT_ID="local.123",
        BITBOT_B24_CLIENT_SECRET="client-secret",
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "bitbot", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    with bitbot([service, "--port", str(port)], tmp_path, env) as process:
        wait_for(f"http://127.0.0.1:{port}/healthz", process)
        ready = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        stop(process)
    assert ready.status_code == 200, ready.text
