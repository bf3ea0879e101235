"""A recording fake of the Dify Service API (``/v1``) that hosts several apps.

Protocol: shared/reference/dify-typebot.md Part A. Usage::

    dify = FakeDify()
    app = dify.add_app(DifyApp(api_key="app-1", form=[InputVariable("FIRST_NAME", max_length=48)]))
    async with serve(dify.asgi) as base_url:
        ...  # call f"{base_url}/v1/chat-messages" with "Authorization: Bearer app-1"
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.clock import Clock
from tests.fakes.dify_app import (
    JSON,
    AppMode,
    DifyApp,
    DifyConversation,
    DifyFault,
    DifyRun,
    DropConnection,
    HttpError,
    RunFailed,
    StreamError,
    UploadedFile,
)
from tests.fakes.dify_events import RunEvents, RunIds, end_user_id
from tests.fakes.dify_inputs import InputError, InputTypeError, InputVariable, prepare_inputs
from tests.fakes.dify_runs import DifyHTTPError, chat_response, ensure_capacity, workflow_response
from tests.fakes.provider_wire import RecordedRequest, record

__all__ = [
    "DifyApp",
    "DifyConversation",
    "DifyFault",
    "DifyRun",
    "DropConnection",
    "FakeDify",
    "HttpError",
    "InputVariable",
    "RunFailed",
    "StreamError",
    "UploadedFile",
]

_MB = 1024 * 1024
_IMAGE = ("jpg", "jpeg", "png", "webp", "gif", "svg")
_AUDIO = ("mp3", "m4a", "wav", "amr", "mpga")
_VIDEO = ("mp4", "mov", "mpeg", "webm")
# The default extractor's set (api/constants/__init__.py); the Unstructured one adds more.
_DOCUMENT = (
    *("txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "docx", "csv"),
    *("vtt", "properties"),
)
_FILE_TYPES = {
    **dict.fromkeys(_IMAGE, "image"),
    **dict.fromkeys(_AUDIO, "audio"),
    **dict.fromkeys(_VIDEO, "video"),
    **dict.fromkeys(_DOCUMENT, "document"),
}
# Dify's default upload ceilings per file type; anything else counts as a document (15 MB).
_SIZE_LIMITS = {
    **dict.fromkeys(_IMAGE, 10 * _MB),
    **dict.fromkeys(_AUDIO, 50 * _MB),
    **dict.fromkeys(_VIDEO, 100 * _MB),
}


class FakeDify:
    """Several Dify apps behind one base URL; ``asgi`` is the Starlette app to ``serve``."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self.apps: dict[str, DifyApp] = {}
        self.extension_blacklist: set[str] = set()
        """``UPLOAD_FILE_EXTENSION_BLACKLIST`` of the deployment (no dot, lower case)."""
        self.requests: list[RecordedRequest] = []
        self.asgi = Starlette(
            routes=[
                Route("/v1/chat-messages", self._chat_messages, methods=["POST"]),
                Route("/v1/workflows/run", self._workflows_run, methods=["POST"]),
                Route("/v1/parameters", self._parameters, methods=["GET"]),
                Route("/v1/info", self._info, methods=["GET"]),
                Route("/v1/files/upload", self._upload, methods=["POST"]),
            ],
            exception_handlers={DifyHTTPError: _error_response},
        )

    def add_app(self, app: DifyApp) -> DifyApp:
        self.apps[app.api_key] = app
        return app

    async def _chat_messages(self, request: Request) -> Response:
        recorded = await self._record(request)
        app = self._authenticate(recorded)
        body = _json_object(recorded)
        user = _user(body)
        _require_mode(app, "advanced-chat")
        payload = _ChatPayload.parse(body)
        if not payload.query:
            raise _invalid_param("query is required")
        conversation = _existing_conversation(app, payload.conversation_id, user)
        inputs = _prepare(app, payload.inputs)
        files = _files(app, payload.files, user)
        fault = _admit_run(app)
        conversation = conversation or self._start_conversation(app, user, inputs)
        conversation.queries.append(payload.query)
        run = DifyRun(payload.query, inputs, user, conversation.id, files)
        app.runs.append(run)
        ids = RunIds(app.workflow_id, user, self.clock, conversation_id=conversation.id)
        events = RunEvents(ids, inputs, chat=True)
        return await chat_response(app, run, events, fault, streaming=payload.streaming)

    async def _workflows_run(self, request: Request) -> Response:
        recorded = await self._record(request)
        app = self._authenticate(recorded)
        body = _json_object(recorded)
        user = _user(body)
        _require_mode(app, "workflow")
        payload = _WorkflowPayload.parse(body)
        inputs = _prepare(app, payload.inputs)
        files = _files(app, payload.files, user)
        fault = _admit_run(app)
        run = DifyRun("", inputs, user, None, files)
        app.runs.append(run)
        events = RunEvents(RunIds(app.workflow_id, user, self.clock), inputs, chat=False)
        return await workflow_response(app, run, events, fault, streaming=payload.streaming)

    async def _parameters(self, request: Request) -> Response:
        app = self._authenticate(await self._record(request))
        return JSONResponse(_parameters(app))

    async def _info(self, request: Request) -> Response:
        app = self._authenticate(await self._record(request))
        info = {
            "name": app.name,
            "description": app.description,
            "tags": list(app.tags),
            "mode": app.mode,
            "author_name": app.author_name,
        }
        return JSONResponse(info)

    async def _upload(self, request: Request) -> Response:
        app = self._authenticate(await self._record(request))
        if app.upload_error is not None:
            error = app.upload_error
            raise DifyHTTPError(error.status, error.code, error.message)
        async with request.form() as form:
            user = str(form.get("user") or "DEFAULT-USER")
            file = _single_file([(key, value) for key, value in form.multi_items()])
            stored = await self._store_upload(app, file, user)
        return JSONResponse(_upload_body(app, stored, str(request.base_url)), status_code=201)

    async def _record(self, request: Request) -> RecordedRequest:
        recorded = await record(request)
        self.requests.append(recorded)
        return recorded

    def _authenticate(self, recorded: RecordedRequest) -> DifyApp:
        header = recorded.authorization
        if header is None or " " not in header:
            raise _unauthorized("Authorization header must be provided and start with 'Bearer'")
        scheme, token = header.split(None, 1)
        if scheme.lower() != "bearer":
            raise _unauthorized("Authorization scheme must be 'Bearer'")
        app = self.apps.get(token)
        if app is None:
            raise _unauthorized("Access token is invalid")
        app.requests.append(recorded)
        return app

    def _start_conversation(self, app: DifyApp, user: str, inputs: JSON) -> DifyConversation:
        conversation = DifyConversation(str(uuid.uuid4()), user, inputs, int(self.clock()))
        app.conversations[conversation.id] = conversation
        return conversation

    async def _store_upload(self, app: DifyApp, file: UploadFile, user: str) -> UploadedFile:
        name = file.filename or ""
        if not name:
            raise DifyHTTPError(
                400, "filename_not_exists_error", "The specified filename does not exist."
            )
        if "/" in name or "\\" in name:
            raise _invalid_param("Filename contains invalid characters")
        if not file.content_type:
            raise DifyHTTPError(415, "unsupported_file_type", "File type not allowed.")
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension in self.extension_blacklist:
            raise _invalid_param(
                f"File extension '.{extension}' is not allowed for security reasons"
            )
        content = await file.read()
        if len(content) > (app.upload_size_limit or _SIZE_LIMITS.get(extension, 15 * _MB)):
            raise DifyHTTPError(413, "file_too_large", "")
        stored = UploadedFile(
            id=str(uuid.uuid4()),
            name=name,
            size=len(content),
            extension=extension,
            mime_type=file.content_type,
            user=user,
            created_at=int(self.clock()),
            content=content,
        )
        app.uploads[stored.id] = stored
        return stored


