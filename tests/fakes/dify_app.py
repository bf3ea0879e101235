"""One app hosted by the fake Dify: its configuration, its script, its state and its faults."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes.dify_inputs import InputVariable
from tests.fakes.provider_wire import RecordedRequest

JSON = dict[str, Any]
AppMode = Literal["advanced-chat", "workflow"]

_WERKZEUG_500 = (
    "The server encountered an internal error and was unable to complete your request. "
    "Either the server is overloaded or there is an error in the application."
)


@dataclass(frozen=True)
class DifyRun:
    """What a scripted app sees of one call, after Dify validated it."""

    query: str
    inputs: JSON
    user: str
    conversation_id: str | None
    files: list[JSON]


Answer = str | Callable[[DifyRun], str]
Outputs = JSON | Callable[[DifyRun], JSON]


@dataclass(frozen=True)
class HttpError:
    """The run is refused with an HTTP error before any stream starts."""

    status: int = 500
    code: str = "internal_server_error"
    message: str = _WERKZEUG_500

    @classmethod
    def too_many_requests(cls, max_active: int = 1) -> HttpError:
        """Dify's per-app concurrency ceiling (retrying later helps)."""
        return cls(
            429,
            "too_many_requests",
            "Too many requests. Please try again later. "
            f"The current maximum concurrent requests allowed is {max_active}.",
        )

    @classmethod
    def rate_limited(cls, requests_per_day: int = 200) -> HttpError:
        """Cloud plan quota (retrying does not help)."""
        return cls(
            429,
            "rate_limit_error",
            "Rate limit exceeded, please upgrade your plan "
            f"or your RPD was {requests_per_day} requests/day",
        )


@dataclass(frozen=True)
class StreamError:
    """An ``error`` event after ``after_chunks`` answer chunks (blocking: the same HTTP error)."""

    code: str = "internal_server_error"
    status: int = 500
    message: str = "Internal Server Error, please contact support."
    after_chunks: int = 0


@dataclass(frozen=True)
class RunFailed:
    """A node fails: ``workflow_finished`` with ``status: "failed"`` and this ``error``."""

    error: str = "LLM node failed"


@dataclass(frozen=True)
class DropConnection:
    """The connection closes after ``after_chunks`` answer chunks, mid-response."""

    after_chunks: int = 0


DifyFault = HttpError | StreamError | RunFailed | DropConnection


@dataclass
class DifyConversation:
    id: str
    user: str
    inputs: JSON
    created_at: int
    queries: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UploadedFile:
    id: str
    name: str
    size: int
    extension: str
    mime_type: str
    user: str
    created_at: int
    content: bytes


@dataclass(eq=False)
class DifyApp:
    """An app behind one API key. Change any field between requests to script the next one."""

    api_key: str
    mode: AppMode = "advanced-chat"
    form: Sequence[InputVariable] = ()
    answer: Answer = "Hello from Dify."
    outputs: Outputs = field(default_factory=lambda: {"result": "Hello from Dify."})
    delay: float = 0.0
    """Seconds the model "thinks" before answering; streams send pings meanwhile."""
    ping_interval: float = 10.0
    fault: DifyFault | None = None
    """A fault every run meets until cleared; one-shot faults (``fail_next``) go first."""
    max_active_requests: int = 0
    """Concurrent runs before ``429 too_many_requests``; 0 is unlimited (Dify's default)."""
    file_upload_enabled: bool = False
    """When off, Dify ignores ``files`` silently."""
    allowed_file_types: Sequence[str] = ("image", "document")
    allowed_file_extensions: Sequence[str] = ()
    """For ``custom`` files, with the dot, as Dify stores them (``".zip"``)."""
    file_number_limit: int = 3
    upload_error: HttpError | None = None
    """Every ``/files/upload`` answers this error until cleared."""
    upload_size_limit: int | None = None
    """Bytes; ``None`` applies Dify's defaults per file type."""
    name: str = "Fake Dify app"
    description: str = ""
    tags: Sequence[str] = ()
    author_name: str = "BitBot tests"
    opening_statement: str = ""
    suggested_questions: Sequence[str] = ()
    workflow_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    conversations: dict[str, DifyConversation] = field(default_factory=dict)
    uploads: dict[str, UploadedFile] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    runs: list[DifyRun] = field(default_factory=list)
    """Every run Dify accepted, as the flow saw it (``files`` validated)."""
    active_runs: int = 0
    _one_shot: deque[DifyFault] = field(default_factory=deque)

    def fail_next(self, fault: DifyFault, times: int = 1) -> None:
        self._one_shot.extend([fault] * times)

    def heal(self) -> None:
        self._one_shot.clear()
        self.fault = None

    def forget_conversation(self, conversation_id: str) -> None:
        """As if the conversation was deleted in Dify: the next use gets 404."""
        del self.conversations[conversation_id]

    def pending_http_error(self) -> HttpError | None:
        fault = self._one_shot[0] if self._one_shot else self.fault
        if not isinstance(fault, HttpError):
            return None
        if self._one_shot:
            self._one_shot.popleft()
        return fault

    def take_run_fault(self) -> DifyFault | None:
        return self._one_shot.popleft() if self._one_shot else self.fault

    def answer_for(self, run: DifyRun) -> str:
        return self.answer if isinstance(self.answer, str) else self.answer(run)

    def outputs_for(self, run: DifyRun) -> JSON:
        return dict(self.outputs) if isinstance(self.outputs, dict) else self.outputs(run)

    def user_input_form(self) -> list[JSON]:
        return [variable.form_entry() for variable in self.form]
