"""The operator's outbound proxies (``HTTP_PROXY``/``HTTPS_PROXY``, ``NO_PROXY``), read once.

aiohttp's ``trust_env`` would look up the proxy variables and ``~/.netrc`` in a thread on every
request; the pools built on aiohttp read the environment once, when they are made, instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass


class Proxies:
    def __init__(self, proxies: Mapping[str, str] | None = None) -> None:
        found = getproxies() if proxies is None else proxies
        self._by_scheme = {k: v for k, v in found.items() if k in ("http", "https")}

    @property
    def hosts(self) -> frozenset[str]:
        """The proxies' own host names."""
        return frozenset(
            host for p in self._by_scheme.values() if (host := (urlsplit(p).hostname or "").lower())
        )

    def for_url(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through, unless ``NO_PROXY`` exempts its host."""
        if not self._by_scheme:
            return None
        parts = urlsplit(url)
        proxy = self._by_scheme.get(parts.scheme)
        if proxy is None or proxy_bypass(parts.hostname or ""):
            return None
        return proxy
