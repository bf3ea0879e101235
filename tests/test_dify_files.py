"""Attachments reach Dify apps: uploaded under the turn's user, then listed in the run's ``files``.

The adapters run against the fake Dify over real HTTP; the files come from an in-memory
``FileSource`` (the Bitrix24 side has its own tests in test_attachments.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import fakeredis
import pytest

from gateway.model import FileRef
from gateway.providers import (
    DifyChatflow,
    DifyWorkflow,
    ProviderConfig,
    ProviderHttp,
    ProviderRejected,
    ProviderUnavailable,
    RedisSessions,
    TurnRequest,
)
from gateway.providers.base import Download
from gateway.providers.dify_files import FileUploads, file_type, parse_file_uploads
from gateway.providers.dify_workflow import DifyForms
from gateway.providers.errors import AttachmentError
from tests.fakes.dify import DifyApp, FakeDify, HttpError
from tests.fakes.provider_wire import RecordedRequest
from tests.fakes.server import serve

CHAT_KEY = "app-chat-files-7Yq1"
FLOW_KEY = "app-flow-files-3Pz8"
USER = "member-1:chat7"
PNG = b"\x89PNG\r\n\x1a\n-image-bytes"
PDF = b"%PDF-1.7 invoice"


class MemoryFiles:
    """A FileSource over a dict; records what was fetched and with which cap."""

    def __init__(self, files: dict[str, Download]) -> None:
        self.files = files
        self.fetched: list[tuple[str, int]] = []
        self.refuse: dict[str, str] = {}

    async def fetch(self, file: FileRef, max_bytes: int) -> Download:
        self.fetched.append((file.id, max_bytes))
        if file.id in self.refuse:
            raise AttachmentError(self.refuse[file.id])
        download = self.files[file.id]
        if len(download.content) > max_bytes:
            raise AttachmentError("file_too_large")
        return download


def download(name: str, content: bytes, content_type: str) -> Download:
    return Download(name, content_type, content)


@pytest.fixture
def source() -> MemoryFiles:
    return MemoryFiles(
        {
            "11": download("photo.png", PNG, "image/png"),
            "12": download("invoice.pdf", PDF, "application/pdf"),
            "13": download("notes.txt", b"plain notes", "text/plain"),
            "14": download("setup.exe", b"MZ-binary", "application/octet-stream"),
        }
    )


def ref(file_id: str, name: str = "", size: int | None = None) -> FileRef:
    return FileRef(file_id, name, "file", size)


@pytest.fixture
def dify() -> FakeDify:
    fake = FakeDify()
    fake.add_app(DifyApp(CHAT_KEY, answer="Got it", file_upload_enabled=True))
    fake.add_app(DifyApp(FLOW_KEY, mode="workflow", file_upload_enabled=True))
    return fake


@pytest.fixture
async def base_url(dify: FakeDify) -> AsyncIterator[str]:
    async with serve(dify.asgi) as url:
        yield f"{url}/v1"


@pytest.fixture
def chatflow(provider_http: ProviderHttp) -> DifyChatflow:
    return DifyChatflow(provider_http, RedisSessions(fakeredis.FakeAsyncRedis()), forms=DifyForms())


@pytest.fixture
def workflow(provider_http: ProviderHttp) -> DifyWorkflow:
    return DifyWorkflow(provider_http, RedisSessions(fakeredis.FakeAsyncRedis()), forms=DifyForms())


def chat_config(base_url: str) -> ProviderConfig:
    return ProviderConfig(type="dify_chatflow", base_url=base_url, api_key=CHAT_KEY)


def flow_config(base_url: str) -> ProviderConfig:
    return ProviderConfig(type="dify_workflow", base_url=base_url, api_key=FLOW_KEY)


def turn(source: MemoryFiles | None, *files: FileRef, query: str = "see attached") -> TurnRequest:
    return TurnRequest(
        query=query,
        inputs={"file_id": files[0].id if files else ""},
        user=USER,
        session_key="bitbot:member-1:55:chat7",
        attachments=files,
        files=source,
    )


def uploads(app: DifyApp) -> list[RecordedRequest]:
    return [request for request in app.requests if request.path == "/v1/files/upload"]


async def test_chatflow_uploads_the_file_and_lists_it_in_the_run(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[CHAT_KEY]

    reply = await chatflow.run(chat_config(base_url), turn(source, ref("11", "photo.png")))

    assert reply.text == "Got it"
    ((upload_id, stored),) = app.uploads.items()
    assert (stored.name, stored.user, stored.content, stored.mime_type) == (
        "photo.png",
        USER,
        PNG,
        "image/png",
    )
    (run,) = app.runs
    assert run.user == USER
    assert run.files == [
        {"type": "image", "transfer_method": "local_file", "upload_file_id": upload_id}
    ]
    (request,) = uploads(app)
    assert request.form == {"user": USER}
    assert request.files == {"file": "photo.png"}


async def test_workflow_sends_documents_and_images_as_their_types(
    workflow: DifyWorkflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[FLOW_KEY]

    await workflow.run(flow_config(base_url), turn(source, ref("12"), ref("11")))

    (run,) = app.runs
    names = {upload_id: stored.name for upload_id, stored in app.uploads.items()}
    assert [(item["type"], names[item["upload_file_id"]]) for item in run.files] == [
        ("document", "invoice.pdf"),
        ("image", "photo.png"),
    ]
    assert {stored.user for stored in app.uploads.values()} == {USER}


async def test_nothing_is_fetched_when_the_app_takes_no_files(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[CHAT_KEY]
    app.file_upload_enabled = False

    reply = await chatflow.run(chat_config(base_url), turn(source, ref("11", "photo.png")))

    assert reply.text == "Got it"
    assert source.fetched == []
    assert uploads(app) == []
    assert "files" not in (app.requests[-1].json or {})


async def test_a_type_the_app_refuses_is_not_fetched(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[CHAT_KEY]
    app.allowed_file_types = ("image",)

    await chatflow.run(
        chat_config(base_url), turn(source, ref("12", "invoice.pdf"), ref("11", "photo.png"))
    )

    assert [file_id for file_id, _ in source.fetched] == ["11"]
    assert [item["type"] for item in app.runs[-1].files] == ["image"]


async def test_a_file_the_source_cannot_fetch_is_skipped_and_logged_without_detail(
    chatflow: DifyChatflow,
    dify: FakeDify,
    base_url: str,
    source: MemoryFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source.refuse["12"] = "FILE_ACCESS_ERROR"

    with caplog.at_level(logging.WARNING, "bitbot.providers.dify"):
        reply = await chatflow.run(chat_config(base_url), turn(source, ref("12"), ref("11")))

    assert reply.text == "Got it"
    assert [item["type"] for item in dify.apps[CHAT_KEY].runs[-1].files] == ["image"]
    assert [r.getMessage() for r in caplog.records] == ["attachment 12 skipped: FILE_ACCESS_ERROR"]


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda dify, app: dify.extension_blacklist.add("pdf"), "invalid_param"),
        (lambda dify, app: setattr(app, "upload_size_limit", 4), "file_too_large"),
        (
            lambda dify, app: setattr(app, "upload_error", HttpError(500)),
            "internal_server_error",
        ),
    ],
    ids=["blacklisted-extension", "too-large-for-dify", "server-error"],
)
async def test_an_upload_dify_refuses_is_skipped_and_the_turn_still_runs(
    chatflow: DifyChatflow,
    dify: FakeDify,
    base_url: str,
    source: MemoryFiles,
    caplog: pytest.LogCaptureFixture,
    setup: object,
    code: str,
) -> None:
    app = dify.apps[CHAT_KEY]
    assert callable(setup)
    setup(dify, app)

    with caplog.at_level(logging.WARNING, "bitbot.providers.dify"):
        reply = await chatflow.run(chat_config(base_url), turn(source, ref("12", "invoice.pdf")))

    assert reply.text == "Got it"
    assert app.uploads == {}
    assert app.runs[-1].files == []
    assert "files" not in (app.requests[-1].json or {})
    assert [r.getMessage() for r in caplog.records] == [f"attachment 12 skipped: {code}"]


async def test_a_refused_api_key_on_upload_fails_the_turn(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[CHAT_KEY]
    app.upload_error = HttpError(401, "unauthorized", "Access token is invalid")

    with pytest.raises(ProviderRejected) as raised:
        await chatflow.run(chat_config(base_url), turn(source, ref("11", "photo.png")))

    assert raised.value.status == 401
    assert app.runs == []


async def test_the_app_limits_how_many_files_a_run_takes(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[CHAT_KEY]
    app.file_number_limit = 2

    await chatflow.run(
        chat_config(base_url), turn(source, ref("11"), ref("12"), ref("13", "notes.txt"))
    )

    assert [file_id for file_id, _ in source.fetched] == ["11", "12"]
    assert len(app.runs[-1].files) == 2


async def test_a_run_refused_over_its_files_is_run_again_without_them(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[CHAT_KEY]
    config = chat_config(base_url)
    await chatflow.run(config, turn(source, query="hello"))  # caches the app's settings
    app.file_number_limit = 1  # changed in Dify after BitBot read them

    reply = await chatflow.run(config, turn(source, ref("11"), ref("12")))

    assert reply.text == "Got it"
    refused, accepted = [r.json or {} for r in app.requests if r.path == "/v1/chat-messages"][1:]
    assert len(refused["files"]) == 2
    assert "files" not in accepted
    assert app.runs[-1].files == []


async def test_a_retried_turn_reuses_its_uploads(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    app = dify.apps[CHAT_KEY]
    app.fail_next(HttpError(503, "service_unavailable", "busy"))
    request = turn(source, ref("11", "photo.png"))

    with pytest.raises(ProviderUnavailable):
        await chatflow.run(chat_config(base_url), request)
    await chatflow.run(chat_config(base_url), request)

    assert len(source.fetched) == 1
    assert len(uploads(app)) == 1
    assert app.runs[-1].files[0]["upload_file_id"] == next(iter(app.uploads))


async def test_the_fetch_cap_follows_the_apps_limits(
    workflow: DifyWorkflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    await workflow.run(
        flow_config(base_url), turn(source, ref("11", "photo.png"), ref("12", "invoice.pdf"))
    )

    mb = 1024 * 1024
    assert source.fetched == [("11", 10 * mb), ("12", 15 * mb)]


async def test_a_file_known_to_be_too_big_is_not_fetched(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, source: MemoryFiles
) -> None:
    big = ref("12", "invoice.pdf", size=16 * 1024 * 1024)
    small = ref("11", "photo.png", size=len(PNG))
    source.files["12"] = download("invoice.pdf", b"x" * (16 * 1024 * 1024), "application/pdf")

    await chatflow.run(chat_config(base_url), turn(source, big, small))

    assert [item["type"] for item in dify.apps[CHAT_KEY].runs[-1].files] == ["image"]
    assert uploads(dify.apps[CHAT_KEY])[0].files == {"file": "photo.png"}


def test_file_types_follow_difys_extension_sets() -> None:
    assert [
        file_type(name)
        for name in ("a.JPG", "b.webm", "c.m4a", "d.pdf", "e.docx", "f.csv", "g.zip", "noext")
    ] == ["image", "video", "audio", "document", "document", "document", "custom", "custom"]


def test_upload_settings_are_read_from_parameters() -> None:
    parameters = {
        "file_upload": {
            "enabled": True,
            "allowed_file_types": ["image", "custom"],
            "allowed_file_extensions": [".ZIP"],
            "allowed_file_upload_methods": ["local_file"],
            "number_limits": 5,
        },
        "system_parameters": {"image_file_size_limit": 2},
    }

    uploads = parse_file_uploads(parameters)

    assert uploads.enabled
    assert uploads.number_limit == 5
    assert [uploads.type_for(n) for n in ("a.png", "b.zip", "c.pdf")] == ["image", "custom", None]
    assert uploads.size_limit("image") == 2 * 1024 * 1024
    assert uploads.size_limit("document") == 15 * 1024 * 1024
    remote_only = {"file_upload": {"enabled": True, "allowed_file_upload_methods": ["remote_url"]}}
    assert parse_file_uploads(remote_only) == FileUploads()
    assert parse_file_uploads({"file_upload": {"enabled": False}}).enabled is False
    assert parse_file_uploads({}).enabled is False
