"""Errors of the operator console; each maps to one HTTP status and JSON error code.

ConsoleError
├── InputError      a field is missing or malformed (400); ``fields`` names each one
├── NotFound        no such tenant, plan, provider, token or dead letter (404)
└── Refused         the target's state does not allow it, e.g. a provider in use (409)
"""

from __future__ import annotations

from tenants.errors import BitBotError


class ConsoleError(BitBotError):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InputError(ConsoleError):
    status = 400
    code = "invalid"


class NotFound(ConsoleError):
    status = 404
    code = "not_found"


class Refused(ConsoleError):
    status = 409
    code = "refused"
