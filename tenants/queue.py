"""The durable event queue both services use (DESIGN §9).

- Streams ``bitbot:q:{shard}`` with ``shard = crc32(member_id) % shards``, one consumer group
  ``workers``, dead letters in ``bitbot:dlq``.
- Entry fields: ``kind`` (``b24`` | ``test`` | ``replay``), ``tenant_id``, ``received_at``,
  ``attempt``, ``payload``. The payload is sealed by the vault and bound to its tenant, so no
  plaintext token ever enters Redis.
- Dead letters keep the sealed payload (for replay) next to a short, non-secret ``summary``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from tenants import metrics
from tenants.autopipe import AutoPipeline
from tenants.errors import VaultError
from tenants.vault import Vault, tenant_context

Kind = Literal["b24", "test", "replay"]
GROUP = "workers"
DEAD_LETTERS = "bitbot:dlq"
DEAD_LETTER_CAP = 100_000
STREAM_CAP = 1_000_000


FIELD_NAMES = ("kind", "tenant_id", "received_at", "attempt", "payload")
# Appends a batch in one command: KEYS are the entries' streams, ARGV the stream cap, then five
# field values per entry. One reply for the batch, instead of one per XADD, halves the intake's
# Redis cost on the client side. The same XADD ... MAXLEN ~ as a single append.
_APPEND = """
local ids = {}
for i, stream in ipairs(KEYS) do
  local at = 1 + (i - 1) * 5
  ids[i] = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[1], '*',
    'kind', ARGV[at + 1], 'tenant_id', ARGV[at + 2], 'received_at', ARGV[at + 3],
    'attempt', ARGV[at + 4], 'payload', ARGV[at + 5])
