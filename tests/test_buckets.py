"""Leaky buckets in Redis: one bucket, and several taken in one round trip."""

from __future__ import annotations

import pytest

from tenants.buckets import Buckets, Rate
from tenants.runtime import Runtime
from tests.conftest import SteppedClock


@pytest.fixture
def buckets(runtime: Runtime, clock: SteppedClock) -> Buckets:
    return Buckets(runtime.redis, clock)


async def test_a_bucket_lets_its_burst_through_then_asks_to_wait(buckets: Buckets) -> None:
    rate = Rate(per_second=2.0, burst=3)
    waits = [await buckets.reserve("bitbot:test:a", rate) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert await buckets.reserve("bitbot:test:a", rate, best_effort=True) == -1


async def test_several_buckets_wait_for_the_fullest(buckets: Buckets, clock: SteppedClock) -> None:
    roomy, tight = Rate.per_minute(600), Rate.per_minute(2)
    wanted = [("bitbot:test:tenant", roomy), ("bitbot:test:dialog", tight)]
    assert await buckets.reserve_all(wanted) == 0.0
    assert await buckets.reserve_all(wanted) == 0.0
    assert await buckets.reserve_all(wanted) == pytest.approx(30.0)
    # Each call took a place in both buckets, the roomy one included.
    assert await buckets.reserve("bitbot:test:tenant", Rate(10.0, 3), best_effort=True) == -1
    clock.fake.advance(60)
    assert await buckets.reserve_all(wanted) == 0.0
    assert await buckets.reserve_all([]) == 0.0
