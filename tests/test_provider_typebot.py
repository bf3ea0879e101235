"""The Typebot adapter against the fake Typebot over real HTTP (dify-typebot.md Part B)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import fakeredis
import pytest

from gateway.providers import (
    Button,
    ProviderConfig,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RedisSessions,
    TurnRequest,
    TypebotAdapter,
)
from gateway.providers.http import ProviderHttp
from gateway.providers.typebot import chat_reply, flatten_rich_text
from tests.fakes.provider_wire import RecordedRequest
from tests.fakes.server import serve
from tests.fakes.typebot import (
    ChoiceInput,
    FakeTypebot,
    ImageBubble,
    RichTextBubble,
    Step,
    TextBubble,
    TextInput,
    Typebot,
    TypebotError,
)

SESSION_KEY = "bitbot:member-1:55:chat7"
API_KEY = "tb-token-Q93secret"
INPUTS = {"FIRST_NAME": "John", "DIALOG_ID": "chat7", "LANGUAGE": "en"}
SURVEY = [
    Step([TextBubble("Hi {{FIRST_NAME}}! Where do you live?")], TextInput(variable="city")),
    Step([TextBubble("{{city}}, nice.\nPick a plan")], ChoiceInput(["Free", "Pro"], "plan")),
    Step([TextBubble("You chose {{plan}}. Bye!")]),
]
LINKED: list[dict[str, Any]] = [
    {
        "type": "p",
        "children": [
            {"text": "Hello "},
            {"text": "John", "bold": True},
            {"text": ", see "},
            {"type": "a", "url": "https://example.com", "children": [{"text": "this link"}]},
        ],
    },
    {"type": "p", "children": [{"text": "Second line"}]},
]


@pytest.fixture
def typebot() -> FakeTypebot:
    fake = FakeTypebot()
    fake.add_typebot(Typebot("survey", SURVEY))
    fake.add_typebot(Typebot("private", SURVEY, api_key=API_KEY))
    return fake


@pytest.fixture
async def viewer(typebot: FakeTypebot) -> AsyncIterator[str]:
    async with serve(typebot.asgi) as url:
        yield url


@pytest.fixture
def sessions() -> RedisSessions:
    return RedisSessions(fakeredis.FakeAsyncRedis())


@pytest.fixture
def adapter(provider_http: ProviderHttp, sessions: RedisSessions) -> TypebotAdapter:
    return TypebotAdapter(provider_http, sessions)


def config(viewer: str, public_id: str = "survey", api_key: str | None = None) -> ProviderConfig:
    return ProviderConfig(
        type="typebot",
        base_url=viewer,
        api_key=api_key,
        typebot_start_url=f"{viewer}/api/v1/typebots/{public_id}/startChat",
    )


def turn(query: str) -> TurnRequest:
    return TurnRequest(
        query=query, inputs=dict(INPUTS), user="member-1:chat7", session_key=SESSION_KEY
    )


def calls(typebot: FakeTypebot) -> list[RecordedRequest]:
    return typebot.requests


async def test_first_turn_starts_and_later_turns_continue_the_session(
    adapter: TypebotAdapter, typebot: FakeTypebot, viewer: str, sessions: RedisSessions
) -> None:
    first = await adapter.run(config(viewer), turn("Paris"))
    session_id = await sessions.get(SESSION_KEY)
    second = await adapter.run(config(viewer), turn("Pro"))

    assert first.text == "Hi John! Where do you live?\n\nParis, nice.\nPick a plan"
    assert first.buttons == (Button("Free", "Free"), Button("Pro", "Pro"))
    assert not first.session_ended
    assert second.text == "You chose Pro. Bye!"
    assert second.buttons == ()
    assert second.session_ended
    start, follow_up = calls(typebot)
    assert start.path == "/api/v1/typebots/survey/startChat"
    assert start.json == {
        "message": {"type": "text", "text": "Paris"},
        "prefilledVariables": INPUTS,
        "textBubbleContentFormat": "markdown",
    }
    assert follow_up.path == f"/api/v1/sessions/{session_id}/continueChat"
    assert follow_up.json == {
        "message": {"type": "text", "text": "Pro"},
        "textBubbleContentFormat": "markdown",
    }


async def test_ended_flow_forgets_the_session(
    adapter: TypebotAdapter, typebot: FakeTypebot, viewer: str, sessions: RedisSessions
) -> None:
    await adapter.run(config(viewer), turn("Paris"))
    await adapter.run(config(viewer), turn("Free"))
    assert await sessions.get(SESSION_KEY) is None

    again = await adapter.run(config(viewer), turn("Berlin"))

    assert again.text.startswith("Hi John!")
    assert [request.path.rsplit("/", 1)[-1] for request in calls(typebot)] == [
        "startChat",
        "continueChat",
        "startChat",
    ]


async def test_flow_that_ends_inside_start_chat_keeps_no_session(
    adapter: TypebotAdapter, typebot: FakeTypebot, viewer: str, sessions: RedisSessions
) -> None:
    typebot.add_typebot(Typebot("notice", [Step([TextBubble("We are closed today.")])]))

    reply = await adapter.run(config(viewer, "notice"), turn("hello"))

    assert reply.text == "We are closed today."
    assert reply.session_ended
    assert await sessions.get(SESSION_KEY) is None


@pytest.mark.parametrize("gone", ["expire_session", "delete_session"])
async def test_lost_session_starts_afresh_once_with_the_same_message(
    adapter: TypebotAdapter,
    typebot: FakeTypebot,
    viewer: str,
    sessions: RedisSessions,
    gone: str,
) -> None:
    await adapter.run(config(viewer), turn("Paris"))
    old_id = await sessions.get(SESSION_KEY)
    assert old_id is not None
    getattr(typebot, gone)(old_id)

    reply = await adapter.run(config(viewer), turn("Rome"))

    assert reply.text == "Hi John! Where do you live?\n\nRome, nice.\nPick a plan"
    new_id = await sessions.get(SESSION_KEY)
    assert new_id not in (None, old_id)
    first_start, lost, restart = calls(typebot)
    assert lost.path == f"/api/v1/sessions/{old_id}/continueChat"
    assert restart.json == {**first_start.json, "message": {"type": "text", "text": "Rome"}}


async def test_rich_text_link_and_bold_come_out_as_markdown(
    adapter: TypebotAdapter, typebot: FakeTypebot, viewer: str
) -> None:
    steps = [Step([RichTextBubble(LINKED), ImageBubble("https://cdn.example.com/a.png")])]
    typebot.add_typebot(Typebot("rich", steps))

    reply = await adapter.run(config(viewer, "rich"), turn("hi"))

    assert reply.text == (
        "Hello **John**, see [this link](https://example.com)\nSecond line"
        "\n\nhttps://cdn.example.com/a.png"
    )


def test_rich_text_from_servers_without_markdown_is_flattened_alike() -> None:
    answer = {
        "messages": [
            {"id": "b1", "type": "text", "content": {"type": "richText", "richText": LINKED}},
            {"id": "b2", "type": "image", "content": {"url": "https://cdn.example.com/a.png"}},
        ],
        "input": {"id": "i1", "type": "text input"},
    }

    reply = chat_reply(answer)

    assert reply.text == (
        "Hello **John**, see [this link](https://example.com)\nSecond line"
        "\n\nhttps://cdn.example.com/a.png"
    )
    assert not reply.session_ended


def test_flattening_keeps_emphasis_tight_and_lists_as_lines() -> None:
    nodes = [
        {
            "type": "p",
            "children": [{"text": "Very ", "italic": True}, {"text": "sure ", "bold": True}],
        },
        {"type": "p", "children": [{"text": ""}]},
        {
            "type": "ol",
            "children": [
                {"type": "li", "children": [{"type": "lic", "children": [{"text": "One"}]}]},
                {"type": "li", "children": [{"type": "lic", "children": [{"text": "Two"}]}]},
            ],
        },
        {"type": "ul", "children": [{"type": "li", "children": [{"text": "Dot"}]}]},
    ]

    assert flatten_rich_text(nodes) == "*Very* **sure** \n\n1. One\n2. Two\n- Dot"


def test_a_pending_client_action_keeps_the_session_open() -> None:
    answer = {
        "messages": [],
        "clientSideActions": [{"type": "wait", "expectsDedicatedReply": True}],
    }

    assert not chat_reply(answer).session_ended
    assert chat_reply({"messages": []}).session_ended


async def test_no_api_key_means_no_authorization_header(
    adapter: TypebotAdapter, typebot: FakeTypebot, viewer: str
) -> None:
    await adapter.run(config(viewer), turn("Paris"))
    await adapter.run(config(viewer), turn("Pro"))

    assert [request.authorization for request in calls(typebot)] == [None, None]


async def test_api_key_is_sent_as_bearer_when_configured(
    adapter: TypebotAdapter, typebot: FakeTypebot, viewer: str
) -> None:
    await adapter.run(config(viewer, "private", API_KEY), turn("Paris"))
    await adapter.run(config(viewer, "private", API_KEY), turn("Pro"))

    assert [request.authorization for request in calls(typebot)] == [f"Bearer {API_KEY}"] * 2


async def test_missing_or_wrong_api_key_is_rejected(adapter: TypebotAdapter, viewer: str) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await adapter.run(config(viewer, "private", "tb-wrong"), turn("Paris"))

    assert str(caught.value) == "the Typebot API key is not accepted"
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (TypebotError(), ProviderUnavailable, 500),
        (TypebotError(408, "TIMEOUT", "30 seconds timeout reached"), ProviderUnavailable, 408),
        (TypebotError(403, "FORBIDDEN", "Origin not allowed"), ProviderRejected, 403),
        (TypebotError(400, "BAD_REQUEST", "This bot is now closed"), ProviderRejected, 400),
    ],
)
async def test_http_errors_are_mapped(
    adapter: TypebotAdapter,
    typebot: FakeTypebot,
    viewer: str,
    fault: TypebotError,
    error: type[ProviderError],
    status: int,
) -> None:
    typebot.typebots["survey"].fail_next(fault)

    with pytest.raises(error) as caught:
        await adapter.run(config(viewer), turn("Paris"))

    assert (caught.value.status, caught.value.code) == (status, fault.code)


async def test_unknown_bot_is_rejected(adapter: TypebotAdapter, viewer: str) -> None:
    with pytest.raises(ProviderRejected, match="check the start URL") as caught:
        await adapter.run(config(viewer, "no-such-bot"), turn("hi"))

    assert caught.value.status == 404


async def test_missing_start_url_is_rejected(adapter: TypebotAdapter, viewer: str) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await adapter.run(ProviderConfig(type="typebot", base_url=viewer), turn("hi"))

    assert caught.value.code == "no_start_url"


async def test_slow_typebot_hits_the_read_timeout(
    provider_http: ProviderHttp, sessions: RedisSessions, typebot: FakeTypebot, viewer: str
) -> None:
    typebot.typebots["survey"].delay = 1.0
    slow = TypebotAdapter(provider_http, sessions, read_timeout_s=0.2)

    with pytest.raises(ProviderUnavailable) as caught:
        await slow.run(config(viewer), turn("Paris"))

    assert caught.value.code == "timeout"


async def test_unreachable_typebot_is_unavailable(adapter: TypebotAdapter) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.run(config("http://127.0.0.1:9"), turn("Paris"))

    assert caught.value.code == "connection_error"


SECRET_VALUE = "Walrus-9913-private"


@pytest.mark.parametrize(
    "fault",
    [
        TypebotError(500, "INTERNAL_SERVER_ERROR", f"failed on {SECRET_VALUE} {API_KEY}"),
        TypebotError(400, "BAD_REQUEST", f"Input validation failed: {SECRET_VALUE}"),
    ],
)
async def test_errors_never_carry_the_key_or_an_input(
    provider_http: ProviderHttp,
    sessions: RedisSessions,
    typebot: FakeTypebot,
    viewer: str,
    fault: TypebotError,
) -> None:
    typebot.typebots["private"].fail_next(fault)
    request = TurnRequest(
        query=SECRET_VALUE,
        inputs={"FIRST_NAME": SECRET_VALUE},
        user="member-1:chat7",
        session_key=SESSION_KEY,
    )

    with pytest.raises(ProviderError) as caught:
        await TypebotAdapter(provider_http, sessions).run(
            config(viewer, "private", API_KEY), request
        )

    for text in (str(caught.value), repr(caught.value.args), caught.value.code):
        assert SECRET_VALUE not in text
        assert API_KEY not in text


async def test_greeting_starts_the_flow_without_answering_its_first_input(
    typebot: FakeTypebot, viewer: str, adapter: TypebotAdapter
) -> None:
    greeting = replace(turn("ONIMBOTJOINCHAT"), greeting=True)

    reply = await adapter.run(config(viewer), greeting)

    (start,) = calls(typebot)
    assert "message" not in (start.json or {})
    assert start.json is not None
    assert start.json["prefilledVariables"] == INPUTS
    assert reply.text
