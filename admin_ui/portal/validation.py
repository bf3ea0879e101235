"""Reading what an admin submitted: typed fields, limits, URLs; problems become field errors.

Services never write anything before every field is read, so a refused form changes nothing.
Problems are message keys with parameters; the edge words them in the viewer's language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tenants.errors import BitBotError
from tenants.netguard import HostGuard, PrivateAddressError


@dataclass(frozen=True)
class Message:
    key: str
    params: Mapping[str, object] = field(default_factory=dict)


class PortalError(BitBotError):
    """Refused; ``status`` and ``code`` shape the JSON error, ``message`` is worded per language."""

    status = 400
    code = "bad_request"

    def __init__(self, message: Message, fields: Mapping[str, Message] | None = None) -> None:
        super().__init__(message.key)
        self.message = message
        self.fields = dict(fields or {})


class Invalid(PortalError):
    status = 422
    code = "invalid"

    def __init__(self, fields: Mapping[str, Message]) -> None:
        super().__init__(Message("error.invalid"), fields)


class NotFound(PortalError):
    status = 404
    code = "not_found"


class Forbidden(PortalError):
    status = 403
    code = "forbidden"


class Bitrix24Refused(PortalError):
    status = 502
    code = "bitrix24_error"


class Form:
    """Typed accessors over a JSON object; each problem is kept against its field name."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, Message] = {}

    def fail(self, name: str, key: str, **params: object) -> None:
        self.errors.setdefault(name, Message(key, params))

    def check(self) -> None:
        if self.errors:
            raise Invalid(self.errors)

    def text(self, name: str, *, limit: int, required: bool = False) -> str:
        value = self.data.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.fail(name, "field.not_text")
            return ""
        value = value.strip()
        if required and not value:
            self.fail(name, "field.required")
        elif len(value) > limit:
            self.fail(name, "field.too_long", limit=limit)
        return value

    def integer(self, name: str, *, low: int, high: int) -> int:
        value = self.data.get(name)
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,12}", value.strip()):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(name, "field.not_number")
            return low
        if not low <= value <= high:
            self.fail(name, "field.out_of_range", low=low, high=high)
        return value

    def boolean(self, name: str) -> bool:
        value = self.data.get(name, False)
        if isinstance(value, str) and value.lower() in ("true", "false", "on", "1", "0", ""):
            return value.lower() in ("true", "on", "1")
        if not isinstance(value, bool):
            self.fail(name, "field.not_boolean")
            return False
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        value = self.data.get(name)
        if value not in options:
            self.fail(name, "field.choice", options=", ".join(options))
            return options[0]
        return str(value)

    async def url(self, name: str, guard: HostGuard, *, limit: int, required: bool = False) -> str:
        """An http(s) URL whose host is public (or allow-listed); empty when not given."""
        value = self.text(name, limit=limit, required=required)
        if not value or name in self.errors:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
            self.fail(name, "url.bad")
            return value
        try:
            await guard.check(value)
        except PrivateAddressError as error:
            key = "url.unresolvable" if "does not resolve" in str(error) else "url.private"
            self.fail(name, key, host=parts.hostname)
        return value
