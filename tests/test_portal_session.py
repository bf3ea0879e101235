"""The portal session token: signed, expiring, bound to its key; the header beats the cookie."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.requests import Request
from starlette.responses import Response

from admin_ui.portal.session import (
    COOKIE,
    HEADER,
    PortalSession,
    SessionError,
    SessionSigner,
    set_cookie,
    token_of,
)
from tests.fakes.clock import FakeClock

KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.fake = FakeClock()

    def now(self) -> float:
        return self.fake.now()

    async def sleep(self, seconds: float) -> None:
        self.fake.advance(seconds)


def session(signer: SessionSigner, **changes: object) -> PortalSession:
    values: dict[str, object] = {
        "tenant_id": 7,
        "member_id": "m-7",
        "user_id": 3,
        "admin": True,
        "language": "ru",
        "first_name": "Анна",
        "last_name": "Smith",
        "expires_at": signer.expiry(),
    }
    return PortalSession(**(values | changes))  # type: ignore[arg-type]


def test_a_token_round_trips() -> None:
    signer = SessionSigner(KEY, Clock())
    original = session(signer)
    assert signer.verify(signer.issue(original)) == original


def test_a_token_expires() -> None:
    clock = Clock()
    signer = SessionSigner(KEY, clock, ttl_s=60)
    token = signer.issue(session(signer))
    clock.fake.advance(61)
    with pytest.raises(SessionError) as refused:
        signer.verify(token)
    assert refused.value.code == "session_expired"


def test_a_changed_payload_or_another_key_is_refused() -> None:
    signer = SessionSigner(KEY, Clock())
    token = signer.issue(session(signer))
    prefix, payload, mac = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=="))
    fields["tenant_id"] = 8
    raised = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    for forged in (
        f"{prefix}.{raised}.{mac}",
        SessionSigner(b"x" * 32, Clock()).issue(session(signer)),
        "v1.garbage",
        "v2." + token[3:],
        "",
    ):
        with pytest.raises(SessionError) as refused:
            signer.verify(forged)
        assert refused.value.code == "bad_session"


def test_a_validly_signed_payload_of_the_wrong_shape_is_refused() -> None:
    signer = SessionSigner(KEY, Clock())
    token = signer.issue(session(signer, admin="yes"))
    with pytest.raises(SessionError):
        signer.verify(token)


def request(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


def test_the_header_wins_over_the_cookie() -> None:
    assert token_of(request({HEADER: "from-header", "Cookie": f"{COOKIE}=c"})) == "from-header"
    assert token_of(request({"Cookie": f"{COOKIE}=from-cookie"})) == "from-cookie"
    with pytest.raises(SessionError):
        token_of(request({}))


def test_the_cookie_is_partitioned_and_cross_site() -> None:
    response = Response()
    set_cookie(response, "tok", 3600)
    assert response.headers["set-cookie"] == (
        "bitbot_portal=tok; Path=/b24/; Max-Age=3600; Secure; HttpOnly; SameSite=None; Partitioned"
    )
