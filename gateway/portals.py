"""One Bitrix24 client and one call coalescer per portal, kept while the portal is busy."""

from __future__ import annotations

from collections import OrderedDict

from tenants.bitrix24 import Bitrix24Client, Budget, Coalescer, Services
from tenants.store import Tenant

MAX_PORTALS = 2_000


class PortalClients:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._portals: OrderedDict[int, tuple[Bitrix24Client, Coalescer]] = OrderedDict()

    def client(self, tenant: Tenant) -> Bitrix24Client:
        return self._entry(tenant)[0]

    def coalescer(self, tenant: Tenant) -> Coalescer:
        return self._entry(tenant)[1]

    def _entry(self, tenant: Tenant) -> tuple[Bitrix24Client, Coalescer]:
        entry = self._portals.get(tenant.id)
        if entry is None:
            client = Bitrix24Client(tenant, self._services, Budget())
            entry = (client, Coalescer(client))
            self._portals[tenant.id] = entry
            if len(self._portals) > MAX_PORTALS:
                self._portals.popitem(last=False)
        else:
            self._portals.move_to_end(tenant.id)
        return entry
