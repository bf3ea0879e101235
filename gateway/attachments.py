"""Customer files from Bitrix24: the ``FileSource`` that provider adapters fetch attachments with.

Reference: shared/reference/bitrix24.md §9.2. A classic (v1) bot asks ``disk.file.get`` {id} for
the Drive file's ``DOWNLOAD_URL``; a Chatbots 2.0 bot asks ``imbot.v2.File.download`` {botId,
fileId} for a one-time ``downloadUrl``. Either link is then fetched with a plain GET carrying the
headers the portal expects (without them it answers a 404 page).

The links carry a token: they are never logged, stored or put in an error. Every failure becomes
an ``AttachmentError`` with a code only, and the adapter skips that file. The body is read as it
arrives and abandoned past the size cap; every host on the way passes the private-address guard.
"""

from __future__ import annotations

import mimetypes
from email.message import Message
from typing import Any
from urllib.parse import urljoin

import httpx2

from gateway.model import FileRef
from gateway.providers.base import Download
from gateway.providers.errors import AttachmentError
from tenants.bitrix24 import Bitrix24Client, Bitrix24Error
from tenants.netguard import PrivateAddressError

MAX_FILE_BYTES = 15 * 1024 * 1024  # Dify's default limit for documents
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_OCTET_STREAM = "application/octet-stream"


class Bitrix24Files:
    """The files of one portal's messages, as one bot of the given API version sees them."""

    def __init__(
        self,
        client: Bitrix24Client,
        api_version: int,
        bot_id: int,
        *,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self._client = client
        self._api_version = api_version
        self._bot_id = bot_id
        self._max_bytes = max_bytes

    async def fetch(self, file: FileRef, max_bytes: int) -> Download:
        limit = min(max_bytes, self._max_bytes)
        if file.size is not None and file.size > limit:
            raise AttachmentError("file_too_large")  # known from the event: nothing to fetch
        try:
            url, name = await self._link(file)
            return await self._download(url, file.name or name, limit)
        except Bitrix24Error as error:
            raise AttachmentError(error.code) from None
        except PrivateAddressError:
            raise AttachmentError("private_address") from None

    async def _link(self, file: FileRef) -> tuple[str, str]:
        """The signed download URL and the file's name as Bitrix24 knows it."""
        if self._api_version == 1:
            result = await self._client.call("disk.file.get", {"id": _id(file.id)})
            return _text(result, "DOWNLOAD_URL"), str(_field(result, "NAME") or "")
        params = {"botId": self._bot_id, "fileId": _id(file.id)}
        result = await self._client.call("imbot.v2.File.download", params)
        return _text(result, "downloadUrl"), ""

    async def _download(self, url: str, name: str, limit: int) -> Download:
        headers = {
            "Accept": "*/*",
            "Accept-Language": "en-US,en;q=0.9",
            # The portal's own address: https://x.bitrix24.com/ for .../rest/.
            "Referer": self._client.endpoint.removesuffix("rest/"),
        }
        for _ in range(MAX_REDIRECTS + 1):
            async with self._client.download(url, headers) as response:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise AttachmentError(f"http_{response.status_code}")
                content = await _read_capped(response, limit)
                final = _clean_name(name or _disposition_name(response))
                return Download(final, _content_type(response, final), content)
        raise AttachmentError("too_many_redirects")


async def _read_capped(response: httpx2.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise AttachmentError("file_too_large")
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise AttachmentError("file_too_large")
    except httpx2.HTTPError:
        raise AttachmentError("download_failed") from None
    return bytes(body)


def _id(file_id: str) -> int | str:
    return int(file_id) if file_id.isdecimal() else file_id


def _field(result: Any, key: str) -> Any:
    return result.get(key) if isinstance(result, dict) else None


def _text(result: Any, key: str) -> str:
    value = _field(result, key)
    if not isinstance(value, str) or not value:
        raise AttachmentError("no_download_url")
    return value


def _disposition_name(response: httpx2.Response) -> str:
    header = response.headers.get("content-disposition", "")
    if not header:
        return ""
    message = Message()
    message["content-disposition"] = header
    return message.get_filename() or ""


def _content_type(response: httpx2.Response, name: str) -> str:
    declared = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if declared and declared != _OCTET_STREAM:
        return declared
    guessed, _ = mimetypes.guess_type(name)
    return guessed or _OCTET_STREAM


def _clean_name(name: str) -> str:
    """A file name Dify accepts: no path separators or control characters."""
    cleaned = "".join("_" if c in "/\\" or ord(c) < 32 else c for c in name).strip()
    return cleaned[-200:]
