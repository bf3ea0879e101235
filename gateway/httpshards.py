"""Provider connections spread over several pools.

httpcore's pool looks at every connection it holds whenever a request starts or ends, so one pool
with thousands of open streams (slow flows, one stream per turn) spends its time scanning. Each
conversation uses the pool its session key hashes to; a pool keeps its keep-alive connections.
"""

from __future__ import annotations

import zlib

import httpx2

SHARDS = 32
PER_SHARD = httpx2.Limits(max_connections=512, max_keepalive_connections=32)


class ClientShards:
    def __init__(self, count: int = SHARDS, limits: httpx2.Limits = PER_SHARD) -> None:
        self._clients = [
            httpx2.AsyncClient(headers={"User-Agent": "BitBot"}, limits=limits)
            for _ in range(count)
        ]

    def pick(self, key: str) -> httpx2.AsyncClient:
        return self._clients[zlib.crc32(key.encode()) % len(self._clients)]

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
