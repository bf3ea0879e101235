"""The Bitrix24 fake behaves as shared/reference/bitrix24.md says Bitrix24 does, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.fakes.bitrix24 import (
    FakeBitrix24,
    FakeClock,
    IncomingFile,
    Portal,
    TokenPair,
    app_install,
    app_payment,
    app_uninstall,
    app_update,
    command_add,
    enqueue_v2,
    installer_frame,
    message_add,
    message_add_v2,
    nest,
    open_frame,
    send_event,
    webhook_v2,
)
from tests.fakes.server import serve

DOMAIN = "acme.bitrix24.com"
HOUR = 3600


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cloud(clock: FakeClock) -> FakeBitrix24:
    return FakeBitrix24(clock=clock)


@pytest.fixture
def portal(cloud: FakeBitrix24) -> Portal:
    return cloud.add_portal(DOMAIN, member_id="a223c6b3710f85df22e9377d6c4f7553")


@pytest.fixture
async def base_url(cloud: FakeBitrix24) -> AsyncIterator[str]:
    async with cloud.serve() as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as client:
        yield client


async def rest(
    http: httpx2.AsyncClient, portal: Portal, method: str, token: str, **params: Any
) -> httpx2.Response:
    return await http.post(f"{portal.client_endpoint}{method}", json={"auth": token, **params})


async def refresh(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, refresh_token: str, secret: str | None = None
) -> httpx2.Response:
    query = {
        "grant_type": "refresh_token",
        "client_id": cloud.client_id,
        "client_secret": secret or cloud.client_secret,
        "refresh_token": refresh_token,
    }
    return await http.get(f"{cloud.oauth_url}/oauth/token/", params=query)


def register_v1_bot(portal: Portal, code: str = "support") -> int:
    return portal.add_v1_bot(code, "https://app.test/b24").id


# -- OAuth ----------------------------------------------------------------------------------


async def test_refresh_returns_the_documented_fields(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal, base_url: str, clock: FakeClock
) -> None:
    response = await refresh(http, cloud, portal.auth.refresh_token)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "expires",
        "expires_in",
        "client_endpoint",
        "server_endpoint",
        "domain",
        "member_id",
        "scope",
        "status",
        "user_id",
    }
    assert body["client_endpoint"] == f"{base_url}/{DOMAIN}/rest/"
    assert body["server_endpoint"] == f"{base_url}/rest/"
    assert body["domain"] == base_url.removeprefix("http://")
    assert body["member_id"] == "a223c6b3710f85df22e9377d6c4f7553"
    assert body["expires"] == int(clock.now()) + HOUR
    assert body["expires_in"] == HOUR
    assert body["scope"] == "imbot,imopenlines,im,user,disk"
    assert (body["status"], body["user_id"]) == ("F", portal.admin.id)


async def test_refresh_rotates_and_the_old_refresh_token_is_rejected(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal
) -> None:
    first = (await refresh(http, cloud, portal.auth.refresh_token)).json()
    replayed = await refresh(http, cloud, portal.auth.refresh_token)
    second = await refresh(http, cloud, first["refresh_token"])

    assert first["refresh_token"] != portal.auth.refresh_token
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_grant"
    assert second.status_code == 200
    assert portal.refresh_count == 2
    assert [r.error for r in cloud.token_requests] == [None, "invalid_grant", None]


async def test_refresh_refusals(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal
) -> None:
    wrong_secret = await refresh(http, cloud, portal.auth.refresh_token, secret="guess")
    portal.lapse_payment()
    lapsed = await refresh(http, cloud, portal.auth.refresh_token)
    portal.payment_expired = False
    portal.uninstall()
    uninstalled = await refresh(http, cloud, portal.auth.refresh_token)

    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (400, "invalid_client")
    assert (lapsed.status_code, lapsed.json()["error"]) == (401, "PAYMENT_REQUIRED")
    assert (uninstalled.status_code, uninstalled.json()["error"]) == (401, "NOT_INSTALLED")
    assert portal.refresh_count == 0


async def test_authorization_code_works_once_within_30_seconds(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal, clock: FakeClock
) -> None:
    async def exchange(code: str) -> httpx2.Response:
        query = {
            "grant_type": "authorization_code",
            "client_id": cloud.client_id,
            "client_secret": cloud.client_secret,
            "code": code,
        }
        return await http.get(f"{cloud.oauth_url}/oauth/token/", params=query)

    code = portal.issue_auth_code()
    late_code = portal.issue_auth_code()
    first, again = await exchange(code), await exchange(code)
    clock.advance(31)
    late = await exchange(late_code)

    assert first.status_code == 200
    assert first.json()["user_id"] == portal.admin.id
    assert again.json()["error"] == "invalid_grant"
    assert late.json()["error"] == "invalid_grant"


async def test_access_token_expires_after_one_hour_of_the_clock(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal, clock: FakeClock
) -> None:
    token = portal.auth.access_token
    clock.advance(HOUR - 1)
    still_valid = await rest(http, portal, "user.admin", token)
    clock.advance(1)
    expired = await rest(http, portal, "user.admin", token)
    renewed = (await refresh(http, cloud, portal.auth.refresh_token)).json()["access_token"]
    retried = await rest(http, portal, "user.admin", renewed)

    assert still_valid.json()["result"] is True
    assert expired.status_code == 401
    assert expired.json() == {
        "error": "expired_token",
        "error_description": "The access token provided has expired.",
    }
    assert retried.status_code == 200


async def test_auth_server_app_info(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal, base_url: str, clock: FakeClock
) -> None:
    ok = await http.post(f"{base_url}/rest/app.info", data={"auth": portal.auth.access_token})
    unknown = await http.get(f"{base_url}/rest/app.info", params={"auth": "0" * 50})
    clock.advance(HOUR)
    expired = await http.post(f"{base_url}/rest/app.info", data={"auth": portal.auth.access_token})

    assert ok.json()["result"] == {
        "client_id": cloud.client_id,
        "scope": "imbot,imopenlines,im,user,disk",
        "expires": "2026-01-01T01:00:00+00:00",
        "user_id": portal.admin.id,
        "install": {
            "installed": True,
            "version": 1,
            "status": "F",
            "scope": "imbot,imopenlines,im,user,disk",
            "domain": DOMAIN,
            "uri": f"{base_url}/{DOMAIN}",
            "client_endpoint": f"{base_url}/{DOMAIN}/rest/",
            "member_id": portal.member_id,
            "member_type": "PORTAL",
        },
    }
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_client")
    assert (expired.status_code, expired.json()["error"]) == (401, "expired_token")


# -- portal REST ----------------------------------------------------------------------------


async def test_auth_and_scope_errors(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal
) -> None:
    narrow = cloud.add_portal("narrow.bitrix24.com", scopes=["imbot"])
    missing = await http.post(f"{portal.client_endpoint}user.admin", json={})
    foreign = await rest(http, portal, "user.admin", narrow.auth.access_token)
    no_scope = await rest(
        http, narrow, "im.notify.system.add", narrow.auth.access_token, USER_ID=1, MESSAGE="x"
    )

    assert (missing.status_code, missing.json()["error"]) == (401, "NO_AUTH_FOUND")
    assert (foreign.status_code, foreign.json()["error"]) == (401, "NO_AUTH_FOUND")
    assert (no_scope.status_code, no_scope.json()["error"]) == (403, "insufficient_scope")


async def test_leaky_bucket_refuses_the_51st_request_and_drains_with_the_clock(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal, clock: FakeClock
) -> None:
    other = cloud.add_portal("other.bitrix24.com")
    token = portal.auth.access_token
    burst = [(await rest(http, portal, "user.admin", token)).status_code for _ in range(50)]
    refused = await rest(http, portal, "user.admin", token)
    unaffected = await rest(http, other, "user.admin", other.auth.access_token)
    clock.advance(0.5)
    one_drained = await rest(http, portal, "user.admin", token)
    refused_again = await rest(http, portal, "user.admin", token)

    assert burst == [200] * 50
    assert refused.status_code == 503
    assert refused.json()["error"] == "QUERY_LIMIT_EXCEEDED"
    assert unaffected.status_code == 200
    assert one_drained.status_code == 200
    assert refused_again.status_code == 503


async def test_enterprise_bucket_holds_250_and_drains_5_per_second(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, clock: FakeClock
) -> None:
    portal = cloud.add_portal("big.bitrix24.com", enterprise=True)
    token = portal.auth.access_token
    burst = [(await rest(http, portal, "user.admin", token)).status_code for _ in range(251)]
    clock.advance(1)
    after_a_second = [(await rest(http, portal, "user.admin", token)).status_code for _ in range(6)]

    assert burst == [200] * 250 + [503]
    assert after_a_second == [200] * 5 + [503]


def _message_commands(count: int, bot_id: int) -> dict[str, str]:
    return {
        f"m{i}": f"imbot.message.add?BOT_ID={bot_id}&DIALOG_ID=chat7&MESSAGE=hi{i}"
        for i in range(count)
    }


async def test_batch_counts_once_against_the_bucket_and_allows_50_commands(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    bot_id = register_v1_bot(portal)
    token = portal.auth.access_token
    too_long = await rest(http, portal, "batch", token, halt=0, cmd=_message_commands(51, bot_id))
    singles = [(await rest(http, portal, "user.admin", token)).status_code for _ in range(48)]
    full = await rest(http, portal, "batch", token, halt=0, cmd=_message_commands(50, bot_id))
    over = await rest(http, portal, "user.admin", token)

    assert (too_long.status_code, too_long.json()["error"]) == (400, "ERROR_BATCH_LENGTH_EXCEEDED")
    assert singles == [200] * 48
    assert full.status_code == 200
    result = full.json()["result"]
    assert sorted(result) == sorted(
        ["result", "result_error", "result_total", "result_next", "result_time"]
    )
    assert list(result["result"]) == [f"m{i}" for i in range(50)]
    assert result["result_error"] == []
    assert [m.text for m in portal.messages] == [f"hi{i}" for i in range(50)]
    assert over.status_code == 503


async def test_batch_reports_errors_per_command_and_halts(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    bot_id = register_v1_bot(portal)
    cmd = {
        "ok": f"imbot.message.add?BOT_ID={bot_id}&DIALOG_ID=chat7&MESSAGE=first",
        "bad": "imbot.message.add?BOT_ID=999&DIALOG_ID=chat7&MESSAGE=x",
        "never": f"imbot.message.add?BOT_ID={bot_id}&DIALOG_ID=chat7&MESSAGE=never",
    }
    form = [("auth", portal.auth.access_token), ("halt", "1")]
    form += [(f"cmd[{key}]", value) for key, value in cmd.items()]
    response = await http.post(f"{portal.client_endpoint}batch", data=dict(form))

    result = response.json()["result"]
    assert result["result"] == {"ok": portal.messages[0].id}
    assert result["result_error"] == {
        "bad": {"error": "BOT_ID_ERROR", "error_description": "Bot not found"}
    }
    assert [(c.method, c.batch_key, c.error) for c in portal.calls] == [
        ("batch", None, None),
        ("imbot.message.add", "ok", None),
        ("imbot.message.add", "bad", "BOT_ID_ERROR"),
    ]


async def test_every_call_is_recorded_with_params_and_token(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    bot_id = register_v1_bot(portal)
    token = portal.auth.access_token
    keyboard = {"BUTTONS": [{"TEXT": "Operator", "COMMAND": "operator"}]}
    as_json = await rest(
        http,
        portal,
        "imbot.message.add",
        token,
        BOT_ID=bot_id,
        DIALOG_ID="chat7",
        MESSAGE="Hi",
        KEYBOARD=keyboard,
    )
    as_form = await http.post(
        f"{portal.client_endpoint}imbot.message.add.json",
        data={"auth": token, "BOT_ID": str(bot_id), "DIALOG_ID": "27", "MESSAGE": "  Yo  "},
    )

    assert as_json.json()["result"] == portal.messages[0].id
    assert as_form.status_code == 200
    assert [(c.method, c.params, c.auth, c.user_id) for c in portal.calls] == [
        (
            "imbot.message.add",
            {"BOT_ID": bot_id, "DIALOG_ID": "chat7", "MESSAGE": "Hi", "KEYBOARD": keyboard},
            token,
            portal.admin.id,
        ),
        (
            "imbot.message.add",
            {"BOT_ID": str(bot_id), "DIALOG_ID": "27", "MESSAGE": "  Yo  "},
            token,
            portal.admin.id,
        ),
    ]
    assert [(m.dialog_id, m.text) for m in portal.messages] == [("chat7", "Hi"), ("27", "Yo")]


async def test_renamed_portal_answers_302_to_the_new_endpoint(
    http: httpx2.AsyncClient, cloud: FakeBitrix24, portal: Portal, base_url: str
) -> None:
    old_endpoint = portal.client_endpoint
    portal.rename("acme-new.bitrix24.com")
    moved = await http.post(
        f"{old_endpoint}user.admin?x=1", json={"auth": portal.auth.access_token}
    )
    followed = await http.post(moved.headers["location"], json={"auth": portal.auth.access_token})

    assert moved.status_code == 302
    assert moved.headers["location"] == f"{base_url}/acme-new.bitrix24.com/rest/user.admin?x=1"
    assert followed.json()["result"] is True
    assert cloud.portal("acme.bitrix24.com") is portal


async def test_deleted_portal_and_injected_faults(http: httpx2.AsyncClient, portal: Portal) -> None:
    token = portal.auth.access_token
    portal.fail_next("user.admin", 500, "INTERNAL_SERVER_ERROR", "boom")
    faulted = await rest(http, portal, "user.admin", token)
    recovered = await rest(http, portal, "user.admin", token)
    portal.delete()
    deleted = await rest(http, portal, "user.admin", token)

    assert faulted.status_code == 500
    assert faulted.json() == {"error": "INTERNAL_SERVER_ERROR", "error_description": "boom"}
    assert recovered.status_code == 200
    assert (deleted.status_code, deleted.json()["error"]) == (500, "PORTAL_DELETED")


# -- bots -----------------------------------------------------------------------------------


async def test_portal_without_chatbots_2_has_no_v2_methods(
    http: httpx2.AsyncClient, cloud: FakeBitrix24
) -> None:
    old = cloud.add_portal("old.bitrix24.com", v2=False)
    token = old.auth.access_token
    v2 = await rest(http, old, "imbot.v2.Revision.get", token)
    v1 = await rest(
        http,
        old,
        "imbot.register",
        token,
        CODE="bot",
        EVENT_HANDLER="https://app.test/b24",
        PROPERTIES={"NAME": "Bot"},
    )

    assert (v2.status_code, v2.json()["error"]) == (404, "ERROR_METHOD_NOT_FOUND")
    assert v1.status_code == 200


async def test_v1_allows_five_bots_with_increasing_ids(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    async def register(code: str) -> httpx2.Response:
        properties = {"NAME": code}
        return await rest(
            http,
            portal,
            "imbot.register",
            portal.auth.access_token,
            CODE=code,
            EVENT_HANDLER="https://app.test/b24",
            PROPERTIES=properties,
        )

    ids = [(await register(f"bot{i}")).json()["result"] for i in range(5)]
    sixth = await register("bot5")
    same_code = await register("bot0")

    assert ids == [2, 3, 4, 5, 6]  # bots are users; the admin is user 1
    assert (sixth.status_code, sixth.json()["error"]) == (400, "MAX_COUNT_ERROR")
    assert same_code.json()["result"] == ids[0]


async def test_v2_event_get_acknowledges_below_offset(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    token = portal.auth.access_token
    fields = {"code": "agent", "properties": {"name": "Agent"}, "eventMode": "fetch"}
    registered = await rest(http, portal, "imbot.v2.Bot.register", token, fields=fields)
    bot = portal.bots[registered.json()["result"]["bot"]["id"]]
    customer = portal.add_customer("Carla")
    chat = portal.open_line_chat(customer)
    ids = [
        enqueue_v2(portal, message_add_v2(portal, bot, chat, customer, f"m{i}")) for i in range(3)
    ]

    first = (await rest(http, portal, "imbot.v2.Event.get", token, botId=bot.id, limit=2)).json()
    second = (
        await rest(
            http,
            portal,
            "imbot.v2.Event.get",
            token,
            botId=bot.id,
            offset=first["result"]["nextOffset"],
        )
    ).json()
    empty = (
        await rest(
            http,
            portal,
            "imbot.v2.Event.get",
            token,
            botId=bot.id,
            offset=second["result"]["nextOffset"],
        )
    ).json()

    assert [e["eventId"] for e in first["result"]["events"]] == ids[:2]
    assert (first["result"]["nextOffset"], first["result"]["hasMore"]) == (ids[1] + 1, True)
    assert [e["data"]["message"]["text"] for e in second["result"]["events"]] == ["m2"]
    assert (second["result"]["nextOffset"], second["result"]["hasMore"]) == (ids[2] + 1, False)
    assert empty["result"] == {"events": [], "nextOffset": ids[2] + 1, "hasMore": False}
    assert portal.v2_events == []
    assert first["result"]["events"][0]["data"]["bot"]["eventMode"] == "fetch"


async def test_v2_register_is_idempotent_and_send_records_the_message(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    token = portal.auth.access_token
    fields = {
        "code": "agent",
        "properties": {"name": "Agent"},
        "eventMode": "webhook",
        "webhookUrl": "https://app.test/b24/v2",
    }
    first = (await rest(http, portal, "imbot.v2.Bot.register", token, fields=fields)).json()
    again = (await rest(http, portal, "imbot.v2.Bot.register", token, fields=fields)).json()
    bot_id = first["result"]["bot"]["id"]
    sent = await rest(
        http,
        portal,
        "imbot.v2.Chat.Message.send",
        token,
        botId=bot_id,
        dialogId="chat9",
        fields={"message": "Hello"},
    )
    typing = await rest(
        http, portal, "imbot.v2.Chat.InputAction.notify", token, botId=bot_id, dialogId="chat9"
    )

    assert again["result"]["bot"]["id"] == bot_id
    assert sent.json()["result"] == {"id": portal.messages[0].id, "uuidMap": {}}
    assert (portal.messages[0].method, portal.messages[0].dialog_id) == (
        "imbot.v2.Chat.Message.send",
        "chat9",
    )
    assert typing.json()["result"] is True
    assert [t.dialog_id for t in portal.typing] == ["chat9"]


async def test_open_line_session_goes_to_an_operator_once(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    token = portal.auth.access_token
    customer = portal.add_customer("Ann")
    line = portal.open_line_chat(customer)
    assert portal.session_holder(line) == "bot"

    handed = await rest(http, portal, "imopenlines.bot.session.operator", token, CHAT_ID=line.id)
    again = await rest(http, portal, "imopenlines.bot.session.operator", token, CHAT_ID=line.id)

    assert (handed.status_code, handed.json()["result"]) == (200, True)
    assert portal.session_holder(line) == "operator"
    assert [(h.chat_id, h.user_id) for h in portal.handoffs] == [(line.id, portal.admin.id)]
    assert again.status_code == 400
    assert again.json()["error"] == "WRONG_CHAT"
    assert again.json()["error_description"] == "Operator is not a bot"
    assert len(portal.handoffs) == 1


async def test_open_line_handoff_refusals(http: httpx2.AsyncClient, portal: Portal) -> None:
    token = portal.auth.access_token
    customer = portal.add_customer("Ann")
    line = portal.open_line_chat(customer)
    taken = portal.open_line_chat(portal.add_customer("Bob"))
    portal.operator_takes_over(taken)
    private = portal.private_chat(customer)
    method = "imopenlines.bot.session.operator"

    refusals = [
        await rest(http, portal, method, token),
        await rest(http, portal, method, token, CHAT_ID=line.dialog_id),  # "chat123" is not an id
        await rest(http, portal, method, token, CHAT_ID=taken.id),
        await rest(http, portal, method, token, CHAT_ID=private.id),
    ]

    assert [r.json()["error"] for r in refusals] == [
        "CHAT_ID_EMPTY",
        "CHAT_ID_EMPTY",
        "WRONG_CHAT",
        "WRONG_CHAT",
    ]
    assert portal.handoffs == []
    assert portal.session_holder(line) == "bot"
    assert portal.session_holder(private) is None


# -- events ---------------------------------------------------------------------------------


def _as_dict(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return dict(pairs)


def test_open_channel_message_event_has_the_php_style_keys(portal: Portal) -> None:
    bot_id = register_v1_bot(portal)
    bot = portal.bots[bot_id]
    customer = portal.add_customer("Carla", "Client")
    chat = portal.open_line_chat(customer, line_id=8, session_id=321, lead_id=56)
    photo = IncomingFile(5249, "image.png", "image", 2048, width=800, height=600)

    pairs = message_add(portal, bot, chat, customer, "Hello", files=(photo,))
    flat = _as_dict(pairs)

    assert pairs[0] == ("event", "ONIMBOTMESSAGEADD")
    assert all(isinstance(v, str) for _, v in pairs)
    assert flat["data[PARAMS][MESSAGE]"] == "Hello"
    assert flat["data[PARAMS][DIALOG_ID]"] == f"chat{chat.id}"
    assert flat["data[PARAMS][CHAT_ID]"] == str(chat.id)
    assert flat["data[PARAMS][CHAT_TYPE]"] == "L"
    assert flat["data[PARAMS][CHAT_ENTITY_TYPE]"] == "LINES"
    assert flat["data[PARAMS][CHAT_ENTITY_ID]"] == f"telegrambot|8|{chat.id + 1000}|{customer.id}"
    assert flat["data[PARAMS][CHAT_ENTITY_DATA_1]"].startswith("Y|LEAD|56|N|N|321|")
    assert flat["data[PARAMS][CHAT_ENTITY_DATA_2]"] == "LEAD|56|COMPANY|0|CONTACT|0|DEAL|0"
    assert flat["data[PARAMS][PARAMS][FILE_ID][0]"] == "5249"
    assert flat["data[PARAMS][FILES][5249][type]"] == "image"
    assert flat["data[PARAMS][FILES][5249][image][width]"] == "800"
    assert flat[f"data[BOT][{bot_id}][BOT_CODE]"] == "support"
    assert (
        flat[f"data[BOT][{bot_id}][AUTH][access_token]"]
        == flat[f"data[BOT][{bot_id}][access_token]"]
    )
    assert flat[f"data[BOT][{bot_id}][user_id]"] == str(bot_id)
    assert flat["data[USER][IS_CONNECTOR]"] == "Y"
    assert flat["auth[member_id]"] == portal.member_id
    assert flat["auth[application_token]"] == portal.application_token
    assert "auth[access_token]" not in flat  # a connector customer has no session tokens
    assert nest(pairs)["data"]["PARAMS"]["FILES"]["5249"]["name"] == "image.png"


def test_private_message_event_carries_the_author_tokens(portal: Portal) -> None:
    bot = portal.bots[register_v1_bot(portal)]
    chat = portal.private_chat(portal.admin)

    flat = _as_dict(message_add(portal, bot, chat, portal.admin, "hi"))

    assert flat["data[PARAMS][DIALOG_ID]"] == str(portal.admin.id)
    assert flat["data[PARAMS][TO_USER_ID]"] == str(bot.id)
    assert "data[PARAMS][CHAT_ID]" not in flat
    assert flat["auth[user_id]"] == str(portal.admin.id)
    assert "auth[refresh_token]" not in flat


def test_lifecycle_events(portal: Portal) -> None:
    install = _as_dict(app_install(portal))
    old_token = portal.application_token
    portal.update_app(version=2)
    update = _as_dict(app_update(portal, previous_version=1))
    payment = _as_dict(app_payment(portal))
    portal.uninstall()
    uninstall = app_uninstall(portal, clean=True)

    assert install["auth[refresh_token]"] == portal.auth.refresh_token
    assert install["auth[application_token]"] == old_token
    assert install["data[INSTALLED]"] == "Y"
    assert update["auth[application_token]"] == portal.application_token != old_token
    assert (update["data[VERSION]"], update["data[PREVIOUS_VERSION]"]) == ("2", "1")
    assert "auth[application_token]" not in payment
    assert payment["data[PAYMENT_EXPIRED]"] == "N"
    assert [k for k, _ in uninstall if k.startswith(("data", "auth"))] == [
        "data[LANGUAGE_ID]",
        "data[CLEAN]",
        "auth[domain]",
        "auth[server_endpoint]",
        "auth[client_endpoint]",
        "auth[member_id]",
        "auth[application_token]",
    ]
    assert _as_dict(uninstall)["data[CLEAN]"] == "1"


def test_v2_webhook_event_stringifies_scalars(portal: Portal) -> None:
    bot = portal.add_v2_bot("agent", webhook_url="https://app.test/b24/v2")
    chat = portal.group_chat("Sales")

    flat = _as_dict(webhook_v2(portal, message_add_v2(portal, bot, chat, portal.admin, "yo")))

    assert flat["event"] == "ONIMBOTV2MESSAGEADD"
    assert flat["data[bot][id]"] == str(bot.id)
    assert flat["data[bot][auth][user_id]"] == str(bot.id)
    assert flat["data[message][isSystem]"] == "0"
    assert flat["data[message][forward]"] == ""
    assert flat["data[user][active]"] == "1"
    assert flat["data[chat][dialogId]"] == f"chat{chat.id}"
    assert flat["auth[application_token]"] == portal.application_token


async def test_events_are_posted_form_encoded(portal: Portal) -> None:
    received: list[tuple[str, bytes]] = []

    async def handler(request: Request) -> PlainTextResponse:
        received.append((request.headers["content-type"], await request.body()))
        return PlainTextResponse("ok")

    bot = portal.bots[register_v1_bot(portal)]
    pairs = message_add(portal, bot, portal.private_chat(portal.admin), portal.admin, "a&b=c")
    receiver = Starlette(routes=[Route("/b24/events", handler, methods=["POST"])])
    async with serve(receiver) as url:
        response = await send_event(f"{url}/b24/events", pairs)

    assert response.status_code == 200
    content_type, body = received[0]
    assert content_type == "application/x-www-form-urlencoded"
    assert parse_qsl(body.decode(), keep_blank_values=True) == pairs


async def test_bot_token_from_a_command_event_answers_the_command(
    http: httpx2.AsyncClient, portal: Portal
) -> None:
    bot = portal.add_v1_bot("support", "https://app.test/b24")
    command = portal.add_command(bot, "echo", "https://app.test/b24")
    chat = portal.group_chat("Team")
    event = nest(command_add(portal, command, chat, portal.admin, command_params="x"))
    entry = event["data"]["COMMAND"][str(command.id)]

    answered = await rest(
        http,
        portal,
        "imbot.command.answer",
        entry["access_token"],
        COMMAND_ID=command.id,
        MESSAGE_ID=entry["MESSAGE_ID"],
        MESSAGE="done",
    )

    assert event["data"]["PARAMS"]["MESSAGE"] == "/echo x"
    assert answered.status_code == 200
    assert portal.calls[-1].user_id == bot.id
    answer = portal.messages[-1]
    assert (answer.dialog_id, answer.command_id, answer.text) == (
        chat.dialog_id,
        command.id,
        "done",
    )


async def test_installer_frame_post_carries_tokens_the_auth_server_accepts(
    http: httpx2.AsyncClient, portal: Portal, base_url: str
) -> None:
    received: list[dict[str, Any]] = []

    async def app_page(request: Request) -> PlainTextResponse:
        received.append({"query": dict(request.query_params), "form": dict(await request.form())})
        return PlainTextResponse("ok")

    frame_app = Starlette(routes=[Route("/b24/app", app_page, methods=["POST"])])
    async with serve(frame_app) as url:
        await open_frame(f"{url}/b24/app", installer_frame(portal))
    query, form = received[0]["query"], received[0]["form"]
    info = await http.post(f"{base_url}/rest/app.info", data={"auth": form["AUTH_ID"]})

    assert (query["DOMAIN"], query["PROTOCOL"], query["LANG"]) == (DOMAIN, "0", "en")
    assert form["REFRESH_ID"] == portal.auth.refresh_token
    assert form["APPLICATION_TOKEN"] == portal.application_token
    assert (form["member_id"], form["PLACEMENT"]) == (portal.member_id, "DEFAULT")
    assert info.json()["result"]["install"]["member_id"] == portal.member_id


def test_tokens_are_distinct_per_issue(portal: Portal) -> None:
    pair: TokenPair = portal.issue_tokens()

    assert pair.access_token != portal.auth.access_token
    assert pair.refresh_token != portal.auth.refresh_token
    assert pair.user_id == portal.admin.id
