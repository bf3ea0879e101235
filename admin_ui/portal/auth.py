"""Opening the app page (``POST /b24/app``): who is this, really, and may they change things?

Nothing the frame posts is believed on its own. The auth server's ``app.info`` (at the configured
``BITBOT_B24_OAUTH_URL``) must confirm that ``AUTH_ID`` belongs to the posted ``member_id`` and to
this application; the portal then answers ``user.admin`` for the viewing user's own token. Only
then is a session issued, for a tenant found in our database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from admin_ui.portal.i18n import language_for
from admin_ui.portal.options import PortalOptions
from admin_ui.portal.session import PortalSession, SessionSigner
from admin_ui.portal.validation import Message
from tenants.bitrix24 import AuthError, Bitrix24Client, Bitrix24Error, MethodNotFound, Services
from tenants.bitrix24.oauth import Installation
from tenants.store import Tenant

NAME_LIMIT = 100


class AppPageRefused(Exception):
    def __init__(self, message: Message, status: int = 401) -> None:
        super().__init__(message.key)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Opened:
    session: PortalSession
    token: str
    tenant: Tenant


class AppPageAuth:
    def __init__(self, services: Services, signer: SessionSigner, options: PortalOptions) -> None:
        self._s = services
        self._signer = signer
        self._options = options

    async def open(self, auth_id: str, member_id: str, lang: str | None) -> Opened:
        if not auth_id or not member_id:
            raise AppPageRefused(Message("auth.bad_request"), 400)
        installation = await self._verify(auth_id, member_id)
        tenant = await self._s.store.find(member_id)
        if tenant is None or tenant.status == "uninstalled":
            raise AppPageRefused(Message("auth.not_installed"), 403)
        if installation.user_id is None:
            raise AppPageRefused(Message("auth.unverified"), 502)
        client = Bitrix24Client(tenant, self._s)
        admin = await self._ask(client, auth_id, "user.admin") is True
        if not admin and self._options.non_admins == "refuse":
            raise AppPageRefused(Message("auth.admins_only"), 403)
        first, last = await self._names(client, auth_id)
        session = PortalSession(
            tenant_id=tenant.id,
            member_id=tenant.member_id,
            user_id=installation.user_id,
            admin=admin,
            language=language_for(lang),
            first_name=first,
            last_name=last,
            expires_at=self._signer.expiry(),
        )
        return Opened(session, self._signer.issue(session), tenant)

    async def _verify(self, auth_id: str, member_id: str) -> Installation:
        try:
            installation = await self._s.oauth.app_info(auth_id)
        except (AuthError, MethodNotFound):
            raise AppPageRefused(Message("auth.token_refused")) from None
        except Bitrix24Error:
            raise AppPageRefused(Message("auth.unverified"), 502) from None
        if installation.member_id != member_id:
            raise AppPageRefused(Message("auth.other_portal"))
        if installation.client_id and installation.client_id != self._s.oauth.client_id:
            raise AppPageRefused(Message("auth.other_app"))
        return installation

    async def _ask(self, client: Bitrix24Client, auth_id: str, method: str) -> Any:
        try:
            return await client.call_as(auth_id, method)
        except AuthError:
            raise AppPageRefused(Message("auth.token_refused")) from None
        except Bitrix24Error:
            raise AppPageRefused(Message("auth.unverified"), 502) from None

    async def _names(self, client: Bitrix24Client, auth_id: str) -> tuple[str, str]:
        """The viewer's name for the test chat's FIRST_NAME/LAST_NAME; blank if not given."""
        try:
            user = await client.call_as(auth_id, "user.current")
        except Bitrix24Error:
            return "", ""
        if not isinstance(user, dict):
            return "", ""
        first = str(user.get("NAME") or "")[:NAME_LIMIT]
        return first, str(user.get("LAST_NAME") or "")[:NAME_LIMIT]
