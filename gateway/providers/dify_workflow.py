"""Dify Workflow adapter (``/workflows/run``) and the Dify plumbing every Dify adapter uses.

Reference: shared/reference/dify-typebot.md Part A. Every call streams: blocking calls are cut by
gateways around 60-100 s, while a stream stays alive on Dify's 10 s pings. A Workflow run's reply
is its outputs as ``name: value`` lines, as the seed's blocking reply was.

Attachments: before the run each file the app accepts (``dify_files``) is fetched from the turn's
``FileSource`` and uploaded to ``/files/upload`` under the turn's ``user``, then listed in the
run's ``files``. A file that fails anywhere on that way is logged (file id and code only) and
left out; only a refusal of the API key or app (401/403) fails the turn, as the run itself would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.model import FileRef
from gateway.providers.base import (
    FileSource,
    ProviderConfig,
    ProviderReply,
    Sessions,
    TurnRequest,
    Usage,
)
from gateway.providers.dify_files import (
    CUSTOM,
    LOCAL_FILE,
    NO_UPLOADS,
    FileUploads,
    parse_file_uploads,
)
from gateway.providers.errors import (
    AttachmentError,
    InputTooLong,
    ProviderError,
    ProviderFailed,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.providers.http import ProviderHttp, Timeouts
from gateway.providers.sse import EventParser
from tenants.singleflight import SingleFlight

JSON = dict[str, Any]
DIFY = "Dify"
log = logging.getLogger("bitbot.providers.dify")

_TOO_LONG = re.compile(r"(.+) in input form must be less than (\d+) characters")
_REQUIRED = re.compile(r"(.+) is required in input form")
# Variable kinds a string value can fill; file and JSON variables take objects BitBot never has.
_STRING_KINDS = frozenset({"text-input", "paragraph", "select", "number", "checkbox"})
_LENGTH_KINDS = frozenset({"text-input", "paragraph"})
_MAX_CACHED_FORMS = 4096


@dataclass(frozen=True)
class FormVariable:
    """One Start-node variable from ``/parameters`` ``user_input_form``."""

    name: str
    kind: str
    required: bool
    max_length: int | None  # None and 0 both mean unlimited in Dify


Form = tuple[FormVariable, ...]


@dataclass(frozen=True)
class AppParameters:
    """What BitBot reads of an app's ``/parameters``: its input form and its file settings."""

    form: Form
    uploads: FileUploads = NO_UPLOADS


