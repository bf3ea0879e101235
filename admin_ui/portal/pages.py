"""The HTML pages: ``POST /b24/app`` (Bitrix24 opens it in its iframe) and ``/b24/ui/…``.

Pages only read; every change goes through the JSON API, which the page's script calls with the
session header. The script also fetches the next page itself, so navigation keeps working where the
browser refuses the partitioned cookie. Framing is allowed only by the tenant's own portal.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from admin_ui.portal.auth import AppPageRefused
from admin_ui.portal.bots import COLORS
from admin_ui.portal.context import Viewer
from admin_ui.portal.i18n import Translator, language_for
from admin_ui.portal.plan import chart, chart_summary, day, number, state_text
from admin_ui.portal.session import SessionError, set_cookie
from admin_ui.portal.validation import Message, NotFound
from admin_ui.portal.wiring import Portal
from tenants.bitrix24.phpform import FormError
from tenants.forms import BodyTooLarge, read_form, text

log = logging.getLogger("bitbot.portal")
STATIC = Path(__file__).parent.parent / "static"
DOMAIN = re.compile(r"^[a-z0-9][a-z0-9.-]{0,252}(:\d{1,5})?$")
Page = Callable[[Request, Viewer], Awaitable[Response]]


class Pages:
    def __init__(self, portal: Portal, templates: Environment) -> None:
        self.p = portal
        self._templates = templates
        self._versions = {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            for path in STATIC.iterdir()
            if path.is_file()
        }

    def routes(self) -> list[Route]:
        def page(path: str, handler: Page) -> Route:
            return Route(f"/b24/ui{path}", self._page(handler), methods=["GET"])

        return [
            Route("/b24/app", self.open_app, methods=["POST"]),
            Route("/b24/app", self._page(self.bots), methods=["GET"]),
            page("/bots", self.bots),
            page("/bots/new", self.new_bot),
            page("/bots/{bot_id:int}", self.bot),
            page("/bots/{bot_id:int}/commands/new", self.command),
            page("/bots/{bot_id:int}/commands/{command_id:int}", self.command),
            page("/connectors", self.connectors),
            page("/connectors/new", self.connector),
            page("/connectors/{connector_id:int}", self.connector),
            page("/plan", self.plan),
        ]

    async def open_app(self, request: Request) -> Response:
        lang = request.query_params.get("LANG")
        try:
            form = await read_form(request)
            auth_id = text(form, "AUTH_ID", required=False)
            member_id = text(form, "member_id", required=False, limit=64)
            opened = await self.p.auth.open(auth_id, member_id, lang)
        except (FormError, BodyTooLarge):
            return await self._refused(request, Message("auth.bad_request"), 400, lang)
        except AppPageRefused as refused:
            log.warning("app page refused: %s", refused.message.key)
            return await self._refused(request, refused.message, refused.status, lang)
        viewer = await self.p.gate.admit(opened.session, opened.token)
        response = await self.bots(request, viewer)
        set_cookie(response, opened.token, self.p.gate.signer.ttl_s)
        return response

    async def bots(self, request: Request, viewer: Viewer) -> Response:
        connectors = await self.p.connectors.list(viewer.actor)
        bots = await self.p.bots.list(viewer.actor)
        return await self.render(viewer, "bots.html", "bots", bots=bots, connectors=connectors)

    async def new_bot(self, request: Request, viewer: Viewer) -> Response:
        connectors = await self.p.connectors.list(viewer.actor)
        return await self.render(
            viewer, "bot_new.html", "bots", bot=None, connectors=connectors, colors=COLORS
        )

    async def bot(self, request: Request, viewer: Viewer) -> Response:
        bot = await self.p.bots.get(viewer.actor, int(request.path_params["bot_id"]))
        return await self.render(
            viewer,
            "bot.html",
            "bots",
            bot=bot,
            connectors=await self.p.connectors.list(viewer.actor),
            commands=await self.p.commands.list(viewer.actor, bot.id),
            colors=COLORS,
        )

    async def command(self, request: Request, viewer: Viewer) -> Response:
        bot = await self.p.bots.get(viewer.actor, int(request.path_params["bot_id"]))
        command_id = request.path_params.get("command_id")
        command = None
        if command_id is not None:
            command = await self.p.commands.get(viewer.actor, bot.id, int(command_id))
        return await self.render(viewer, "command.html", "bots", bot=bot, command=command)

    async def connectors(self, request: Request, viewer: Viewer) -> Response:
        connectors = await self.p.connectors.list(viewer.actor)
        bots = await self.p.bots.list(viewer.actor)
        return await self.render(
            viewer, "connectors.html", "connectors", connectors=connectors, bots=bots
        )

    async def connector(self, request: Request, viewer: Viewer) -> Response:
        connector_id = request.path_params.get("connector_id")
        connector = None
        if connector_id is not None:
            connector = await self.p.connectors.get(viewer.actor, int(connector_id))
        providers = await self.p.connectors.providers()
        return await self.render(
            viewer, "connector.html", "connectors", connector=connector, providers=providers
        )

    async def plan(self, request: Request, viewer: Viewer) -> Response:
        t = viewer.t
        facts = await self.p.plan.facts(viewer.tenant)
        words: dict[str, Any] = {"number": partial(number, t), "day": partial(day, t)}
        if facts is None:
            return await self.render(viewer, "plan.html", "plan", facts=None, **words)
        drawn = chart(facts, t)
        return await self.render(
            viewer,
            "plan.html",
            "plan",
            facts=facts,
            chart=drawn,
            summary=chart_summary(facts, drawn, t),
            state=state_text(facts, t),
            **words,
        )

    async def render(
        self, viewer: Viewer, name: str, section: str, status: int = 200, **context: Any
    ) -> Response:
        t = viewer.t
        page = self._templates.get_template(f"portal/{name}")
        body = await page.render_async(
            t=t,
            lang=t.language,
            viewer=viewer,
            session=viewer.session,
            tenant=viewer.tenant,
            readonly=not viewer.session.admin,
            section=section,
            static=self.static_url,
            **context,
        )
        return _secured(HTMLResponse(body, status_code=status), viewer.tenant.domain)

    def static_url(self, name: str) -> str:
        return f"/b24/static/{name}?v={self._versions.get(name, '0')}"

    def _page(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                viewer = await self.p.gate.viewer(request)
            except SessionError as error:
                return await self._refused(request, Message(f"session.{error.code}"), 401, None)
            try:
                return await handler(request, viewer)
            except NotFound as missing:
                return await self.render(
                    viewer, "message.html", "", 404, message=viewer.t.message(missing.message)
                )

        return run

    async def _refused(
        self, request: Request, message: Message, status: int, lang: str | None
    ) -> Response:
        t = Translator(language_for(lang))
        page = self._templates.get_template("portal/refused.html")
        body = await page.render_async(
            t=t, lang=t.language, message=t.message(message), static=self.static_url
        )
        domain = request.query_params.get("DOMAIN", "").lower()
        return _secured(
            HTMLResponse(body, status_code=status), domain if DOMAIN.match(domain) else None
        )


def _secured(response: Response, frame_domain: str | None) -> Response:
    ancestors = f"https://{frame_domain}" if frame_domain else "'none'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        f" connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