@dataclass(frozen=True)
class _ChatPayload:
    query: str
    inputs: JSON
    streaming: bool
    conversation_id: str | None
    files: list[JSON]

    @classmethod
    def parse(cls, body: JSON) -> _ChatPayload:
        model = "ChatRequestPayload"
        inputs = _inputs_field(model, body)
        if "query" not in body:
            raise _field_error(model, "query", "Field required")
        if not isinstance(body["query"], str):
            raise _field_error(model, "query", "Input should be a valid string")
        return cls(
            body["query"].replace("\x00", ""),
            inputs,
            _streaming(model, body),
            _conversation_id(body.get("conversation_id")),
            _files_field(model, body),
        )


@dataclass(frozen=True)
class _WorkflowPayload:
    inputs: JSON
    streaming: bool
    files: list[JSON]

    @classmethod
    def parse(cls, body: JSON) -> _WorkflowPayload:
        model = "WorkflowRunPayload"
        return cls(_inputs_field(model, body), _streaming(model, body), _files_field(model, body))


def _inputs_field(model: str, body: JSON) -> JSON:
    if "inputs" not in body:
        raise _field_error(model, "inputs", "Field required")
    if not isinstance(body["inputs"], dict):
        raise _field_error(model, "inputs", "Input should be a valid dictionary")
    return body["inputs"]


