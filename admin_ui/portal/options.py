"""How the portal UI behaves where operators differ: what a non-admin who opens it sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tenants.errors import SettingsError

NON_ADMIN_MODES = ("read_only", "refuse")


@dataclass(frozen=True)
class PortalOptions:
    # read_only: non-admins see the configuration but cannot change it; refuse: a clear message.
    non_admins: str = "read_only"


def load_portal_options(env: Mapping[str, str]) -> PortalOptions:
    value = env.get("BITBOT_PORTAL_NON_ADMINS", "").strip().lower() or "read_only"
    if value not in NON_ADMIN_MODES:
        raise SettingsError("BITBOT_PORTAL_NON_ADMINS must be read_only or refuse")
    return PortalOptions(non_admins=value)
