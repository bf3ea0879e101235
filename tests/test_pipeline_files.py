"""End to end: a file a customer sends reaches the Dify app (uploaded, listed in ``files``) beside
the ``file_id``/``file_type`` variables, and a file that cannot get there never costs the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.fakes.bitrix24 import (
    Bot,
    Chat,
    IncomingFile,
    Portal,
    User,
    message_add,
    message_add_v2,
    send_event,
    webhook_v2,
)
from tests.fakes.dify import DifyApp, DifyRun, InputVariable
from tests.log_capture import captured_logs, json_lines
from tests.pipeline_stack import Stack, pipeline_stack, replies, until

PDF = b"%PDF-1.7 invoice 4711"
FILE_FORM = [InputVariable("file_id"), InputVariable("file_type"), InputVariable("MESSAGE")]
MB = 1024 * 1024


@pytest.fixture
async def stack(backend: Backend, tmp_path: Path) -> AsyncIterator[Stack]:
    async with pipeline_stack(backend, tmp_path) as stack:
        yield stack


@dataclass
class Dialog:
    stack: Stack
    portal: Portal
    bot: Bot
    customer: User
    chat: Chat
    app: DifyApp

    async def send(self, text: str, *files: IncomingFile) -> str:
        """Send a customer message; the reply's text once it is in the chat."""
        count = len(self.portal.messages_to(self.chat.dialog_id)) + 1
        if self.bot.api == 1:
            body = message_add(self.portal, self.bot, self.chat, self.customer, text, files=files)
        else:
            event = message_add_v2(
                self.portal, self.bot, self.chat, self.customer, text, files=files
            )
            body = webhook_v2(self.portal, event)
        response = await send_event(self.stack.events_url, body)
        assert response.status_code == 200
        return (await replies(self.portal, self.chat.dialog_id, count))[-1].text

    @property
    def user(self) -> str:
        return f"{self.portal.member_id}:{self.chat.dialog_id}"


async def dialog(stack: Stack, *, v2: bool, provider: str = "dify_chatflow") -> Dialog:
    if provider == "dify_workflow":
        app = DifyApp("app-key-1", mode="workflow", outputs={"answer": "Thanks, filed"})
    else:
        app = DifyApp("app-key-1", answer="Thanks, filed")
    app.form = FILE_FORM
    app.file_upload_enabled = True
    stack.dify.add_app(app)
    portal = stack.cloud.add_portal("acme.bitrix24.com", v2=v2)
    bot = (
        portal.add_v2_bot("support", webhook_url=stack.events_url)
        if v2
        else portal.add_v1_bot("support", stack.events_url)
    )
    await stack.add_bot(await stack.install(portal), bot, provider_type=provider)
    customer = portal.add_customer("Ann", "Lee")
    chat = portal.open_line_chat(customer)
    stack.start_worker()
    return Dialog(stack, portal, bot, customer, chat, app)


def answer_text(provider: str) -> str:
    return "answer: Thanks, filed" if provider == "dify_workflow" else "Thanks, filed"


