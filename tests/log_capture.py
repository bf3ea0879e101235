"""Logs configured as a service configures them, written to a buffer, and put back afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from typing import Any

import structlog

from tenants.logs import QUIET_BELOW_DEBUG, UVICORN_LOGGERS, clear_context, configure_logging

TOUCHED = ("", *UVICORN_LOGGERS, *QUIET_BELOW_DEBUG)


@dataclass
class _Saved:
    handlers: list[logging.Handler]
    level: int
    propagate: bool


@contextmanager
def captured_logs(
    service: str, *, level: str = "DEBUG", as_json: bool = True
) -> Iterator[StringIO]:
    saved = {name: _save(logging.getLogger(name)) for name in TOUCHED}
    buffer = StringIO()
    configure_logging(service, json=as_json, level=level, stream=buffer)
    try:
        yield buffer
    finally:
        for name, state in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = state.handlers
            logger.setLevel(state.level)
            logger.propagate = state.propagate
        logging.captureWarnings(False)
        structlog.reset_defaults()
        clear_context()


def _save(logger: logging.Logger) -> _Saved:
    return _Saved(list(logger.handlers), logger.level, logger.propagate)


def json_lines(buffer: StringIO) -> list[dict[str, Any]]:
    """Every line as a JSON object; fails on a line that is not one."""
    lines = [line for line in buffer.getvalue().splitlines() if line]
    parsed = []
    for line in lines:
        value = json.loads(line)
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed
