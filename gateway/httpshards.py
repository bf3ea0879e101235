"""Bitrix24 portal connections spread over several pools.

httpcore's pool looks at every connection it holds whenever a request starts or ends, so one pool
with connections to thousands of portals spends its time scanning. Each portal uses the pool its
member id hashes to; a pool keeps its keep-alive connections.
The pools share one TLS context: building one reads the whole CA bundle.
"""

from __future__ import annotations

import zlib

import httpx2

SHARDS = 128
PER_SHARD = httpx2.Limits(max_connections=256, max_keepalive_connections=16)


class ClientShards:
    def __init__(self, count: int = SHARDS, limits: httpx2.Limits = PER_SHARD) -> None:
        tls = httpx2.create_ssl_context()
        self._clients = [
            httpx2.AsyncClient(headers={"User-Agent": "BitBot"}, limits=limits, verify=tls)
            for _ in range(count)
        ]

    def pick(self, key: str) -> httpx2.AsyncClient:
        return self._clients[zlib.crc32(key.encode()) % len(self._clients)]

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
