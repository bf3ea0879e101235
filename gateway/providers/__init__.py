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
from gateway.providers.dify_workflow import DifyWorkflow
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

AdapterFactory = Callable[[ProviderHttp, Sessions], Provider]

ADAPTERS: Mapping[str, AdapterFactory] = {
    "dify_chatflow": DifyChatflow,
    "dify_workflow": DifyWorkflow,
    "typebot": TypebotAdapter,
}


def provider_for(type: str, http: ProviderHttp, sessions: Sessions) -> Provider:
    adapter = ADAPTERS.get(type)
    if adapter is None:
        raise ProviderRejected(f"unknown provider type {type!r}", code="unknown_provider")
    return adapter(http, sessions)
