"""Customer files fetched from Bitrix24 (reference bitrix24.md §9.2): the real portal client
against the fake portal over HTTP, v1 through ``disk.file.get``, v2 through
``imbot.v2.File.download``."""

from __future__ import annotations

import dataclasses

import httpx2
import pytest

from gateway.attachments import Bitrix24Files
from gateway.model import FileRef
from gateway.providers.errors import AttachmentError
from tenants.bitrix24 import Bitrix24Client, Services, build_services
from tenants.netguard import HostGuard
from tenants.runtime import Runtime
from tests.conftest import SteppedClock
from tests.fakes.bitrix24 import FakeBitrix24, IncomingFile, Portal
from tests.installs import install_portal

CAP = 1024 * 1024
PDF = b"%PDF-1.7 " + b"x" * 2000


@pytest.fixture
def services(b24_runtime: Runtime, http: httpx2.AsyncClient, clock: SteppedClock) -> Services:
    return build_services(b24_runtime, http, clock)


async def client_for(services: Services, portal: Portal, clock: SteppedClock) -> Bitrix24Client:
    return Bitrix24Client(await install_portal(services.store, portal, clock.now()), services)


def ref(file: IncomingFile, *, name: str | None = None) -> FileRef:
    return FileRef(str(file.id), file.name if name is None else name, file.type, file.size)


async def test_v1_reads_the_download_url_of_disk_file_get_and_fetches_it(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=False)
    file = portal.add_file("invoice.pdf", PDF)
    files = Bitrix24Files(await client_for(services, portal, clock), 1, bot_id=7)

    download = await files.fetch(ref(file), CAP)

    assert (download.name, download.content_type, download.content) == (
        "invoice.pdf",
        "application/pdf",
        PDF,
    )
    (call,) = portal.calls_of("disk.file.get")
    assert call.params == {"id": file.id}
    (seen,) = portal.downloads
    assert (seen.file_id, seen.status) == (file.id, 200)
    assert seen.headers["referer"] == f"{portal.uri}/"
    assert seen.headers["accept"] == "*/*"


async def test_v2_asks_the_bot_for_a_one_time_link(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("new.bitrix24.com", v2=True)
    bot = portal.add_v2_bot("support")
    file = portal.add_file("photo.png", b"\x89PNG-bytes")
    files = Bitrix24Files(await client_for(services, portal, clock), 2, bot_id=bot.id)

    first = await files.fetch(ref(file), CAP)
    again = await files.fetch(ref(file), CAP)

    assert first.content == again.content == b"\x89PNG-bytes"
    assert first.content_type == "image/png"
    assert [c.params for c in portal.calls_of("imbot.v2.File.download")] == [
        {"botId": bot.id, "fileId": file.id}
    ] * 2
    assert portal.download_links == {}  # each link was used once


async def test_the_name_comes_from_the_download_when_the_event_had_none(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("new.bitrix24.com", v2=True)
    bot = portal.add_v2_bot("support")
    file = portal.add_file("Счёт 7.pdf", PDF)
    files = Bitrix24Files(await client_for(services, portal, clock), 2, bot_id=bot.id)

    download = await files.fetch(ref(file, name=""), CAP)

    assert download.name == "Счёт 7.pdf"


@pytest.mark.parametrize(
    ("v2", "readable", "code"),
    [
        (False, False, "ACCESS_DENIED"),
        (True, False, "FILE_ACCESS_ERROR"),
        (False, None, "ERROR_NOT_FOUND"),
        (True, None, "FILE_NOT_FOUND"),
    ],
    ids=["v1-denied", "v2-denied", "v1-missing", "v2-missing"],
)
async def test_files_bitrix24_refuses_raise_an_attachment_error_with_its_code(
    services: Services,
    bitrix24: FakeBitrix24,
    clock: SteppedClock,
    v2: bool,
    readable: bool | None,
    code: str,
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=v2)
    bot = portal.add_v2_bot("support") if v2 else portal.add_v1_bot("support", "https://h.x/")
    file = portal.add_file("secret.pdf", PDF, readable=bool(readable))
    if readable is None:
        del portal.files[file.id]
    files = Bitrix24Files(await client_for(services, portal, clock), 2 if v2 else 1, bot.id)

    with pytest.raises(AttachmentError) as raised:
        await files.fetch(ref(file), CAP)

    assert raised.value.code == code
    assert portal.downloads == []


async def test_a_body_over_the_cap_is_abandoned(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=False)
    # The event understates the size; the cap holds on what actually arrives.
    file = portal.add_file("big.pdf", b"x" * (CAP + 1), size=100)
    files = Bitrix24Files(await client_for(services, portal, clock), 1, bot_id=7)

    with pytest.raises(AttachmentError) as raised:
        await files.fetch(ref(file), CAP)

    assert raised.value.code == "file_too_large"


async def test_the_own_cap_wins_over_a_larger_one_asked_for(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=False)
    file = portal.add_file("big.pdf", b"x" * 5000, size=100)
    client = await client_for(services, portal, clock)
    files = Bitrix24Files(client, 1, bot_id=7, max_bytes=4096)

    with pytest.raises(AttachmentError) as raised:
        await files.fetch(ref(file), CAP)

    assert raised.value.code == "file_too_large"


async def test_a_size_known_from_the_event_skips_the_call(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=False)
    file = portal.add_file("big.pdf", b"small", size=CAP + 1)
    files = Bitrix24Files(await client_for(services, portal, clock), 1, bot_id=7)

    with pytest.raises(AttachmentError):
        await files.fetch(ref(file), CAP)

    assert portal.calls_of("disk.file.get") == []


async def test_a_link_to_a_private_host_is_not_fetched(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=False)
    portal.download_base = "http://127.0.0.2:9/elsewhere"  # loopback, but not allow-listed
    file = portal.add_file("invoice.pdf", PDF)
    guarded = dataclasses.replace(services, guard=HostGuard(("127.0.0.1",)))
    files = Bitrix24Files(await client_for(guarded, portal, clock), 1, bot_id=7)

    with pytest.raises(AttachmentError) as raised:
        await files.fetch(ref(file), CAP)

    assert raised.value.code == "private_address"
    assert portal.downloads == []


async def test_errors_name_no_link_and_no_token(
    services: Services, bitrix24: FakeBitrix24, clock: SteppedClock
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=False)
    file = portal.add_file("big.pdf", b"x" * (CAP + 1), size=1)
    files = Bitrix24Files(await client_for(services, portal, clock), 1, bot_id=7)

    with pytest.raises(AttachmentError) as raised:
        await files.fetch(ref(file), CAP)

    (token,) = [link.token for link in portal.download_links.values()]
    text = f"{raised.value} {raised.value!r} {raised.value.__cause__} {raised.value.__context__}"
    assert token not in text
    assert portal.auth.access_token not in text
    assert "download.json" not in text


async def test_the_portal_hides_files_from_requests_without_browser_headers(
    bitrix24: FakeBitrix24, http: httpx2.AsyncClient
) -> None:
    portal = bitrix24.add_portal("acme.bitrix24.com", v2=False)
    file = portal.add_file("invoice.pdf", PDF)
    url = portal.download_link(file.id, one_time=False)

    bare = await http.get(url, headers={"Accept": "", "User-Agent": ""})
    dressed = await http.get(
        url, headers={"Accept": "*/*", "Referer": f"{portal.uri}/", "User-Agent": "BitBot"}
    )

    assert bare.status_code == 404
    assert "content-disposition" in bare.headers
    assert bare.headers["content-type"].startswith("text/html")
    assert dressed.status_code == 200
    assert dressed.content == PDF
