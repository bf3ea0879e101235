"""Errors of the Bitrix24 client, one class per family a caller reacts to differently.

Bitrix24Error                     carries the Bitrix24 ``error`` code, never a token
├── AuthError                     the token is not accepted (after one refresh attempt)
│   └── ReinstallRequired         invalid_grant / NOT_INSTALLED: the tenant needs attention
├── PaymentRequired               the portal's licence for the app lapsed
├── ScopeError                    insufficient_scope, method not granted
├── RateLimited                   QUERY_LIMIT_EXCEEDED / OPERATION_TIME_LIMIT after backoff
├── MethodNotFound                ERROR_METHOD_NOT_FOUND (e.g. no Chatbots 2.0 on the portal)
├── PortalGone                    PORTAL_DELETED
├── ServerError                   5xx and unparseable answers
└── MethodError                   any other error a method reports (BOT_ID_ERROR, …)
"""

from __future__ import annotations

from tenants.errors import BitBotError


class Bitrix24Error(BitBotError):
    def __init__(self, code: str, description: str = "", status: int = 0) -> None:
        self.code = code
        self.description = description
        self.status = status
        super().__init__(f"{code}: {description}" if description else code)


class AuthError(Bitrix24Error):
    pass


class ReinstallRequired(AuthError):
    pass


class PaymentRequired(Bitrix24Error):
    pass


class ScopeError(Bitrix24Error):
    pass


class RateLimited(Bitrix24Error):
    pass


class MethodNotFound(Bitrix24Error):
    pass


class PortalGone(Bitrix24Error):
    pass


class ServerError(Bitrix24Error):
    pass


class MethodError(Bitrix24Error):
    pass


_FAMILIES: dict[str, type[Bitrix24Error]] = {
    "expired_token": AuthError,
    "invalid_token": AuthError,
    "NO_AUTH_FOUND": AuthError,
    "ERROR_OAUTH": ReinstallRequired,
    "APPLICATION_NOT_FOUND": ReinstallRequired,
    "invalid_grant": ReinstallRequired,
    "invalid_client": ReinstallRequired,
    "NOT_INSTALLED": ReinstallRequired,
    "wrong_client": ReinstallRequired,
    "PAYMENT_REQUIRED": PaymentRequired,
    "insufficient_scope": ScopeError,
    "invalid_scope": ScopeError,
    "QUERY_LIMIT_EXCEEDED": RateLimited,
    "OPERATION_TIME_LIMIT": RateLimited,
    "OVERLOAD_LIMIT": RateLimited,
    "ERROR_METHOD_NOT_FOUND": MethodNotFound,
    "PORTAL_DELETED": PortalGone,
    "INTERNAL_SERVER_ERROR": ServerError,
    "ERROR_UNEXPECTED_ANSWER": ServerError,
}


def error_for(code: str, description: str, status: int) -> Bitrix24Error:
    family = _FAMILIES.get(code)
    if family is None:
        family = ServerError if status >= 500 else MethodError
    return family(code, description, status)
