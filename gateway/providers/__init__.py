"""Provider adapters behind one interface: a table maps the provider type to its adapter."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.providers.base import (
    Button,
    Provider,
    ProviderConfig,
    ProviderReply,
    Sessions,
    TurnRequest,
    Usage,
)
from gateway.providers.dify_chatflow import DifyChatflow
from gateway.providers.dify_workflow import DifyForms, DifyWorkflow
from gateway.providers.errors import (
    InputTooLong,
    ProviderError,
    ProviderFailed,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.providers.http import ProviderHttp
from gateway.providers.sessions import RedisSessions
from gateway.providers.typebot import TypebotAdapter

__all__ = [
    "ADAPTERS",
    "Button",
    "DifyChatflow",
    "DifyForms",
    "DifyWorkflow",
    "InputTooLong",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderFailed",
    "ProviderHttp",
    "ProviderRejected",
    "ProviderReply",
    "ProviderUnavailable",
    "RedisSessions",
    "Sessions",
    "TurnRequest",
    "TypebotAdapter",
    "Usage",
    "provider_for",
]

AdapterFactory = Callable[[ProviderHttp, Sessions, DifyForms], Provider]

ADAPTERS: Mapping[str, AdapterFactory] = {
    "dify_chatflow": lambda http, sessions, forms: DifyChatflow(http, sessions, forms=forms),
    "dify_workflow": lambda http, sessions, forms: DifyWorkflow(http, sessions, forms=forms),
    "typebot": lambda http, sessions, _: TypebotAdapter(http, sessions),
}


def provider_for(
    type: str, http: ProviderHttp, sessions: Sessions, forms: DifyForms | None = None
) -> Provider:
    """The adapter for one turn; ``forms`` is the worker's cache of Dify apps' input forms."""
    adapter = ADAPTERS.get(type)
    if adapter is None:
        raise ProviderRejected(f"unknown provider type {type!r}", code="unknown_provider")
    return adapter(http, sessions, forms or DifyForms())
