"""The ``bitbot`` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from admin_ui import create_admin_app, create_operator
from bitbot.allinone import create_all_in_one_app
from bitbot.embedded import with_dev_keys
from bitbot.progress import ProgressBar
from bitbot.serving import Server
from gateway import create_gateway_app, create_worker_health_app, run_consumers
from tenants.db import create_engine
from tenants.errors import BitBotError
from tenants.keyrotation import rotate
from tenants.logs import configure_logging
from tenants.migrate import upgrade
from tenants.runtime import Runtime, build_runtime
from tenants.scrub import remember_settings
from tenants.sentry import init_sentry
from tenants.settings import DEFAULT_DATA_DIR, Settings, load_settings
from tenants.vault import generate_key

SERVICE_PORTS = {"run": 8000, "gateway": 8000, "admin": 8001, "worker": 8002}
# What each production service cannot start without; the embedded run needs none of them.
SERVICE_REQUIREMENTS = {
    "gateway": ("BITBOT_SECRET_KEYS", "BITBOT_HASH_KEY", "REDIS_URL"),
    "worker": (
        "BITBOT_SECRET_KEYS",
        "BITBOT_HASH_KEY",
        "REDIS_URL",
        "BITBOT_B24_CLIENT_ID",
        "BITBOT_B24_CLIENT_SECRET",
    ),
    "admin": (
        "BITBOT_SECRET_KEYS",
        "BITBOT_HASH_KEY",
        "REDIS_URL",
        "BITBOT_PUBLIC_URL",
        "BITBOT_B24_CLIENT_ID",
        "BITBOT_B24_CLIENT_SECRET",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(args.handler(args))
    except BitBotError as error:
        print(f"bitbot: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): less CPU per event for every service.
    ``BITBOT_EVENT_LOOP=asyncio`` keeps the standard loop."""
    if os.environ.get("BITBOT_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitbot", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")
    for name, handler, text in (
        ("run", _run, "gateway, admin and worker in one process on the embedded default"),
        ("gateway", _gateway, "the event intake service"),
        ("worker", _worker, "the queue worker (health on --port)"),
        ("admin", _admin, "the admin service: install, app page, operator console"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=SERVICE_PORTS[name])
        command.set_defaults(handler=handler)
    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        handler=_migrate
    )
    keys = commands.add_parser("keys", help="vault keys").add_subparsers(required=True)
    generate = keys.add_parser("generate", help="print a new BITBOT_SECRET_KEYS entry")
    generate.add_argument("--kid", default=None, help="key id (default: k + a timestamp)")
    generate.set_defaults(handler=_keys_generate)
    keys.add_parser(
        "rotate", help="re-encrypt every secret with the first key of BITBOT_SECRET_KEYS"
    ).set_defaults(handler=_keys_rotate)
    operator = commands.add_parser("operator", help="operator accounts").add_subparsers(
        required=True
    )
    create_user = operator.add_parser("create-user", help="add an operator console account")
    create_user.add_argument("--email", required=True)
    create_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create_user.set_defaults(handler=_operator_create_user)
    return parser


def _settings() -> Settings:
    return load_settings(os.environ)


def _service_settings(service: str) -> Settings:
    settings = _settings()
    settings.require(*SERVICE_REQUIREMENTS[service])
    return settings


def _start_service(service: str) -> Settings:
    """JSON logs, then settings, then error reporting: the start of every service command."""
    configure_logging(service, level=_log_level())
    settings = _service_settings(service)
    _report_errors(settings, service)
    return settings


def _report_errors(settings: Settings, service: str) -> None:
    remember_settings(settings)  # logs and Sentry mask these values wherever they show up
    init_sentry(settings, service)


def _log_level() -> str:
    return os.environ.get("BITBOT_LOG_LEVEL", "").strip() or "INFO"


async def _run(args: argparse.Namespace) -> None:
    # Readable lines in a terminal; JSON when stderr goes to a file or a log collector.
    configure_logging("run", json=not sys.stderr.isatty(), level=_log_level())
    data_dir = os.environ.get("BITBOT_DATA_DIR") or DEFAULT_DATA_DIR
    env, key_file = with_dev_keys(os.environ, Path(data_dir))
    if key_file is not None:
        print(f"Using development keys from {key_file} (not for production).")
    settings = load_settings(env)
    _report_errors(settings, "run")
    if settings.embedded_redis:
        print("Using in-process Redis: queue and sessions live in memory and vanish on exit.")
    runtime = build_runtime(settings)
    await upgrade(runtime.engine)
    base = f"http://{args.host}:{args.port}"
    print(f"BitBot (gateway + admin + worker) on {base}  —  health: {base}/healthz")
    await _serve(create_all_in_one_app(runtime), args, runtime, with_consumers=True)


async def _gateway(args: argparse.Namespace) -> None:
    runtime = build_runtime(_start_service("gateway"))
    # Events are counted in metrics and rejections logged; a line per accepted event is noise.
    await _serve(create_gateway_app(runtime), args, runtime, access_log=False)


async def _admin(args: argparse.Namespace) -> None:
    runtime = build_runtime(_start_service("admin"))
    await _serve(create_admin_app(runtime), args, runtime)


async def _worker(args: argparse.Namespace) -> None:
    runtime = build_runtime(_start_service("worker"))
    await _serve(create_worker_health_app(runtime), args, runtime, with_consumers=True)


async def _serve(
    app: ASGIApp,
    args: argparse.Namespace,
    runtime: Runtime,
    with_consumers: bool = False,
    access_log: bool = True,
) -> None:
    # log_config=None: uvicorn's loggers stay as configure_logging set them.
    config = uvicorn.Config(
        app, host=args.host, port=args.port, lifespan="on", access_log=access_log, log_config=None
    )
    server = Server(config)
    stop = asyncio.Event()
    consumers = asyncio.create_task(run_consumers(runtime, stop)) if with_consumers else None
    try:
        await server.serve()
    finally:
        stop.set()
        if consumers is not None:
            await consumers
        await runtime.close()


async def _migrate(_: argparse.Namespace) -> None:
    engine = create_engine(_settings().database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    print("Database schema is up to date.")


async def _keys_generate(args: argparse.Namespace) -> None:
    import time

    print(generate_key(args.kid or f"k{time.strftime('%Y%m%d')}"))


async def _keys_rotate(_: argparse.Namespace) -> None:
    runtime = build_runtime(_settings())
    bar = ProgressBar("Re-encrypting secrets")
    try:
        report = await rotate(runtime.engine, runtime.vault, bar)
    finally:
        bar.finish()
        await runtime.close()
    print(
        f"{report.rotated} of {report.examined} secrets re-encrypted to key"
        f" {runtime.vault.primary_kid!r}."
    )


async def _operator_create_user(args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)
    engine = create_engine(_settings().database_url)
    try:
        operator_id = await create_operator(engine, args.email, password)
    finally:
        await engine.dispose()
    print(f"Operator {args.email.strip().lower()} created (id {operator_id}).")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise BitBotError("the passwords do not match")
    return first
