"""Operator sign-in: sessions, lockout, the per-address limit, and pages refused without login."""

from __future__ import annotations

import httpx2
import pytest
import sqlalchemy as sa

from admin_ui.operator.lockout import ADDRESS_ATTEMPTS
from tenants.runtime import Runtime
from tenants.schema import operators
from tests.conftest import SteppedClock
from tests.operator_kit import (
    EMAIL,
    PASSWORD,
    Operator,
    an_operator,
    audit_rows,
    console_app,
    signed_in,
)

REFUSED = "The e-mail or password is wrong, or the account is locked for a while."


async def test_signing_in_sets_a_strict_secure_session_cookie(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        (cookie,) = [c for c in operator.set_cookies if c.startswith("bitbot_operator=")]
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=strict", "path=/operator/"} <= attributes
        page = await operator.get("/operator/tenants")
        assert page.status_code == 200
        assert EMAIL in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    (login,) = await audit_rows(migrated, "operator.login")
    assert login["actor_type"] == "operator"


@pytest.mark.parametrize(
    "path",
    [
        "/operator/",
        "/operator/tenants",
        "/operator/tenants/1",
        "/operator/plans",
        "/operator/providers",
        "/operator/audit",
        "/operator/export",
        "/operator/tokens",
        "/operator/export/usage.csv",
    ],
)
async def test_console_pages_without_login_go_to_the_login_page(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock, path: str
) -> None:
    async with console_app(migrated, http, clock) as url:
        response = await Operator(url, http).get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/operator/login?next=")
    assert response.text == ""


async def test_posts_without_login_change_nothing(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with console_app(migrated, http, clock) as url:
        anonymous = Operator(url, http)
        response = await anonymous.post("/operator/providers", {"name": "X", "type": "typebot"})
        assert response.status_code == 303
        assert response.headers["location"] == "/operator/login"
    assert await audit_rows(migrated) == []


async def test_the_login_returns_to_the_page_asked_for(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    await an_operator(migrated)
    async with console_app(migrated, http, clock) as url:
        operator = Operator(url, http)
        form = {"email": EMAIL, "password": PASSWORD, "next": "/operator/plans"}
        response = await operator.post("/operator/login", form)
        assert response.headers["location"] == "/operator/plans"
        offsite = {**form, "next": "//evil.example/operator/"}
        response = await operator.post("/operator/login", offsite)
        assert response.headers["location"] == "/operator/tenants"


async def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    await an_operator(migrated)
    async with console_app(migrated, http, clock) as url:
        operator = Operator(url, http)
        for _ in range(5):
            response = await operator.login(password="wrong password, again")
            assert response.status_code == 401
            assert REFUSED in response.text
        locked = await operator.login()  # the right password, but locked
        assert locked.status_code == 401
        assert REFUSED in locked.text
        assert operator.cookie == ""

        clock.fake.advance(14 * 60)
        assert (await operator.login()).status_code == 401
        clock.fake.advance(61)
        assert (await operator.login()).status_code == 303
    async with migrated.engine.connect() as connection:
        row = (await connection.execute(sa.select(operators))).one()
    assert (row.failed_logins, row.locked_until) == (0, None)
    assert len(await audit_rows(migrated, "operator.login_failed")) == 4
    assert len(await audit_rows(migrated, "operator.locked")) == 3  # the lock, then 2 refusals


async def test_refusals_do_not_tell_whether_the_email_exists(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    await an_operator(migrated)
    async with console_app(migrated, http, clock) as url:
        operator = Operator(url, http)
        unknown = await operator.login(email="nobody@bitbot.example.com")
        wrong = await operator.login(password="not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.replace("nobody@bitbot.example.com", EMAIL) == wrong.text


async def test_unknown_emails_never_lock_anything(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    await an_operator(migrated)
    async with console_app(migrated, http, clock) as url:
        operator = Operator(url, http)
        for _ in range(6):
            await operator.login(email="nobody@bitbot.example.com")
        assert (await operator.login()).status_code == 303


async def test_one_address_is_limited_across_accounts(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    await an_operator(migrated)
    async with console_app(migrated, http, clock) as url:
        operator = Operator(url, http)
        for n in range(ADDRESS_ATTEMPTS):
            await operator.login(email=f"guess{n}@bitbot.example.com")
        throttled = await operator.login()
        assert throttled.status_code == 429
        assert "Too many sign-in attempts from your address" in throttled.text
        assert int(throttled.headers["retry-after"]) > 0
        clock.fake.advance(300)
        assert (await operator.login()).status_code == 303


async def test_a_disabled_operator_cannot_sign_in_or_keep_a_session(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        async with migrated.engine.begin() as connection:
            await connection.execute(sa.update(operators).values(disabled=True))
        response = await operator.get("/operator/tenants")
        assert response.status_code == 303
        assert (await operator.login()).status_code == 401


async def test_sessions_end_after_idle_time_and_at_their_lifetime(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        clock.fake.advance(29 * 60)
        assert (await operator.get("/operator/tenants")).status_code == 200
        clock.fake.advance(31 * 60)
        idle = await operator.get("/operator/tenants")
        assert idle.status_code == 303
        assert "expired=1" in idle.headers["location"]
        assert 'bitbot_operator=""' in idle.headers["set-cookie"]
        login_page = await operator.get("/operator/login", expired="1")
        assert "Your session ended" in login_page.text

        await operator.login()
        for _ in range(17):  # active all along, yet 8 hours is the end
            clock.fake.advance(29 * 60)
            await operator.get("/operator/tenants")
        assert (await operator.get("/operator/tenants")).status_code == 303


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
async def test_forged_cookies_are_refused(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock, cookie: str
) -> None:
    async with console_app(migrated, http, clock) as url:
        forged = Operator(url, http, cookie=cookie)
        response = await forged.get("/operator/tenants")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/operator/login")


async def test_an_altered_cookie_is_refused(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    other_id = await an_operator(migrated, "other@bitbot.example.com")
    async with signed_in(migrated, http, clock) as operator:
        version, sid, _, expires, mac = operator.cookie.split(".")
        operator.cookie = ".".join([version, sid, str(other_id), expires, mac])
        assert (await operator.get("/operator/tenants")).status_code == 303


async def test_logout_ends_the_session_for_good(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        kept = operator.cookie
        response = await operator.post("/operator/logout")
        assert response.status_code == 303
        assert response.headers["location"] == "/operator/login?done=signed_out"
        replayed = Operator(operator.url, http, cookie=kept)
        assert (await replayed.get("/operator/tenants")).status_code == 303
    assert [row["action"] for row in await audit_rows(migrated)] == [
        "operator.login",
        "operator.logout",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://admin.bitbot.example.com"},
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "", "Origin": "https://evil.example"},
    ],
)
async def test_cross_site_posts_are_refused(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock, headers: dict[str, str]
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        form = {"name": "Forged", "type": "typebot", "base_url": "https://typebot.io"}
        response = await operator.post("/operator/providers", form, headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "cross_site"
        login = await operator.post("/operator/login", {"email": EMAIL}, headers)
        assert login.status_code == 403
        assert "Forged" not in (await operator.get("/operator/providers")).text


async def test_origin_alone_decides_for_browsers_without_fetch_metadata(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        form = {"name": "Typebot", "type": "typebot", "base_url": "https://typebot.io"}
        cookie = {"Cookie": f"bitbot_operator={operator.cookie}"}

        async def post(headers: dict[str, str]) -> int:
            url = operator.url + "/operator/providers"
            return (await http.post(url, data=form, headers=cookie | headers)).status_code

        assert await post({}) == 403  # a browser always sends one of the two
        assert await post({"Origin": "https://evil.example"}) == 403
        assert await post({"Origin": "null"}) == 403
        assert await post({"Origin": operator.url}) == 303