class DifyForms:
    """Apps' ``/parameters``, cached per (base URL, API key hash): a turn rarely pays the GET.

    One per worker (``Turns`` owns it and hands it to each turn's adapter); an adapter made
    without one keeps a cache of its own. Concurrent fetches of one app share a request."""

    def __init__(self, ttl_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._apps: dict[tuple[str, str], tuple[float, AppParameters]] = {}
        self.fetching: SingleFlight[tuple[str, str], AppParameters] = SingleFlight()

    def lookup(self, config: ProviderConfig) -> Form | None:
        app = self.lookup_app(config)
        return None if app is None else app.form

    def lookup_app(self, config: ProviderConfig) -> AppParameters | None:
        stored_at, app = self._apps.get(_app_key(config), (0.0, None))
        return app if self._clock() - stored_at <= self._ttl_s else None

    def store(self, config: ProviderConfig, form: Form, uploads: FileUploads = NO_UPLOADS) -> None:
        if len(self._apps) >= _MAX_CACHED_FORMS:
            del self._apps[next(iter(self._apps))]
        self._apps[_app_key(config)] = (self._clock(), AppParameters(form, uploads))

    def forget(self, config: ProviderConfig) -> None:
        self._apps.pop(_app_key(config), None)


def prepare_inputs(form: Form, inputs: dict[str, str]) -> dict[str, str]:
    """The inputs the app declares, checked as Dify will check them, so failures name a variable.

    Undeclared keys are dropped (Dify ignores them anyway, and the flow gets no data it did not ask
    for); a required text variable BitBot has no value for is sent empty, which Dify accepts.
    """
    prepared: dict[str, str] = {}
    for variable in form:
        value = inputs.get(variable.name)
        if variable.kind not in _STRING_KINDS:
            if variable.required:
                raise ProviderRejected(
                    f"input variable {variable.name} is a required {variable.kind} variable,"
                    " which BitBot cannot fill; make it optional in Dify",
                    code="input_unsupported",
                )
            continue
        if value is None:
            if not variable.required:
                continue
            value = ""
        limit = variable.max_length
        if variable.kind in _LENGTH_KINDS and limit and len(value) > limit:
            raise InputTooLong(variable.name, limit)
        prepared[variable.name] = value
    return prepared


def parse_form(parameters: object) -> Form:
    """``user_input_form`` is a list of one-key objects: ``{<kind>: {variable, required, ...}}``."""
    entries = parameters.get("user_input_form") if isinstance(parameters, dict) else None
    form: list[FormVariable] = []
    for entry in entries if isinstance(entries, list) else []:
        kind, spec = next(iter(entry.items())) if isinstance(entry, dict) and entry else ("", None)
        if isinstance(spec, dict) and isinstance(spec.get("variable"), str):
            limit = positive_int(spec.get("max_length")) or None
            form.append(
                FormVariable(spec["variable"], str(kind), bool(spec.get("required")), limit)
            )
    return tuple(form)


def dify_error(status: int, body: object) -> ProviderError:
    """Map a non-200 answer; Dify's free-text message is never copied, it may echo inputs."""
    fields = body if isinstance(body, dict) else {}
    code = str(fields.get("code") or "")
    message = str(fields.get("message") or "")
    reason = f"{status} {code}".rstrip()
    if status == 401:
        return ProviderRejected("the Dify API key is not accepted", code=code, status=status)
    if status in (408, 429) or status >= 500:
        return ProviderUnavailable(f"Dify is unavailable ({reason})", code, status)
    if status == 400 and (match := _TOO_LONG.fullmatch(message)):
        return InputTooLong(match[1], int(match[2]))
    if status == 400 and (match := _REQUIRED.fullmatch(message)):
        return ProviderRejected(
            f"input variable {match[1]} is required by the Dify app", "input_required", status
        )
    return ProviderRejected(f"Dify refused the request ({reason})", code, status)


def check_run(data: object) -> JSON:
    """``workflow_finished.data`` of a run that produced a result, else ``ProviderFailed``."""
    run = data if isinstance(data, dict) else {}
    status = str(run.get("status") or "")
    if status in ("failed", "stopped", "paused"):
        raise ProviderFailed(f"the Dify run ended as {status}", code=f"run_{status}")
    return run


class EventSink(Protocol):
    finished: bool

    def feed(self, event: JSON) -> None: ...


class DifyAdapter(ABC):
    """Transport, timeouts, the input pre-check and error mapping common to Dify app types."""

    def __init__(
        self,
        http: ProviderHttp,
        sessions: Sessions,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
        turn_timeout_s: float = 300.0,
        file_timeout_s: float = 60.0,
        forms: DifyForms | None = None,
    ) -> None:
        self._http = http
        self._sessions = sessions
        self._timeouts = Timeouts(connect_s=connect_timeout_s, read_s=read_timeout_s)
        self._turn_timeout_s = turn_timeout_s
        self._file_timeout_s = file_timeout_s
        self._forms = forms or DifyForms()
        # Uploads made so far: ``provider_for`` makes an adapter per turn, so a retried run of the
        # turn does not fetch and upload its files again, and this holds at most its files.
        self._uploaded: dict[tuple[str, str, str, str], JSON] = {}

    async def run(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply:
        try:
            async with asyncio.timeout(self._turn_timeout_s):
                return await self._turn(config, request)
        except TimeoutError as error:
            raise ProviderUnavailable(
                f"Dify did not finish the turn within {self._turn_timeout_s:g} s",
                code="turn_timeout",
            ) from error

    @abstractmethod
    async def _turn(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply: ...

    async def _inputs(self, config: ProviderConfig, request: TurnRequest) -> dict[str, str]:
        cached = self._forms.lookup(config)
        if cached is not None:
            try:
                return prepare_inputs(cached, request.inputs)
            except ProviderRejected:
                pass  # the app may have changed since it was cached: check against a fresh form
        return prepare_inputs((await self._fetch_app(config)).form, request.inputs)

    async def _fetch_app(self, config: ProviderConfig) -> AppParameters:
        fetching = self._forms.fetching
        return await fetching.run(_app_key(config), lambda: self._download_parameters(config))

    async def _download_parameters(self, config: ProviderConfig) -> AppParameters:
        answer = await self._http.send(
            "GET",
            _url(config, "/parameters"),
            provider=DIFY,
            timeouts=self._timeouts,
            headers=_headers(config),
        )
        if answer.status != 200:
            raise dify_error(answer.status, answer.json())
        parameters = answer.json()
        app = AppParameters(parse_form(parameters), parse_file_uploads(parameters))
        self._forms.store(config, app.form, app.uploads)
        return app

    async def _upload_files(self, config: ProviderConfig, request: TurnRequest) -> list[JSON]:
        """The run's ``files``: each attachment the app takes, uploaded under ``request.user``."""
        source = request.files
        if not request.attachments or source is None:
            return []
        app = self._forms.lookup_app(config) or await self._fetch_app(config)
        if not app.uploads.enabled:
            return []  # Dify would ignore the files: fetch nothing
        files: list[JSON] = []
        for ref in request.attachments:
            try:
                if len(files) >= app.uploads.number_limit:
                    raise AttachmentError("too_many_files")
                async with asyncio.timeout(self._file_timeout_s):
                    files.append(await self._upload_file(config, request, source, ref, app.uploads))
            except AttachmentError as error:
                log.warning("attachment %s skipped: %s", ref.id, error.code)
            except TimeoutError:
                log.warning("attachment %s skipped: %s", ref.id, "timeout")
            except ProviderError:
                raise  # the key or the app is refused
            except Exception as error:
                # A file never costs the answer; the message may quote the file, so only its type.
                log.warning("attachment %s skipped: %s", ref.id, type(error).__name__)
        return files

    async def _upload_file(
        self,
        config: ProviderConfig,
        request: TurnRequest,
        source: FileSource,
        ref: FileRef,
        uploads: FileUploads,
    ) -> JSON:
        remembered = (*_app_key(config), request.user, ref.id)
        if remembered in self._uploaded:
            return self._uploaded[remembered]
        kind = _accepted_type(uploads, ref.name) if ref.name else None
        download = await source.fetch(ref, uploads.size_limit(kind or CUSTOM))
        name = download.name or f"file-{ref.id}"  # the source cleaned it (``Download``)
        kind = _accepted_type(uploads, name)
        if len(download.content) > uploads.size_limit(kind):
            raise AttachmentError("file_too_large")
        try:
            answer = await self._http.upload(
                _url(config, "/files/upload"),
                provider=DIFY,
                timeouts=self._timeouts,
                fields={"user": request.user},
                file_field="file",
                filename=name,
                content_type=download.content_type,
                content=download.content,
                headers=_headers(config),
            )
        except ProviderUnavailable as error:
            raise AttachmentError(error.code) from None
        body = answer.json()
        upload_id = body.get("id") if isinstance(body, dict) else None
        if answer.status not in (200, 201) or not isinstance(upload_id, str) or not upload_id:
            refusal = dify_error(answer.status, body)
            if answer.status in (401, 403):
                raise refusal  # the key or the app is refused: the run would be too
            raise AttachmentError(refusal.code or f"http_{answer.status}")
        item: JSON = {"type": kind, "transfer_method": LOCAL_FILE, "upload_file_id": upload_id}
        self._uploaded[remembered] = item
        return item

    async def _run(self, config: ProviderConfig, path: str, body: JSON, sink: EventSink) -> None:
        """Stream the run; if Dify refuses it over its files, run it once more without them."""
        try:
            await self._stream(config, path, body, sink)
        except ProviderRejected as error:
            refused_inputs = isinstance(error, InputTooLong) or error.code.startswith("input_")
            if not body.get("files") or error.status != 400 or refused_inputs:
                raise
            log.warning("Dify refused the turn's files (%s); running without them", error.code)
            await self._stream(config, path, {k: v for k, v in body.items() if k != "files"}, sink)

    async def _stream(self, config: ProviderConfig, path: str, body: JSON, sink: EventSink) -> None:
        url, headers = _url(config, path), _headers(config)
        async with self._http.stream(
            "POST", url, provider=DIFY, timeouts=self._timeouts, json_body=body, headers=headers
        ) as response:
            if response.status != 200:
                error = dify_error(response.status, (await response.read()).json())
                if isinstance(error, InputTooLong) or error.code == "input_required":
                    self._forms.forget(config)  # the cached form is stale
                raise error
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise ProviderRejected(
                    "Dify answered without an event stream; check the base URL",
                    code="not_event_stream",
                )
            events = EventParser(provider=DIFY)
            async with aclosing(response.line_batches()) as batches:
                async for lines in batches:
                    for message in events.feed(lines):
                        sink.feed(_checked_event(message.data))
        if not sink.finished:
            raise ProviderUnavailable(
                "the Dify stream ended before the run finished", code="incomplete_stream"
            )


class DifyWorkflow(DifyAdapter):
    """``dify_workflow``: no conversation state, so ``Sessions`` is never touched."""

    async def _turn(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply:
        body: JSON = {
            "inputs": await self._inputs(config, request),
            "user": request.user,
            "response_mode": "streaming",
        }
        files = await self._upload_files(config, request)
        if files:
            body["files"] = files
        result = _WorkflowResult()
        await self._run(config, "/workflows/run", body, result)
        return ProviderReply(text=outputs_text(result.outputs), usage=result.usage)


def outputs_text(outputs: JSON) -> str:
    return "\n".join(f"{name}: {_render(value)}" for name, value in outputs.items())


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


class _WorkflowResult:
    def __init__(self) -> None:
        self.outputs: JSON = {}
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, event: JSON) -> None:
        kind = event.get("event")
        if kind == "workflow_finished":
            run = check_run(event.get("data"))
            outputs = run.get("outputs")
            self.outputs = outputs if isinstance(outputs, dict) else {}
            self.usage = Usage(total_tokens=positive_int(run.get("total_tokens")))
            self.finished = True


def positive_int(value: object) -> int:
    """A positive integer field of Dify's JSON, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _url(config: ProviderConfig, path: str) -> str:
    return config.base_url.rstrip("/") + path


def _headers(config: ProviderConfig) -> dict[str, str]:
    if not config.api_key:
        raise ProviderRejected("no Dify API key is configured", code="no_api_key")
    return {"Authorization": f"Bearer {config.api_key}"}


def _accepted_type(uploads: FileUploads, name: str) -> str:
    kind = uploads.type_for(name)
    if kind is None:
        raise AttachmentError("file_type_not_allowed")
    return kind


def _app_key(config: ProviderConfig) -> tuple[str, str]:
    digest = hashlib.sha256((config.api_key or "").encode()).hexdigest()
    return config.base_url.rstrip("/"), digest


def _checked_event(data: str) -> JSON:
    """A stream event, unless it reports a failure or a pause every Dify app type reports alike."""
    try:
        event = json.loads(data)
    except ValueError:
        raise ProviderUnavailable("Dify sent an unreadable event", code="bad_event") from None
    if not isinstance(event, dict):
        return {}
    if event.get("event") == "error":
        status = event.get("status")
        code = str(event.get("code") or "")
        raise ProviderFailed(
            f"the Dify flow failed ({code})", code, status if isinstance(status, int) else 0
        )
    if event.get("event") in ("workflow_paused", "human_input_required"):
        raise ProviderFailed("the Dify flow waits for human input", code="run_paused")
    return event
