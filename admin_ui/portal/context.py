"""Who is asking: the session of a request, checked against the tenant it names."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from admin_ui.portal.audit import Actor
from admin_ui.portal.i18n import Translator
from admin_ui.portal.session import PortalSession, SessionError, SessionSigner, token_of
from admin_ui.portal.testchat import Tester
from tenants.store import Tenant, TenantStore


@dataclass(frozen=True)
class Viewer:
    session: PortalSession
    token: str
    tenant: Tenant

    @property
    def actor(self) -> Actor:
        s = self.session
        return Actor(s.tenant_id, s.user_id, s.admin, s.language)

    @property
    def tester(self) -> Tester:
        s = self.session
        return Tester(self.actor, s.member_id, s.first_name, s.last_name)

    @property
    def t(self) -> Translator:
        return Translator(self.session.language)


class Gate:
    def __init__(self, signer: SessionSigner, store: TenantStore) -> None:
        self.signer = signer
        self._store = store

    async def viewer(self, request: Request) -> Viewer:
        token = token_of(request)
        session = self.signer.verify(token)
        return await self.admit(session, token)

    async def admit(self, session: PortalSession, token: str) -> Viewer:
        tenant = await self._store.get(session.tenant_id)
        # A tenant uninstalled (or reinstalled as another portal) since the session began.
        if tenant is None or tenant.member_id != session.member_id:
            raise SessionError("bad_session")
        if tenant.status == "uninstalled":
            raise SessionError("not_installed")
        return Viewer(session, token, tenant)