def _streaming(model: str, body: JSON) -> bool:
    mode = body.get("response_mode")
    if mode not in (None, "blocking", "streaming"):
        raise _field_error(model, "response_mode", "Input should be 'blocking' or 'streaming'")
    return mode == "streaming"


def _files_field(model: str, body: JSON) -> list[JSON]:
    files = body.get("files")
    if files is None:
        return []
    if not isinstance(files, list) or not all(isinstance(item, dict) for item in files):
        raise _field_error(model, "files", "Input should be a valid list")
    return files


def _conversation_id(value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else value
    if not text:
        return None
    try:
        return str(uuid.UUID(str(text)))
    except ValueError:
        raise _invalid_param("conversation_id must be a valid UUID") from None


def _json_object(recorded: RecordedRequest) -> JSON:
    if not isinstance(recorded.json, dict):
        raise DifyHTTPError(
            400, "bad_request", "Invalid JSON payload received or JSON payload is empty."
        )
    return recorded.json


def _user(body: JSON) -> str:
    user = body.get("user")
    if not user:
        raise _invalid_param("Arg user must be provided.")
    return str(user)


def _require_mode(app: DifyApp, mode: AppMode) -> None:
    if app.mode != mode:
        code = "not_chat_app" if mode == "advanced-chat" else "not_workflow_app"
        raise DifyHTTPError(400, code, "Please check if your app mode matches the right API route.")


def _existing_conversation(
    app: DifyApp, conversation_id: str | None, user: str
) -> DifyConversation | None:
    if conversation_id is None:
        return None
    conversation = app.conversations.get(conversation_id)
    if conversation is None or conversation.user != user:
        raise DifyHTTPError(404, "not_found", "Conversation Not Exists.")
    return conversation


def _prepare(app: DifyApp, inputs: JSON) -> JSON:
    try:
        return prepare_inputs(app.form, inputs)
    except InputError as error:
        raise _invalid_param(str(error)) from None
    except InputTypeError:
        raise DifyHTTPError(500, "internal_server_error", HttpError().message) from None


def _admit_run(app: DifyApp) -> DifyFault | None:
    """Refuse the run (429 at capacity, a scripted ``HttpError``) or return the fault it meets."""
    ensure_capacity(app)
    refusal = app.pending_http_error()
    if refusal is not None:
        raise DifyHTTPError(refusal.status, refusal.code, refusal.message)
    return app.take_run_fault()


def _files(app: DifyApp, files: list[JSON], user: str) -> list[JSON]:
    """``files`` as the run sees them: ignored when uploads are off, else each one checked like
    ``file_factory.build_from_mappings`` (any failure is a ``ValueError``: 400 invalid_param)."""
    if not app.file_upload_enabled:
        return []
    for item in files:
        _check_file(app, item, user)
    if len(files) > app.file_number_limit:
        raise _invalid_param(f"Number of files exceeds the maximum limit {app.file_number_limit}")
    return files


def _check_file(app: DifyApp, item: JSON, user: str) -> None:
    kind, method = item.get("type", "custom"), item.get("transfer_method")
    if kind not in ("image", "document", "audio", "video", "custom"):
        raise _invalid_param(f"'{kind}' is not a valid FileType")
    if method == "remote_url":
        if not item.get("url"):
            raise _invalid_param("Invalid file url")
        return
    if method != "local_file":
        raise _invalid_param(f"'{method}' is not a valid FileTransferMethod")
    stored = app.uploads.get(str(item.get("upload_file_id") or ""))
    # Only the user who uploaded a file may use it (reference §A3).
    if stored is None or stored.user != user:
        raise _invalid_param("Invalid upload file")
    detected = _FILE_TYPES.get(stored.extension, "custom")
    if kind != "custom" and kind != detected:
        raise _invalid_param(
            "Detected file type does not match the specified type. Please verify the file."
        )
    if kind == "custom":
        extensions = {e.lower() for e in app.allowed_file_extensions}
        refused = f".{stored.extension}" not in extensions
    else:
        refused = bool(app.allowed_file_types) and kind not in app.allowed_file_types
    if refused:
        raise _invalid_param(f"File validation failed for file: {stored.name}")


def _single_file(parts: list[tuple[str, Any]]) -> UploadFile:
    file_fields = {key for key, value in parts if isinstance(value, UploadFile)}
    if "file" not in file_fields:
        raise DifyHTTPError(400, "no_file_uploaded", "Please upload your file.")
    if len(file_fields) > 1:
        raise DifyHTTPError(400, "too_many_files", "Only one file is allowed.")
    return next(value for key, value in parts if key == "file" and isinstance(value, UploadFile))


def _parameters(app: DifyApp) -> JSON:
    methods = ["remote_url", "local_file"]
    return {
        "opening_statement": app.opening_statement,
        "suggested_questions": list(app.suggested_questions),
        "suggested_questions_after_answer": {"enabled": False},
        "speech_to_text": {"enabled": False},
        "text_to_speech": {"enabled": False, "voice": "", "language": "", "autoPlay": "disabled"},
        "retriever_resource": {"enabled": True},
        "annotation_reply": {"enabled": False},
        "more_like_this": {"enabled": False},
        "sensitive_word_avoidance": {"enabled": False},
        "user_input_form": app.user_input_form(),
        "file_upload": {
            "enabled": app.file_upload_enabled,
            "image": {
                "enabled": False,
                "number_limits": app.file_number_limit,
                "transfer_methods": methods,
            },
            "allowed_file_types": list(app.allowed_file_types),
            "allowed_file_extensions": list(app.allowed_file_extensions),
            "allowed_file_upload_methods": methods,
            "number_limits": app.file_number_limit,
        },
        "system_parameters": {
            "file_size_limit": 15,
            "image_file_size_limit": 10,
            "audio_file_size_limit": 50,
            "video_file_size_limit": 100,
            "workflow_file_upload_limit": 10,
        },
    }


def _upload_body(app: DifyApp, stored: UploadedFile, base_url: str) -> JSON:
    preview = f"{base_url}files/{stored.id}/file-preview"
    signature = f"timestamp={stored.created_at}&nonce={uuid.uuid4().hex}&sign=fake"
    return {
        "id": stored.id,
        "name": stored.name,
        "size": stored.size,
        "extension": stored.extension,
        "mime_type": stored.mime_type,
        "created_by": end_user_id(stored.user),
        "created_at": stored.created_at,
        "preview_url": None,
        "source_url": f"{preview}?{signature}",
        "original_url": None,
        "user_id": None,
        "tenant_id": app.tenant_id,
        "conversation_id": None,
        "file_key": None,
        "reference": None,
    }


def _invalid_param(message: str) -> DifyHTTPError:
    return DifyHTTPError(400, "invalid_param", message)


def _field_error(model: str, field: str, problem: str) -> DifyHTTPError:
    # Dify answers pydantic errors with str(ValidationError); its first three lines are stable.
    return _invalid_param(f"1 validation error for {model}\n{field}\n  {problem}")


def _unauthorized(message: str) -> DifyHTTPError:
    return DifyHTTPError(401, "unauthorized", message)


async def _error_response(request: Request, error: Exception) -> Response:
    assert isinstance(error, DifyHTTPError)
    return error.response()
