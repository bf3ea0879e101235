"""Structured logs: one JSON object per line on stderr, from our loggers and every library's.

structlog renders stdlib records, so ``logging.getLogger("bitbot.…")`` in our code, uvicorn's
error and access loggers, httpx2 and Python warnings (SQLAlchemy's among them) all come out the
same way: ``timestamp``, ``level``, ``logger``, ``event``, ``service``, and ``request_id``,
``tenant_id``, ``bot_id``, ``dialog_id`` while they are bound (``bind_context``). Every line
passes ``tenants.scrub`` last, so a secret that reaches a log call is masked before it is written.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tenants.errors import SettingsError
from tenants.scrub import scrub_mapping

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CONTEXT_KEYS = ("request_id", "tenant_id", "bot_id", "dialog_id")
# Fields the pipeline itself writes; scrubbing them would only cost time.
OWN_FIELDS = ("timestamp", "level", "logger", "service")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# A line per outbound HTTP request is noise at thousands of portals; DEBUG brings it back.
QUIET_BELOW_DEBUG = ("httpx2", "httpcore2", "aiosqlite", "asyncio")
# Extra attributes some libraries attach to their records that carry nothing for us.
DROPPED_EXTRAS = ("color_message",)


def configure_logging(
    service: str, *, json: bool = True, level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Route all logging through structlog for ``service``; call once at process start.

    ``json=False`` renders for humans (``bitbot run`` in a terminal). ``stream`` defaults to
    stderr. Calling it again replaces the previous configuration.
    """
    level = level.upper()
    if level not in LEVELS:
        raise SettingsError(f"BITBOT_LOG_LEVEL must be one of {', '.join(LEVELS)}")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _ServiceAdder(service),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=_is_tty(stream or sys.stderr))
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_extras],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _scrub,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:  # uvicorn's own dictConfig may have run before us
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    for name in QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def bind_context(**values: Any) -> None:
    """Attach ``values`` to every line logged from this task (and tasks it starts) onwards."""
    structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()


@contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """``bind_context`` for a block; the previous values come back after it.

    Resets the tokens of its own bindings, rather than structlog's ``bound_contextvars``, which
    copies every context variable of the task on the way in (a cost on each gateway request)."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def context_var(key: str) -> contextvars.ContextVar[Any]:
    """The variable behind the log context's ``key``, for a hot path that binds it per request:
    ``set`` and ``reset`` on it cost a fraction of ``bound_context``. Found through structlog's
    public API: binding returns tokens, and a token knows its variable."""
    token = structlog.contextvars.bind_contextvars(**{key: None})[key]
    structlog.contextvars.reset_contextvars(**{key: token})
    return token.var


def current_context() -> dict[str, Any]:
    """The bound ids among ``CONTEXT_KEYS`` (for error reports)."""
    bound = structlog.contextvars.get_contextvars()
    return {key: bound[key] for key in CONTEXT_KEYS if key in bound}


class _ServiceAdder:
    def __init__(self, service: str) -> None:
        self._service = service

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event["service"] = self._service
        return event


def _drop_extras(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in DROPPED_EXTRAS:
        event.pop(key, None)
    return event


def _scrub(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    return scrub_mapping(event, keep=OWN_FIELDS)


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
