"""Provider errors; callers catch by level. Messages never carry keys, tokens or user inputs.

ProviderError
├── ProviderUnavailable      connection failed, timeout, 5xx, 429: may work later
├── ProviderRejected         4xx the tenant must fix (bad key, app not published, …)
│   └── InputTooLong         a Dify input exceeds the variable's max_length: names it
└── ProviderFailed           the flow ran and failed (stream ``error``, failed workflow)

AttachmentError              one attached file could not be fetched or handed on: it is skipped
"""

from __future__ import annotations

from tenants.errors import BitBotError


class ProviderError(BitBotError):
    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


class ProviderUnavailable(ProviderError):
    pass


class ProviderRejected(ProviderError):
    pass


class InputTooLong(ProviderRejected):
    def __init__(self, variable: str, limit: int) -> None:
        self.variable = variable
        self.limit = limit
        super().__init__(
            f"input variable {variable} is longer than the {limit} characters the Dify app allows;"
            f" raise its max length in Dify",
            code="input_too_long",
            status=400,
        )


class ProviderFailed(ProviderError):
    pass


class AttachmentError(BitBotError):
    """A file of the turn is skipped; ``code`` says why (a Bitrix24 or Dify error code,
    ``file_too_large``, ...). Like every error here it names no URL, token or content."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"the attachment was skipped ({code})")
