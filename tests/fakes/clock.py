"""A manual clock for fakes whose behaviour depends on time (token expiry, rate limits)."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
"""Anything that returns the current unix time in seconds, like ``time.time``."""


class FakeClock:
    """Unix time that only moves when a test says so.

    Pass the instance itself (it is callable) or its bound ``now`` wherever a ``Clock`` is expected.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += seconds

    def __call__(self) -> float:
        return self._now
