"""Appending to the queue: a batch in one command, sealed, in order, on both storage backends."""

from __future__ import annotations

from typing import Any

from tenants.queue import FIELD_NAMES, NewEntry, Queue, shard_of, stream_name
from tenants.runtime import Runtime


async def test_a_batch_lands_in_its_shards_in_order_and_sealed(runtime: Runtime) -> None:
    queue = Queue(runtime.redis, runtime.vault, 4)
    await queue.ensure_groups()
    entries = [
        NewEntry("b24", tenant_id, f"member-{tenant_id % 3}", f"event {n} of {tenant_id}", n, n % 2)
        for n, tenant_id in enumerate([7, 8, 9, 7, 8, 9, 7], start=1)
    ]

    entry_ids = await queue.enqueue_many(entries)

    streams = [stream_name(shard_of(entry.member_id, 4)) for entry in entries]
    assert len(set(zip(streams, entry_ids, strict=True))) == len(entries)
    for entry, entry_id in zip(entries, entry_ids, strict=True):
        stream = stream_name(shard_of(entry.member_id, 4))
        stored: Any = await runtime.redis.xrange(stream, entry_id, entry_id)
        ((stored_id, fields),) = stored
        assert stored_id.decode() == entry_id
        assert tuple(name.decode() for name in fields) == FIELD_NAMES
        assert entry.payload.encode() not in fields[b"payload"]  # sealed
    delivered = await queue.read("c1", list(range(4)), count=100, block_ms=10)
    opened = {(d.stream, d.entry_id): d.envelope for d in delivered}
    for entry, stream, entry_id in zip(entries, streams, entry_ids, strict=True):
        envelope = opened[stream, entry_id]
        assert (envelope.kind, envelope.tenant_id, envelope.payload) == (
            entry.kind,
            entry.tenant_id,
            entry.payload,
        )
        assert (envelope.received_at, envelope.attempt) == (entry.received_at, entry.attempt)
    for shard in range(4):  # each shard in the order of the batch
        ours = [
            i for e, i in zip(entries, entry_ids, strict=True) if shard_of(e.member_id, 4) == shard
        ]
        assert [d.entry_id for d in delivered if d.stream == stream_name(shard)] == ours


async def test_appending_after_redis_lost_its_scripts(runtime: Runtime) -> None:
    queue = Queue(runtime.redis, runtime.vault, 2)
    await queue.enqueue_many([NewEntry("b24", 1, "m", "first")])
    await runtime.redis.script_flush()

    (entry_id,) = await queue.enqueue_many([NewEntry("b24", 1, "m", "second")])

    assert entry_id
    assert await queue.enqueue_many([]) == []
