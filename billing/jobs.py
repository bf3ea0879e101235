"""The periodic billing work a long-running process runs beside its consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from billing.metering import Meter
from billing.subscriptions import Subscriptions

log = logging.getLogger("bitbot.billing")

EVERY_S = 60.0


async def run_billing_jobs(
    meter: Meter, subscriptions: Subscriptions, stop: asyncio.Event, every_s: float = EVERY_S
) -> None:
    """Flush metered usage and ``tick`` subscriptions every ``every_s``, and flush once more on
    stop. Any process may run it; concurrent runs are safe."""
    while True:
        try:
            await meter.flush()
            if not stop.is_set():
                await subscriptions.tick()
        except Exception:
            log.exception("billing jobs failed; retrying next round")
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
