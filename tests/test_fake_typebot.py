"""The Typebot fake speaks the Chat API as reference dify-typebot.md Part B describes it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from tests.fakes.clock import FakeClock
from tests.fakes.server import serve
from tests.fakes.typebot import (
    Choice,
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

JSON = dict[str, Any]
NOW = 1_767_225_600.0

ASKED: list[JSON] = [
    {
        "type": "p",
        "children": [
            {"text": "You asked: "},
            {"text": "{{question}}", "bold": True},
        ],
    },
    {"type": "p", "children": [{"text": ""}]},
    {
        "type": "p",
        "children": [
            {"text": "See "},
            {
                "type": "a",
                "url": "https://example.com/{{FIRST_NAME}}",
                "children": [{"text": "your page", "italic": True}],
            },
        ],
    },
]

WELCOME_STEPS = [
    Step(
        [
            TextBubble("Hello {{FIRST_NAME}}!\nHow can we help?"),
            ImageBubble("https://cdn.example.com/logo.png", click_link="https://example.com"),
        ],
        TextInput(variable="question", placeholder="Ask us"),
    ),
    Step(
        [RichTextBubble(ASKED)], ChoiceInput(["Sales", Choice("Support", value="support")], "team")
    ),
    Step([TextBubble("Routing you to {{team}}.")]),
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def typebot(clock: FakeClock) -> FakeTypebot:
    fake = FakeTypebot(clock=clock)
    fake.add_typebot(Typebot("welcome", WELCOME_STEPS))
    return fake


@pytest.fixture
async def client(typebot: FakeTypebot) -> AsyncIterator[httpx2.AsyncClient]:
    async with (
        serve(typebot.asgi) as base_url,
        httpx2.AsyncClient(base_url=f"{base_url}/api") as http,
    ):
        yield http


async def start(
    client: httpx2.AsyncClient, public_id: str = "welcome", **body: Any
) -> httpx2.Response:
    return await client.post(f"/v1/typebots/{public_id}/startChat", json=body)


async def started_session(client: httpx2.AsyncClient, **body: Any) -> str:
    response = await start(client, prefilledVariables={"FIRST_NAME": "Anna"}, **body)
    assert response.status_code == 200
    session_id: str = response.json()["sessionId"]
    return session_id


async def reply(
    client: httpx2.AsyncClient, session_id: str, message: Any, **body: Any
) -> httpx2.Response:
    return await client.post(
        f"/v1/sessions/{session_id}/continueChat", json={"message": message, **body}
    )


def paragraph(text: str) -> JSON:
    return {"type": "p", "children": [{"text": text}]}


def orpc_error(status: int, code: str, message: str, data: Any = None) -> JSON:
    return {"defined": True, "code": code, "status": status, "message": message, "data": data}


CHOICE_INPUT = {
    "id": "input-1",
    "type": "choice input",
    "items": [
        {"id": "choice-1-0", "content": "Sales"},
        {"id": "choice-1-1", "content": "Support", "value": "support"},
    ],
    "options": {"variableId": "var-team"},
}


async def test_start_chat_greets_with_prefilled_variables(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    response = await start(
        client, prefilledVariables={"FIRST_NAME": "Anna", "NOT_IN_FLOW": "x"}, isStreamEnabled=False
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"sessionId", "resultId", "typebot", "messages", "input"}
    assert body["typebot"] == {
        "id": typebot.typebots["welcome"].id,
        "version": "6.1",
        "theme": {},
        "settings": {},
        "publishedAt": "2026-01-01T00:00:00.000Z",
    }
    assert body["messages"] == [
        {
            "id": "bubble-0-0",
            "type": "text",
            "content": {
                "type": "richText",
                "richText": [paragraph("Hello Anna!"), paragraph("How can we help?")],
            },
        },
        {
            "id": "bubble-0-1",
            "type": "image",
            "content": {
                "url": "https://cdn.example.com/logo.png",
                "clickLink": {"url": "https://example.com"},
            },
        },
    ]
    assert body["input"] == {
        "id": "input-0",
        "type": "text input",
        "options": {"labels": {"placeholder": "Ask us"}, "variableId": "var-question"},
    }
    assert typebot.sessions[body["sessionId"]].variables == {"FIRST_NAME": "Anna"}


async def test_answer_fills_rich_text_and_offers_choices(client: httpx2.AsyncClient) -> None:
    session_id = await started_session(client)

    response = await reply(client, session_id, {"type": "text", "text": "Where?"})

    body = response.json()
    assert set(body) == {"messages", "input"}
    assert body["messages"] == [
        {
            "id": "bubble-1-0",
            "type": "text",
            "content": {
                "type": "richText",
                "richText": [
                    {
                        "type": "p",
                        "children": [{"text": "You asked: "}, {"text": "Where?", "bold": True}],
                    },
                    paragraph(""),
                    {
                        "type": "p",
                        "children": [
                            {"text": "See "},
                            {
                                "type": "a",
                                "url": "https://example.com/Anna",
                                "children": [{"text": "your page", "italic": True}],
                            },
                        ],
                    },
                ],
            },
        }
    ]
    assert body["input"] == CHOICE_INPUT


async def test_markdown_format_flattens_rich_text(client: httpx2.AsyncClient) -> None:
    session_id = await started_session(client, textBubbleContentFormat="markdown")

    response = await reply(client, session_id, "Where?", textBubbleContentFormat="markdown")

    assert response.json()["messages"][0]["content"] == {
        "type": "markdown",
        "markdown": "You asked: **Where?**\n\nSee [_your page_](https://example.com/Anna)",
    }


@pytest.mark.parametrize(
    "message",
    [
        "Support",
        " Support ",
        "choice-1-1",
        {"type": "text", "text": "whatever", "metadata": {"replyId": "choice-1-1"}},
    ],
)
async def test_choice_answer_ends_the_flow_and_the_session(
    client: httpx2.AsyncClient, typebot: FakeTypebot, message: Any
) -> None:
    session_id = await started_session(client)
    await reply(client, session_id, "Where?")

    response = await reply(client, session_id, message)
    after_end = await reply(client, session_id, "again")

    assert response.json() == {
        "messages": [
            {
                "id": "bubble-2-0",
                "type": "text",
                "content": {"type": "richText", "richText": [paragraph("Routing you to support.")]},
            }
        ],
        "lastMessageNewFormat": "support",
    }
    assert session_id not in typebot.sessions
    assert after_end.status_code == 404
    assert after_end.json() == orpc_error(404, "NOT_FOUND", "Session not found.")


async def test_choice_answered_by_its_value_needs_no_new_format(client: httpx2.AsyncClient) -> None:
    session_id = await started_session(client)
    await reply(client, session_id, "Where?")

    response = await reply(client, session_id, "support")

    assert response.json()["messages"][0]["id"] == "bubble-2-0"
    assert "lastMessageNewFormat" not in response.json()


async def test_choice_answered_by_its_content_keeps_the_content(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    session_id = await started_session(client)
    await reply(client, session_id, "Where?")
    session = typebot.sessions[session_id]

    response = await reply(client, session_id, "Sales")

    assert "lastMessageNewFormat" not in response.json()
    assert session.answers == ["Where?", "Sales"]
    assert session.variables == {"FIRST_NAME": "Anna", "question": "Where?", "team": "Sales"}


@pytest.mark.parametrize("message", ["Marketing", None, {"type": "audio", "url": "https://a"}])
async def test_invalid_answer_is_retried_not_an_http_error(
    client: httpx2.AsyncClient, message: Any
) -> None:
    session_id = await started_session(client)
    await reply(client, session_id, "Where?")

    response = await reply(client, session_id, message)

    assert response.status_code == 200
    assert response.json() == {
        "messages": [
            {
                "id": "input-1",
                "type": "text",
                "content": {
                    "type": "richText",
                    "richText": [paragraph("Invalid message. Please, try again.")],
                },
            }
        ],
        "input": CHOICE_INPUT,
    }


async def test_bot_specific_invalid_message(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    typebot.typebots["welcome"].invalid_message = "Please pick a button."
    session_id = await started_session(client)
    await reply(client, session_id, "Where?")

    response = await reply(client, session_id, "Marketing", textBubbleContentFormat="markdown")

    assert response.json()["messages"][0]["content"] == {
        "type": "markdown",
        "markdown": "Please pick a button.",
    }


async def test_start_chat_can_answer_the_first_input(client: httpx2.AsyncClient) -> None:
    response = await start(client, message="Where?", prefilledVariables={"FIRST_NAME": "Bo"})

    body = response.json()
    assert [message["id"] for message in body["messages"]] == [
        "bubble-0-0",
        "bubble-0-1",
        "bubble-1-0",
    ]
    assert body["input"]["id"] == "input-1"


async def test_flow_that_ends_at_start_has_no_input(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    typebot.add_typebot(Typebot("bye", [Step([TextBubble("Closed today.")])]))

    started = (await start(client, "bye")).json()
    continued = await reply(client, started["sessionId"], "hello?")

    assert "input" not in started
    assert started["messages"][0]["content"]["richText"] == [paragraph("Closed today.")]
    assert continued.status_code == 404
    assert continued.json()["message"] == "Session not found."


async def test_client_side_actions_follow_their_bubble(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    wait = {"type": "wait", "wait": {"secondsToWaitFor": 2}}
    script = {
        "type": "setVariable",
        "setVariable": {"scriptToExecute": {"content": "return 1", "args": []}},
        "expectsDedicatedReply": True,
    }
    steps = [
        Step([TextBubble("One")], client_side_actions=[wait, script]),
        Step([TextBubble("Two")]),
    ]
    typebot.add_typebot(Typebot("actions", steps))

    started = (await start(client, "actions")).json()
    continued = await reply(client, started["sessionId"], "1")

    assert "input" not in started
    assert started["clientSideActions"] == [
        {"lastBubbleBlockId": "bubble-0-0", **wait},
        {"lastBubbleBlockId": "bubble-0-0", **script},
    ]
    assert continued.json() == {
        "messages": [
            {
                "id": "bubble-1-0",
                "type": "text",
                "content": {"type": "richText", "richText": [paragraph("Two")]},
            }
        ]
    }


async def test_unknown_typebot_and_session_are_not_found(client: httpx2.AsyncClient) -> None:
    no_bot = await start(client, "nobody")
    no_session = await reply(client, "no-such-session", "hi")

    assert no_bot.status_code == 404
    assert no_bot.json() == orpc_error(404, "NOT_FOUND", "Typebot not found")
    assert no_session.json() == orpc_error(404, "NOT_FOUND", "Session not found.")


async def test_expired_and_deleted_sessions(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    expired, deleted = await started_session(client), await started_session(client)
    typebot.expire_session(expired)
    typebot.delete_session(deleted)

    expired_reply = await reply(client, expired, "hi")
    deleted_reply = await reply(client, deleted, "hi")

    assert expired_reply.status_code == deleted_reply.status_code == 404
    assert expired_reply.json() == orpc_error(
        404, "NOT_FOUND", "Session expired. You need to start a new session."
    )
    assert deleted_reply.json()["message"] == "Session not found."


async def test_session_expires_after_inactivity(
    client: httpx2.AsyncClient, typebot: FakeTypebot, clock: FakeClock
) -> None:
    typebot.typebots["welcome"].expiry_timeout = 60
    session_id = await started_session(client)

    clock.advance(59)
    in_time = await reply(client, session_id, "Where?")
    clock.advance(61)
    too_late = await reply(client, session_id, "Sales")

    assert in_time.status_code == 200
    assert too_late.status_code == 404
    assert too_late.json()["message"] == "Session expired. You need to start a new session."


async def test_api_key_is_required_when_the_bot_has_one(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    typebot.typebots["welcome"].api_key = "tb-secret"
    headers = {"Authorization": "Bearer tb-secret"}

    anonymous = await start(client)
    wrong = await client.post(
        "/v1/typebots/welcome/startChat", headers={"Authorization": "Bearer nope"}, json={}
    )
    allowed = await client.post("/v1/typebots/welcome/startChat", headers=headers, json={})
    session_id = allowed.json()["sessionId"]
    continued_anonymously = await reply(client, session_id, "Where?")

    message = "You must be authenticated to access this resource"
    assert anonymous.status_code == wrong.status_code == continued_anonymously.status_code == 401
    assert anonymous.json() == orpc_error(401, "UNAUTHORIZED", message)
    assert allowed.status_code == 200
    assert typebot.requests[-1].authorization is None


async def test_one_shot_fault_then_recovery(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    typebot.typebots["welcome"].fail_next(TypebotError())

    failed = await start(client)
    recovered = await start(client)

    assert failed.status_code == 500
    assert failed.json() == orpc_error(500, "INTERNAL_SERVER_ERROR", "Internal server error")
    assert recovered.status_code == 200


async def test_persistent_fault_keeps_the_session_where_it_was(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    bot = typebot.typebots["welcome"]
    session_id = await started_session(client)
    bot.fault = TypebotError(503, "SERVICE_UNAVAILABLE", "Service unavailable")

    failures = [await reply(client, session_id, "Where?") for _ in range(2)]
    bot.heal()
    healed = await reply(client, session_id, "Where?")

    assert [failure.status_code for failure in failures] == [503, 503]
    assert failures[0].json()["defined"] is False
    assert healed.json()["input"]["id"] == "input-1"


async def test_delay_slows_the_reply(client: httpx2.AsyncClient, typebot: FakeTypebot) -> None:
    typebot.typebots["welcome"].delay = 0.3
    started = time.perf_counter()

    response = await start(client)

    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.3


async def test_closed_bot_refuses_to_start(
    client: httpx2.AsyncClient, typebot: FakeTypebot
) -> None:
    typebot.typebots["welcome"].closed = True

    response = await start(client)

    assert response.status_code == 400
    assert response.json() == orpc_error(400, "BAD_REQUEST", "This bot is now closed")


async def test_command_without_event_is_a_bad_request(client: httpx2.AsyncClient) -> None:
    session_id = await started_session(client)

    response = await reply(client, session_id, {"type": "command", "command": "restart"})

    assert response.status_code == 400
    assert response.json() == orpc_error(400, "BAD_REQUEST", "Command event not found")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"textBubbleContentFormat": "html"}, ["textBubbleContentFormat"]),
        ({"prefilledVariables": ["FIRST_NAME"]}, ["prefilledVariables"]),
        ({"message": {"type": "video"}}, ["message"]),
    ],
)
async def test_malformed_body_fails_input_validation(
    client: httpx2.AsyncClient, body: JSON, path: list[str]
) -> None:
    response = await start(client, **body)

    assert response.status_code == 400
    error = response.json()
    assert error["message"] == "Input validation failed"
    assert [issue["path"] for issue in error["data"]["issues"]] == [path]


async def test_every_request_is_recorded(client: httpx2.AsyncClient, typebot: FakeTypebot) -> None:
    session_id = await started_session(
        client, isStreamEnabled=False, textBubbleContentFormat="markdown"
    )
    await reply(client, session_id, {"type": "text", "text": "Where?"})

    first, second = typebot.typebots["welcome"].requests
    assert first.path == "/api/v1/typebots/welcome/startChat"
    assert first.json == {
        "prefilledVariables": {"FIRST_NAME": "Anna"},
        "isStreamEnabled": False,
        "textBubbleContentFormat": "markdown",
    }
    assert second.path == f"/api/v1/sessions/{session_id}/continueChat"
    assert second.json == {"message": {"type": "text", "text": "Where?"}}
    assert typebot.requests == [first, second]
