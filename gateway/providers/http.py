"""HTTP for the provider adapters: JSON calls, streamed lines and file uploads over one pool.

The adapters make one request per turn, most of them streams held open while the flow runs, so
this is the worker's hottest path. It runs on aiohttp: on this machine a streamed request cost
about 0.13 ms of CPU there against 0.8-1.1 ms in httpx2 (docs/decisions.md §6). The rest of
BitBot keeps httpx2. Nothing here knows about Dify or Typebot; transport failures become
``ProviderUnavailable`` naming the provider, so a timeout or a cut connection is retried like any
other unavailability.

With a ``HostGuard`` every address a provider host resolves to is checked when the connection is
made, not only when the tenant saved the URL: a name that later resolves to a private address
(DNS rebinding) is refused as ``ProviderRejected("private_address")``. Behind an operator's proxy
the proxy resolves the target, and the check at save time is what remains.
"""

from __future__ import annotations

import codecs
import io
import ipaddress
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.providers.errors import ProviderRejected, ProviderUnavailable
from tenants.netguard import HostGuard, PrivateAddressError
from tenants.proxies import Proxies

USER_AGENT = "BitBot"
MAX_BODY_BYTES = 8 * 1024 * 1024  # an answer that is not streamed: more is not a real answer
MAX_LINE_CHARS = 8 * 1024 * 1024


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 10.0
    read_s: float = 120.0  # the longest silence between two reads

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, connect=self.connect_s, sock_connect=self.connect_s, sock_read=self.read_s
        )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    def json(self) -> object:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Streamed:
    """A response whose body is read as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, provider: str) -> None:
        self._response = response
        self._provider = provider
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> Answer:
        with transport_errors(self._provider):
            body = await _read_capped(self._response)
        return Answer(self.status, self.headers, body)

    async def line_batches(self) -> AsyncGenerator[list[str], None]:
        """Decoded lines without their ends (``\\r\\n``, ``\\n`` and ``\\r`` all end a line), a
        list per piece of the body as it arrives: a stream of hundreds of small events (a Dify
        answer comes word by word) is not handed on one line at a time."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        with transport_errors(self._provider):
            async for chunk in self._response.content.iter_any():
                pending += decoder.decode(chunk)
                *complete, pending = _split_lines(pending)
                if complete:
                    yield complete
                if len(pending) > MAX_LINE_CHARS:
                    raise ProviderUnavailable(
                        f"{self._provider} sent an oversized line", code="event_too_large"
                    )
        pending += decoder.decode(b"", final=True)
        if pending:
            yield [pending.removesuffix("\r")]


class ProviderHttp:
    """One pool for every provider connection of the process; create it inside the event loop."""

    def __init__(self, guard: HostGuard | None = None) -> None:
        self._proxies = Proxies()
        self._guard = guard
        resolver: AbstractResolver | None = None
        if guard is not None:
            resolver = GuardedResolver(guard, exempt=self._proxies.hosts)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, ttl_dns_cache=60, enable_cleanup_closed=True, resolver=resolver
            ),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        provider: str,
        timeouts: Timeouts,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        async with self.stream(
            method, url, provider=provider, timeouts=timeouts, json_body=json_body, headers=headers
        ) as response:
            return await response.read()

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        provider: str,
        timeouts: Timeouts,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
        data: aiohttp.FormData | None = None,
    ) -> AsyncIterator[Streamed]:
        options: dict[str, Any] = {"headers": headers, "timeout": timeouts.client_timeout()}
        if self._guard is not None:
            self._check_literal_address(url, provider)
        proxy = self._proxies.for_url(url)
        if proxy:
            options["proxy"] = proxy
        if data is not None:
            options["data"] = data
        elif json_body is not None:
            options["json"] = json_body
        with transport_errors(provider):
            response = await self._session.request(method, url, allow_redirects=False, **options)
        try:
            yield Streamed(response, provider)
        finally:
            response.release()

    async def upload(
        self,
        url: str,
        *,
        provider: str,
        timeouts: Timeouts,
        fields: Mapping[str, str],
        file_field: str,
        filename: str,
        content_type: str,
        content: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """``multipart/form-data``: the plain ``fields`` and one file part.

        The file is sent from a stream: aiohttp would copy raw bytes over 1 MB in one piece,
        blocking the event loop, and warns about it."""
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        part = io.BytesIO(content)
        form.add_field(file_field, part, filename=filename, content_type=content_type)
        async with self.stream(
            "POST", url, provider=provider, timeouts=timeouts, headers=headers, data=form
        ) as response:
            return await response.read()

    async def aclose(self) -> None:
        await self._session.close()

    def _check_literal_address(self, url: str, provider: str) -> None:
        """aiohttp does not resolve an IP literal, so the resolver never sees it: check it here."""
        assert self._guard is not None
        host = (urlsplit(url).hostname or "").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return
        if not self._guard.permits(host, address):
            raise _refused(provider)


@contextmanager
def transport_errors(provider: str) -> Iterator[None]:
    """Timeouts and broken connections become ``ProviderUnavailable`` naming ``provider``.

    aiohttp's connect and read timeouts are TimeoutErrors. An adapter's own deadline
    (``asyncio.timeout``) cancels the task instead, and CancelledError passes through.
    """
    try:
        yield
    except PrivateAddressError:
        raise _refused(provider) from None
    except TimeoutError as error:
        raise ProviderUnavailable(f"{provider} did not answer in time", code="timeout") from error
    except aiohttp.ClientError as error:
        raise ProviderUnavailable(
            f"the connection to {provider} failed or was cut off", code="connection_error"
        ) from error


class GuardedResolver(AbstractResolver):
    """aiohttp's default resolver, refusing a host any of whose addresses the guard forbids.

    ``exempt`` hosts (the operator's proxies) are resolved unchecked."""

    def __init__(self, guard: HostGuard, exempt: frozenset[str] = frozenset()) -> None:
        self._guard = guard
        self._exempt = exempt
        self._inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        name = host.lower()
        if name in self._exempt:
            return results
        for result in results:
            if not self._guard.permits(name, ipaddress.ip_address(result["host"])):
                raise PrivateAddressError(f"{host} resolves to a private or local address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _refused(provider: str) -> ProviderRejected:
    # The tenant's URL, not BitBot, is at fault; retrying would not help. The host is not named:
    # the message may reach the dead-letter entry, and the URL is the tenant's configuration.
    return ProviderRejected(
        f"the {provider} URL points to a private or local address; BitBot does not call it",
        code="private_address",
    )


def _split_lines(text: str) -> list[str]:
    """Split off complete lines; the last item is the unfinished rest. A trailing ``\r`` stays
    in the rest, since the ``\n`` of a ``\r\n`` may come with the next chunk."""
    if "\r" not in text:
        return text.split("\n")
    held = text.endswith("\r")
    lines = (text[:-1] if held else text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if held:
        lines[-1] += "\r"
    return lines


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ProviderUnavailable("the answer is too large", code="answer_too_large")
    return bytes(body)
