"""Files customers send, as the fake portal serves them (shared/reference/bitrix24.md §9.2).

- ``disk.file.get`` {id} (scope ``disk``, v1 path): the Drive file with ``DOWNLOAD_URL``, a signed
  ``/rest/download.json`` link on the portal that carries the caller's ``auth`` and a ``token``.
- ``imbot.v2.File.download`` {botId, fileId}: ``downloadUrl``, a one-time link.
- ``GET {portal}/rest/download.json``: the bytes. Without ``User-Agent``, ``Accept`` and
  ``Referer`` it answers the 404 HTML page with ``Content-Disposition`` the reference describes.

Error codes: v2's ``FILE_NOT_FOUND`` / ``FILE_ACCESS_ERROR`` are in the reference; for
``disk.file.get`` it is silent, and the fake answers Drive's ``ERROR_NOT_FOUND`` (an unknown id)
and ``ACCESS_DENIED`` (no read right).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.fakes.bitrix24_model import FileDownload, RestError, StoredFile
from tests.fakes.bitrix24_params import Caller, Params, param_int, param_str
from tests.fakes.bitrix24_portal import Portal

PortalFinder = Callable[[str], Portal | None]
_REQUIRED_HEADERS = ("user-agent", "accept", "referer")
_NOT_FOUND_PAGE = "<html><body><h1>404 Not Found</h1></body></html>"


def disk_file_get(portal: Portal, params: Params, caller: Caller) -> Any:
    file_id = param_int({k.lower(): v for k, v in params.items()}, "id")
    stored = portal.files.get(file_id or 0)
    if stored is None:
        raise RestError(404, "ERROR_NOT_FOUND", f"Could not find entity with id '{file_id}'")
    if not stored.readable:
        raise RestError(403, "ACCESS_DENIED", "Access denied")
    return {
        "ID": str(stored.id),
        "NAME": stored.name,
        "CODE": None,
        "STORAGE_ID": "1",
        "TYPE": "file",
        "PARENT_ID": "3",
        "DELETED_TYPE": "0",
        "CREATE_TIME": portal.iso_now(),
        "UPDATE_TIME": portal.iso_now(),
        "CREATED_BY": "1",
        "SIZE": str(len(stored.content)),
        "DOWNLOAD_URL": portal.download_link(stored.id, one_time=False, auth=caller.token),
        "DETAIL_URL": f"{portal.uri}/docs/file/{quote(stored.name)}",
    }


def file_download_v2(portal: Portal, params: Params, caller: Caller) -> Any:
    bot_id = param_int(params, "botId")
    bot = portal.bots.get(bot_id or 0)
    if bot is None or bot.api != 2:
        raise RestError(400, "BOT_NOT_FOUND", "Bot not found")
    stored = portal.files.get(param_int(params, "fileId") or 0)
    if stored is None:
        raise RestError(400, "FILE_NOT_FOUND", "File not found")
    if not stored.readable:
        raise RestError(403, "FILE_ACCESS_ERROR", "You do not have access to this file")
    return {"downloadUrl": portal.download_link(stored.id, one_time=True)}


def download_routes(find_portal: PortalFinder) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        portal = find_portal(request.path_params["portal"])
        if portal is None:
            return HTMLResponse(_NOT_FOUND_PAGE, 404)
        return _serve(portal, request)

    return [Route("/{portal}/rest/download.json", endpoint, methods=["GET"])]


def _serve(portal: Portal, request: Request) -> Response:
    headers = {k.lower(): v for k, v in request.headers.items()}
    token = param_str(dict(request.query_params), "token").removeprefix("disk|")
    link = portal.download_links.get(token)
    stored = portal.files.get(link.file_id) if link else None
    seen = {k: headers[k] for k in _REQUIRED_HEADERS if k in headers}
    if link is None or stored is None or len(seen) < len(_REQUIRED_HEADERS):
        portal.downloads.append(FileDownload(stored.id if stored else None, 404, seen))
        page = {"Content-Disposition": 'inline; filename="404.html"'}
        return HTMLResponse(_NOT_FOUND_PAGE, 404, headers=page)
    if link.one_time:
        del portal.download_links[token]
    portal.downloads.append(FileDownload(stored.id, 200, seen))
    return _file_response(stored)


def _file_response(stored: StoredFile) -> Response:
    disposition = f"attachment; filename*=UTF-8''{quote(stored.name)}"
    return Response(
        stored.content,
        media_type=stored.content_type,
        headers={"Content-Disposition": disposition},
    )
