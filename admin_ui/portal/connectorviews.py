"""What a connector looks like to the portal: its provider, whether a key is stored (never the
key itself), and its URLs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from tenants.schema import connectors, providers


@dataclass(frozen=True)
class Provider:
    id: int
    name: str
    type: str
    base_url: str

    @property
    def needs_key(self) -> bool:
        return self.type != "typebot"


@dataclass(frozen=True)
class ConnectorView:
    id: int
    name: str
    provider: Provider
    has_api_key: bool
    base_url: str | None
    typebot_start_url: str | None

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["provider_id"] = self.provider.id
        body["effective_base_url"] = self.base_url or self.provider.base_url
        return body


@dataclass(frozen=True)
class ConnectorSettings:
    """A connector as it would be saved, with the key it would use (for "test connection")."""

    provider: Provider
    api_key: str | None
    base_url: str
    typebot_start_url: str


_VIEW_COLUMNS = [
    connectors.c.id,
    connectors.c.name,
    connectors.c.base_url,
    connectors.c.typebot_start_url,
    (connectors.c.api_key.is_not(None)).label("has_api_key"),
    providers.c.id.label("provider_id"),
    providers.c.name.label("provider_name"),
    providers.c.type.label("provider_type"),
    providers.c.base_url.label("provider_base_url"),
]


def view_query() -> sa.Select[Any]:
    return sa.select(*_VIEW_COLUMNS).select_from(connectors.join(providers))


def view(row: Any) -> ConnectorView:
    return ConnectorView(
        id=row["id"],
        name=row["name"],
        provider=Provider(
            row["provider_id"], row["provider_name"], row["provider_type"], row["provider_base_url"]
        ),
        has_api_key=bool(row["has_api_key"]),
        base_url=row["base_url"],
        typebot_start_url=row["typebot_start_url"],
    )


def editable(view: ConnectorView | None) -> dict[str, Any]:
    if view is None:
        return {}
    return {
        "name": view.name,
        "provider_id": view.provider.id,
        "base_url": view.base_url or "",
        "typebot_start_url": view.typebot_start_url or "",
    }


def changed(current: ConnectorView | None, values: dict[str, Any]) -> list[str]:
    before = editable(current)
    after = {
        "name": values["name"],
        "provider_id": values["provider"].id,
        "base_url": values["base_url"] or "",
        "typebot_start_url": values["typebot_start_url"] or "",
    }
    return sorted(name for name in after if before.get(name) != after[name])
