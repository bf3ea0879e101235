"""The yardstick for the intake bench: a Starlette endpoint that reads the body and answers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def events(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "queued"})


app = Starlette(routes=[Route("/b24/events", events, methods=["POST"])])
