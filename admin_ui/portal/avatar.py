"""A bot's avatar: an image URL the admin gives, fetched once and sent to Bitrix24 as Base64."""

from __future__ import annotations

import base64

import httpx2

from admin_ui.portal.validation import Message
from tenants.netguard import HostGuard, PrivateAddressError

MAX_AVATAR_BYTES = 1 << 20
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
TIMEOUT = httpx2.Timeout(10.0)


class AvatarError(Exception):
    def __init__(self, message: Message) -> None:
        super().__init__(message.key)
        self.message = message


class Avatars:
    def __init__(self, http: httpx2.AsyncClient, guard: HostGuard) -> None:
        self._http = http
        self._guard = guard

    async def fetch(self, url: str) -> str:
        """The image at ``url`` as Base64 without a ``data:`` prefix, as both bot APIs take it."""
        try:
            await self._guard.check(url)
            async with self._http.stream(
                "GET", url, timeout=TIMEOUT, follow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise AvatarError(Message("avatar.status", {"status": response.status_code}))
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind not in IMAGE_TYPES:
                    raise AvatarError(Message("avatar.not_image"))
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_AVATAR_BYTES:
                        raise AvatarError(Message("avatar.too_large"))
        except PrivateAddressError:
            raise AvatarError(Message("url.private", {"host": url})) from None
        except httpx2.HTTPError:
            raise AvatarError(Message("avatar.unreachable")) from None
        return base64.b64encode(bytes(body)).decode()