PROVIDERS = ["dify_chatflow", "dify_workflow"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
async def test_the_flow_receives_the_file_and_the_variables(
    stack: Stack, v2: bool, provider: str
) -> None:
    talk = await dialog(stack, v2=v2, provider=provider)
    invoice = talk.portal.add_file("invoice.pdf", PDF)

    reply = await talk.send("", invoice)

    assert reply == answer_text(provider)
    ((upload_id, stored),) = talk.app.uploads.items()
    assert (stored.name, stored.content, stored.user) == ("invoice.pdf", PDF, talk.user)
    (run,) = talk.app.runs
    assert run.user == talk.user
    assert run.files == [
        {"type": "document", "transfer_method": "local_file", "upload_file_id": upload_id}
    ]
    assert run.inputs["file_id"] == str(invoice.id)
    assert run.inputs["file_type"] == "file"
    if provider == "dify_chatflow":
        assert run.query == "File sent: invoice.pdf"
    method = "imbot.v2.File.download" if v2 else "disk.file.get"
    assert len(talk.portal.calls_of(method)) == 1


async def test_every_file_of_a_message_goes_along(stack: Stack) -> None:
    talk = await dialog(stack, v2=True)
    photo = talk.portal.add_file("photo.png", b"\x89PNG-bytes")
    invoice = talk.portal.add_file("invoice.pdf", PDF)

    await talk.send("here you go", photo, invoice)

    (run,) = talk.app.runs
    names = {upload_id: stored.name for upload_id, stored in talk.app.uploads.items()}
    assert [(f["type"], names[f["upload_file_id"]]) for f in run.files] == [
        ("image", "photo.png"),
        ("document", "invoice.pdf"),
    ]
    assert run.query == "here you go"
    assert (run.inputs["file_id"], run.inputs["file_type"]) == (str(photo.id), "image")


def assert_answered_without_files(talk: Dialog, run: DifyRun, file: IncomingFile) -> None:
    assert run.files == []
    assert talk.app.uploads == {}
    assert run.inputs["file_id"] == str(file.id)


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
async def test_a_file_bitrix24_refuses_still_gets_an_answer(stack: Stack, v2: bool) -> None:
    talk = await dialog(stack, v2=v2)
    secret = talk.portal.add_file("secret.pdf", PDF, readable=False)

    first = await talk.send("see attached", secret)
    second = await talk.send("are you there?")

    assert first == second == "Thanks, filed"
    refused, follow_up = talk.app.runs
    assert_answered_without_files(talk, refused, secret)
    assert follow_up.query == "are you there?"
    method = "imbot.v2.File.download" if v2 else "disk.file.get"
    (call,) = talk.portal.calls_of(method)
    assert call.error == ("FILE_ACCESS_ERROR" if v2 else "ACCESS_DENIED")


async def test_a_file_over_the_cap_is_left_out_without_reading_it_all(stack: Stack) -> None:
    talk = await dialog(stack, v2=False)
    # The event understates the size, so the download starts and is abandoned at the cap.
    huge = talk.portal.add_file("scan.pdf", b"x" * (15 * MB + 1), size=2048)

    first = await talk.send("", huge)
    second = await talk.send("hello again")

    assert first == second == "Thanks, filed"
    too_big, follow_up = talk.app.runs
    assert_answered_without_files(talk, too_big, huge)
    assert too_big.query == "File sent: scan.pdf"
    assert follow_up.files == []


async def test_a_file_dify_refuses_still_gets_an_answer(stack: Stack) -> None:
    talk = await dialog(stack, v2=True, provider="dify_workflow")
    talk.app.allowed_file_types = ("image", "document", "custom")
    talk.app.allowed_file_extensions = (".exe",)  # the app takes it; the deployment does not
    stack.dify.extension_blacklist.add("exe")
    program = talk.portal.add_file("setup.exe", b"MZ-program")

    first = await talk.send("please install", program)
    second = await talk.send("and now?")

    assert first == second == answer_text("dify_workflow")
    refused, follow_up = talk.app.runs
    assert_answered_without_files(talk, refused, program)
    assert follow_up.inputs["MESSAGE"] == "and now?"
    assert [r.path for r in talk.app.requests].count("/v1/files/upload") == 1


async def test_nothing_is_downloaded_for_an_app_without_file_upload(stack: Stack) -> None:
    talk = await dialog(stack, v2=False)
    talk.app.file_upload_enabled = False
    invoice = talk.portal.add_file("invoice.pdf", PDF)

    assert await talk.send("", invoice) == "Thanks, filed"

    assert talk.portal.calls_of("disk.file.get") == []
    assert talk.portal.downloads == []
    assert talk.app.runs[0].inputs["file_id"] == str(invoice.id)


async def test_no_download_link_or_token_reaches_the_logs(stack: Stack) -> None:
    with captured_logs("pipeline") as buffer:
        talk = await dialog(stack, v2=False)
        invoice = talk.portal.add_file("invoice.pdf", PDF)
        huge = talk.portal.add_file("scan.pdf", b"x" * (2 * MB), size=10)
        stack.dify.apps["app-key-1"].upload_size_limit = MB  # Dify refuses the big one: 413

        await talk.send("two files", invoice, huge)
        await until(lambda: not any(w.in_flight for w, _, _ in stack.workers), what="idle")

    tokens = [link.token for link in talk.portal.download_links.values()]
    assert len(tokens) == 2  # v1 links stay valid, so both are still known here
    text = buffer.getvalue()
    assert [token for token in tokens if token in text] == []
    assert talk.portal.auth.access_token not in text
    # The fake portal runs in this process: its access log shows the link's path (values masked).
    ours = [line for line in json_lines(buffer) if line["logger"] != "uvicorn.access"]
    assert [line for line in ours if "download.json" in str(line)] == []
    assert f"attachment {huge.id} skipped: file_too_large" in text
    (run,) = talk.app.runs
    assert len(run.files) == 1