end
return ids
"""
_APPEND_SHA = hashlib.sha1(_APPEND.encode()).hexdigest()  # noqa: S324 - Redis's script id


def stream_name(shard: int) -> str:
    return f"bitbot:q:{shard}"


def shard_of(member_id: str, shards: int) -> int:
    return zlib.crc32(member_id.encode()) % shards


def payload_context(tenant_id: int) -> str:
    return tenant_context(tenant_id, "queue", "payload")


@dataclass(frozen=True)
class NewEntry:
    kind: Kind
    tenant_id: int
    member_id: str
    payload: str = field(repr=False)
    received_at: float = 0.0
    attempt: int = 0


@dataclass(frozen=True)
class Envelope:
    kind: Kind
    tenant_id: int
    received_at: float
    attempt: int
    payload: str  # opened: the raw Bitrix24 body, or a test turn as JSON


@dataclass(frozen=True)
class Delivery:
    stream: str
    entry_id: str
    envelope: Envelope
    deliveries: int = 1  # how often the group has handed this entry out (XAUTOCLAIM counts)
    broken: str = ""  # why the entry cannot be opened; such an entry goes to the dead letters


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    kind: Kind
    tenant_id: int
    received_at: float
    attempt: int
    reason: str
    summary: str


class Queue:
    def __init__(self, redis: Redis, vault: Vault, shards: int) -> None:
        # redis-py types stream replies as unions of every shape; the parsing below checks them.
        self._redis: Any = redis
        self._vault = vault
        self.shards = shards
        self._batched = AutoPipeline.of(redis)

    async def ensure_groups(self) -> None:
        for shard in range(self.shards):
            try:
                await self._redis.xgroup_create(stream_name(shard), GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def enqueue(
        self,
        kind: Kind,
        tenant_id: int,
        member_id: str,
        payload: str,
        received_at: float,
        attempt: int = 0,
    ) -> str:
        entry = NewEntry(kind, tenant_id, member_id, payload, received_at, attempt)
        return (await self.enqueue_many([entry]))[0]

    async def enqueue_many(self, entries: list[NewEntry]) -> list[str]:
        """Append in one round trip and one command; each entry is sealed to its own tenant."""
        if not entries:
            return []
        streams: list[str] = []
        values: list[str | bytes] = [str(STREAM_CAP)]
        for entry in entries:
            streams.append(stream_name(shard_of(entry.member_id, self.shards)))
            values += self._field_values(entry)
        command = ("EVALSHA", _APPEND_SHA, len(streams), *streams, *values)
        try:
            entry_ids = await self._redis.execute_command(*command)
        except NoScriptError:  # a restarted or flushed Redis: load the script, then run it
            await self._redis.script_load(_APPEND)
            entry_ids = await self._redis.execute_command(*command)
        return [_text(entry_id) for entry_id in entry_ids]

    def fields(self, entry: NewEntry) -> dict[str, str | bytes]:
        """The stream fields of an entry, its payload sealed to its tenant."""
        return dict(zip(FIELD_NAMES, self._field_values(entry), strict=True))

    def _field_values(self, entry: NewEntry) -> tuple[str, str, str, str, bytes]:
        """In the order of ``FIELD_NAMES``, which ``_APPEND`` follows."""
        return (
            entry.kind,
            str(entry.tenant_id),
            repr(entry.received_at),
            str(entry.attempt),
            self._vault.seal(entry.payload, payload_context(entry.tenant_id)),
        )

    async def read(
        self, consumer: str, shards: list[int], count: int, block_ms: int
    ) -> list[Delivery]:
        if not shards:
            return []
        streams = {stream_name(shard): ">" for shard in shards}
        answer = await self._redis.xreadgroup(GROUP, consumer, streams, count=count, block=block_ms)
        deliveries: list[Delivery] = []
        for stream, entries in answer or []:
            deliveries += [self._delivery(_text(stream), _text(i), f) for i, f in entries]
        return deliveries

    async def claim(
        self, consumer: str, shard: int, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        """Take over entries another consumer read but never acknowledged."""
        stream = stream_name(shard)
        answer = await self._redis.xautoclaim(
            stream, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
        )
        entries = answer[1] if answer else []
        claimed = [(_text(i), f) for i, f in entries if f]
        counts = await self._delivery_counts(stream, [entry_id for entry_id, _ in claimed])
        return [self._delivery(stream, i, f, counts.get(i, 1)) for i, f in claimed]

    async def _delivery_counts(self, stream: str, entry_ids: list[str]) -> dict[str, int]:
        if not entry_ids:
            return {}
        pending = await self._redis.xpending_range(
            stream,
            GROUP,
            min=min(entry_ids, key=_order),
            max=max(entry_ids, key=_order),
            count=len(entry_ids) * 2,
        )
        return {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge and delete; acks of concurrent turns leave in one pipeline."""
        await self._batched.call_many(
            [
                ("XACK", delivery.stream, GROUP, delivery.entry_id),
                ("XDEL", delivery.stream, delivery.entry_id),
            ]
        )

    async def dead_letter(self, delivery: Delivery, reason: str, summary: str) -> str:
        """Move an entry out of the queue for good; the operator can replay it later."""
        raw = await self._redis.xrange(delivery.stream, delivery.entry_id, delivery.entry_id)
        sealed = raw[0][1][b"payload"] if raw else b""
        envelope = delivery.envelope
        fields = {
            "kind": envelope.kind,
            "tenant_id": str(envelope.tenant_id),
            "received_at": repr(envelope.received_at),
            "attempt": str(envelope.attempt),
            "reason": reason[:200],
            "summary": summary[:500],
            "payload": sealed,
        }
        entry_id = await self._redis.xadd(
            DEAD_LETTERS,
            fields,
            maxlen=DEAD_LETTER_CAP,
            approximate=True,
        )
        await self.ack(delivery)
        metrics.DEAD_LETTERS.labels(reason.split(":", 1)[0][:24]).inc()
        return _text(entry_id)

    async def dead_letters(
        self, count: int = 100, tenant_id: int | None = None
    ) -> list[DeadLetter]:
        entries = await self._redis.xrevrange(DEAD_LETTERS, count=count)
        letters = [_dead_letter(_text(i), f) for i, f in entries]
        return [d for d in letters if tenant_id is None or d.tenant_id == tenant_id]

    async def replay(self, dead_letter_id: str, member_id: str) -> str | None:
        """Put a dead letter back on the queue as a ``replay`` entry; None if it is gone."""
        entries = await self._redis.xrange(DEAD_LETTERS, dead_letter_id, dead_letter_id)
        if not entries:
            return None
        fields = entries[0][1]
        tenant_id = int(fields[b"tenant_id"])
        payload = self._vault.open(fields[b"payload"], payload_context(tenant_id))
        entry_id = await self.enqueue(
            "replay", tenant_id, member_id, payload, float(fields[b"received_at"])
        )
        await self._redis.xdel(DEAD_LETTERS, dead_letter_id)
        return entry_id

    async def backlog(self, shard: int) -> tuple[int, float | None]:
        """Entries in the shard and when the oldest of them was received."""
        stream = stream_name(shard)
        length = int(await self._redis.xlen(stream))
        first = await self._redis.xrange(stream, count=1)
        oldest = float(first[0][1][b"received_at"]) if first else None
        return length, oldest

    async def lag(self) -> dict[int, int]:
        """Entries waiting per shard (not yet read plus read but unacknowledged)."""
        waiting: dict[int, int] = {}
        for shard in range(self.shards):
            waiting[shard] = int(await self._redis.xlen(stream_name(shard)))
        return waiting

    def _delivery(
        self, stream: str, entry_id: str, fields: Mapping[bytes, bytes], deliveries: int = 1
    ) -> Delivery:
        try:
            tenant_id = int(fields[b"tenant_id"])
            envelope = Envelope(
                kind=cast(Kind, fields[b"kind"].decode()),
                tenant_id=tenant_id,
                received_at=float(fields[b"received_at"]),
                attempt=int(fields[b"attempt"]),
                payload=self._vault.open(fields[b"payload"], payload_context(tenant_id)),
            )
        except (KeyError, ValueError, VaultError) as error:
            envelope = Envelope("b24", int(fields.get(b"tenant_id", b"0") or 0), 0.0, 0, "")
            return Delivery(stream, entry_id, envelope, deliveries, f"unreadable entry: {error}")
        return Delivery(stream, entry_id, envelope, deliveries)


def _dead_letter(entry_id: str, fields: Mapping[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        entry_id=entry_id,
        kind=cast(Kind, fields[b"kind"].decode()),
        tenant_id=int(fields[b"tenant_id"]),
        received_at=float(fields[b"received_at"]),
        attempt=int(fields[b"attempt"]),
        reason=fields[b"reason"].decode(),
        summary=fields[b"summary"].decode(),
    )


def _order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
