"""What every fake REST method receives: parameters, the calling user, and a method's scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.bitrix24_model import MESSAGE_LIMIT, RestError, User
from tests.fakes.bitrix24_portal import Portal

Params = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    """The user an access token belongs to (a person or a bot)."""

    token: str
    user: User


Handler = Callable[[Portal, Params, Caller], Any]


@dataclass(frozen=True)
class Method:
    scope: str
    handler: Handler


# -- parameter access (JSON bodies keep types; form bodies make everything a string) ---------


def param_str(params: Params, key: str) -> str:
    value = params.get(key)
    return "" if value is None or isinstance(value, dict | list) else str(value)


def param_int(params: Params, key: str) -> int | None:
    value = param_str(params, key).strip()
    return int(value) if value.lstrip("-").isdigit() else None


def param_bool(params: Params, key: str, default: bool = False) -> bool:
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).upper() in ("Y", "1", "TRUE")


def param_dict(params: Params, key: str) -> dict[str, Any]:
    value = params.get(key)
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def upper_keys(params: Params) -> Params:
    # CORE im_rest.php upper-cases v1 parameter names, so ``bot_id`` works like ``BOT_ID``.
    return {key.upper(): value for key, value in params.items()}


def truncate(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " (...)"


def bad_request(error: str, description: str) -> RestError:
    return RestError(400, error, description)
