"""A turn's view of the session store: the prefetched id, and writes saved after the answer."""

from __future__ import annotations

import fakeredis

from gateway.providers import RedisSessions
from gateway.turnsessions import TurnSessions

KEY = "bitbot:member:55:chat7"


async def test_the_prefetched_id_is_read_and_changes_wait_for_save() -> None:
    redis = fakeredis.FakeAsyncRedis()
    store = RedisSessions(redis)
    await store.set(KEY, "old", 60)
    await store.set("bitbot:other", "kept", 60)
    turn = TurnSessions(store, KEY, "old")

    assert await turn.get(KEY) == "old"
    await turn.forget(KEY)  # the remote conversation was gone
    assert await turn.get(KEY) is None
    await turn.set(KEY, "new", 60)
    assert await turn.get(KEY) == "new"
    assert await store.get(KEY) == "old"  # nothing written yet
    assert await turn.get("bitbot:other") == "kept"  # other keys read through

    await turn.save()
    assert await store.get(KEY) == "new"
    assert 0 < await redis.ttl(KEY) <= 60


async def test_a_forgotten_session_is_deleted_on_save() -> None:
    store = RedisSessions(fakeredis.FakeAsyncRedis())
    await store.set(KEY, "ended", 60)
    turn = TurnSessions(store, KEY, "ended")
    await turn.forget(KEY)
    await turn.save()
    assert await store.get(KEY) is None
    await turn.save()  # nothing left to write
    assert await store.get(KEY) is None
