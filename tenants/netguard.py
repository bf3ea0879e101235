"""Outbound requests go only to public addresses, unless the operator allow-lists a private one.

Client endpoints, provider base URLs and Typebot start URLs all come from outside; without this a
tenant could point BitBot at the cluster's own services.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from tenants.errors import BitBotError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PrivateAddressError(BitBotError):
    """The URL is not http(s), or its host resolves to a private, loopback or link-local address."""


class HostGuard:
    def __init__(self, allowed: tuple[str, ...]) -> None:
        self._allow_all = "*" in allowed
        self._hosts = {entry for entry in allowed if "/" not in entry}
        self._networks = [
            ipaddress.ip_network(entry, strict=False) for entry in allowed if "/" in entry
        ]

    async def check(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise PrivateAddressError("only http(s) URLs with a host name are allowed")
        if self._allow_all or host in self._hosts:
            return
        for address in await _resolve(host, parts.port or (443 if parts.scheme == "https" else 80)):
            if not self.permits(host, address):
                raise PrivateAddressError(f"{host} resolves to a private or local address")

    def permits(self, host: str, address: IPAddress) -> bool:
        """Whether ``host`` (lower-case, as in the URL), resolved to ``address``, may be called."""
        return (
            address.is_global
            or self._allow_all
            or host in self._hosts
            or str(address) in self._hosts
            or any(address in net for net in self._networks)
        )


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise PrivateAddressError(f"{host} does not resolve") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]
