"""Serving for the browser test: HTTPS with a throwaway certificate, and the page a Bitrix24
portal puts around an app (it posts the app frame into an iframe, as Bitrix24 does)."""

from __future__ import annotations

import asyncio
import datetime
import html
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.fakes.bitrix24 import Portal, installer_frame


def certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bitbot-browser-test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("*.localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@asynccontextmanager
async def serve_tls(app: Any, port: int, tls: tuple[Path, Path]) -> AsyncIterator[None]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ssl_keyfile=str(tls[0]),
        ssl_certfile=str(tls[1]),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def portal_page(portal: Portal, app_url: str) -> Starlette:
    """What Bitrix24 serves around an app: its own page, posting the app frame into an iframe
    (``/`` for an English-speaking user, ``/ru`` for a Russian-speaking one)."""

    def body(lang: str) -> str:
        frame = installer_frame(portal, lang=lang)
        query = html.escape("&".join(f"{k}={v}" for k, v in frame.query))
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in frame.form
        )
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>Bitrix24</title>
<style>body{{margin:0;font:14px system-ui;background:#dfe7ea}}
header{{height:48px;background:#2fc6f6;color:#fff;display:flex;align-items:center;padding:0 16px;
font-weight:700}} iframe{{display:block;width:100%;height:calc(100vh - 48px);border:0}}</style>
</head><body><header>Bitrix24 · Applications · BitBot</header>
<form method="post" target="bitbot" action="{app_url}/b24/app?{query}">{fields}</form>
<iframe name="bitbot" title="BitBot"></iframe>
<script>document.forms[0].submit();</script></body></html>"""

    async def english(_: Any) -> HTMLResponse:
        return HTMLResponse(body("en"))

    async def russian(_: Any) -> HTMLResponse:
        return HTMLResponse(body("ru"))

    return Starlette(routes=[Route("/", english), Route("/ru", russian)])
