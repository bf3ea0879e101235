"""The Dify fake speaks the Service API as reference dify-typebot.md Part A describes it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from tests.fakes.clock import FakeClock
from tests.fakes.dify import (
    DifyApp,
    DifyRun,
    DropConnection,
    FakeDify,
    HttpError,
    InputVariable,
    RunFailed,
    StreamError,
)
from tests.fakes.server import serve

JSON = dict[str, Any]
Event = JSON | str
CHAT_KEY = "app-chat"
FLOW_KEY = "app-flow"
NOW = 1_767_225_600


@pytest.fixture
def dify() -> FakeDify:
    fake = FakeDify(clock=FakeClock(NOW))
    fake.add_app(
        DifyApp(
            api_key=CHAT_KEY,
            form=[
                InputVariable("FIRST_NAME", max_length=48),
                InputVariable("DIALOG_ID", required=True),
                InputVariable("tier", type="select", options=["free", "pro"]),
                InputVariable("age", type="number"),
            ],
        )
    )
    fake.add_app(DifyApp(api_key=FLOW_KEY, mode="workflow", outputs={"result": "Bonjour le monde"}))
    return fake


@pytest.fixture
async def client(dify: FakeDify) -> AsyncIterator[httpx2.AsyncClient]:
    async with serve(dify.asgi) as base_url, httpx2.AsyncClient(base_url=f"{base_url}/v1") as http:
        yield http


def auth(key: str = CHAT_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat_body(query: str = "Hi there", **extra: Any) -> JSON:
    return {"query": query, "inputs": {"DIALOG_ID": "chat42"}, "user": "m1:chat42", **extra}


async def post_chat(client: httpx2.AsyncClient, **extra: Any) -> httpx2.Response:
    return await client.post("/chat-messages", headers=auth(), json=chat_body(**extra))


async def stream_events(client: httpx2.AsyncClient, path: str, key: str, body: JSON) -> list[Event]:
    body = {**body, "response_mode": "streaming"}
    async with client.stream("POST", path, headers=auth(key), json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        return [event async for event in parse_sse(response)]


async def parse_sse(response: httpx2.Response) -> AsyncIterator[Event]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])
        elif line == "event: ping":
            yield "ping"
        else:
            assert line == ""


async def collect_stream(client: httpx2.AsyncClient, body: JSON, into: list[Event]) -> None:
    async with client.stream("POST", "/chat-messages", headers=auth(), json=body) as response:
        async for event in parse_sse(response):
            into.append(event)


def names(events: list[Event]) -> list[str]:
    return [event if isinstance(event, str) else event["event"] for event in events]


def payloads(events: list[Event]) -> list[JSON]:
    return [event for event in events if isinstance(event, dict)]


def error_body(response: httpx2.Response) -> JSON:
    body: JSON = response.json()
    return body


SUCCESS_CHAT = [
    "workflow_started",
    "node_started",
    "node_finished",
    "node_started",
    "message",
    "message",
    "message",
    "node_finished",
    "node_started",
    "node_finished",
    "message_end",
    "workflow_finished",
]


async def test_blocking_chat_returns_the_answer_with_usage(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    response = await post_chat(client)

    assert response.status_code == 200
    body = response.json()
    conversation_id = body["conversation_id"]
    assert list(dify.apps[CHAT_KEY].conversations) == [conversation_id]
    assert body["event"] == "message"
    assert body["mode"] == "advanced-chat"
    assert body["answer"] == "Hello from Dify."
    assert body["id"] == body["message_id"]
    assert body["created_at"] == NOW
    usage = body["metadata"]["usage"]
    assert usage["prompt_tokens"] == 2
    assert usage["completion_tokens"] == 3
    assert usage["total_tokens"] == 5
    assert usage["prompt_price"] == "0.0000020"
    assert usage["total_price"] == "0.0000050"
    assert usage["currency"] == "USD"
    assert body["metadata"]["retriever_resources"] == []


async def test_streaming_chat_sends_chatflow_events_in_order(client: httpx2.AsyncClient) -> None:
    events = payloads(await stream_events(client, "/chat-messages", CHAT_KEY, chat_body()))

    assert names(list(events)) == SUCCESS_CHAT
    answer = "".join(event["answer"] for event in events if event["event"] == "message")
    assert answer == "Hello from Dify."
    conversation_id = events[0]["conversation_id"]
    for event in events:
        assert event["conversation_id"] == conversation_id
        assert event["message_id"] == events[0]["message_id"]
        assert event["created_at"] == NOW
        assert event["task_id"] == events[0]["task_id"]
    assert events[-2]["metadata"]["usage"]["total_tokens"] == 5
    finished = events[-1]["data"]
    assert finished["status"] == "succeeded"
    assert finished["outputs"] == {"answer": "Hello from Dify."}
    assert finished["error"] is None
    assert finished["created_by"]["user"] == "m1:chat42"
    assert events[0]["data"]["inputs"]["DIALOG_ID"] == "chat42"
    assert [event["data"]["node_type"] for event in events if event["event"] == "node_started"] == [
        "start",
        "llm",
        "answer",
    ]


async def test_conversation_continues_for_its_user_only(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    first = (await post_chat(client, query="one")).json()["conversation_id"]

    second = await post_chat(client, query="two", conversation_id=first)
    stranger = await client.post(
        "/chat-messages",
        headers=auth(),
        json={**chat_body(), "conversation_id": first, "user": "x"},
    )

    assert second.json()["conversation_id"] == first
    assert dify.apps[CHAT_KEY].conversations[first].queries == ["one", "two"]
    assert stranger.status_code == 404
    assert error_body(stranger) == {
        "code": "not_found",
        "message": "Conversation Not Exists.",
        "status": 404,
    }


async def test_forgotten_or_unknown_conversation_is_not_found(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    conversation_id = (await post_chat(client)).json()["conversation_id"]
    dify.apps[CHAT_KEY].forget_conversation(conversation_id)

    forgotten = await post_chat(client, conversation_id=conversation_id)
    unknown = await post_chat(client, conversation_id=str(uuid.uuid4()))
    malformed = await post_chat(client, conversation_id="not-a-uuid")

    assert forgotten.status_code == unknown.status_code == 404
    assert error_body(unknown)["message"] == "Conversation Not Exists."
    assert malformed.status_code == 400
    assert error_body(malformed) == {
        "code": "invalid_param",
        "message": "conversation_id must be a valid UUID",
        "status": 400,
    }


async def test_blank_conversation_id_starts_a_new_conversation(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    response = await post_chat(client, conversation_id="")

    assert response.status_code == 200
    assert list(dify.apps[CHAT_KEY].conversations) == [response.json()["conversation_id"]]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authorization header must be provided and start with 'Bearer'"),
        ("Bearer", "Authorization header must be provided and start with 'Bearer'"),
        ("Basic app-chat", "Authorization scheme must be 'Bearer'"),
        ("Bearer app-unknown", "Access token is invalid"),
    ],
)
async def test_bad_api_key_is_unauthorized(
    client: httpx2.AsyncClient, header: str | None, message: str
) -> None:
    headers = {"Authorization": header} if header else {}

    response = await client.post("/chat-messages", headers=headers, json=chat_body())

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert error_body(response) == {"code": "unauthorized", "message": message, "status": 401}


async def test_bearer_scheme_is_case_insensitive(client: httpx2.AsyncClient) -> None:
    headers = {"Authorization": f"bearer {CHAT_KEY}"}

    response = await client.post("/chat-messages", headers=headers, json=chat_body())

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"DIALOG_ID": "1", "FIRST_NAME": "x" * 49},
            "FIRST_NAME in input form must be less than 48 characters",
        ),
        ({}, "DIALOG_ID is required in input form"),
        ({"DIALOG_ID": None}, "DIALOG_ID is required in input form"),
        ({"DIALOG_ID": 42}, "(type 'text-input') DIALOG_ID in input form must be a string"),
        (
            {"DIALOG_ID": "1", "tier": "gold"},
            "tier in input form must be one of the following: ['free', 'pro']",
        ),
        ({"DIALOG_ID": "1", "age": "old"}, "age in input form must be a valid number"),
        (
            {"DIALOG_ID": "1", "tier": {"a": 1}},
            "(type 'select') tier in input form must be a string",
        ),
    ],
)
async def test_inputs_are_validated_with_difys_messages(
    client: httpx2.AsyncClient, inputs: JSON, message: str
) -> None:
    body = {**chat_body(), "inputs": inputs}

    response = await client.post("/chat-messages", headers=auth(), json=body)

    assert response.status_code == 400
    assert error_body(response) == {"code": "invalid_param", "message": message, "status": 400}


async def test_input_validation_fails_as_json_even_when_streaming(
    client: httpx2.AsyncClient,
) -> None:
    body = {**chat_body(), "inputs": {"DIALOG_ID": "1", "FIRST_NAME": "y" * 60}}
    body["response_mode"] = "streaming"

    response = await client.post("/chat-messages", headers=auth(), json=body)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert error_body(response)["message"] == (
        "FIRST_NAME in input form must be less than 48 characters"
    )


async def test_run_sees_validated_inputs_only(client: httpx2.AsyncClient, dify: FakeDify) -> None:
    seen: list[DifyRun] = []

    def answer(run: DifyRun) -> str:
        seen.append(run)
        return f"{run.query} / {run.inputs['FIRST_NAME']}"

    dify.apps[CHAT_KEY].answer = answer
    inputs = {"DIALOG_ID": "d\x001", "FIRST_NAME": "x" * 48, "age": "42", "UNKNOWN": "dropped"}

    response = await client.post(
        "/chat-messages", headers=auth(), json={**chat_body(), "inputs": inputs}
    )

    assert response.json()["answer"] == f"Hi there / {'x' * 48}"
    assert seen[0].inputs == {"FIRST_NAME": "x" * 48, "DIALOG_ID": "d1", "tier": None, "age": 42}
    assert seen[0].user == "m1:chat42"
    assert seen[0].conversation_id == response.json()["conversation_id"]


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"query": "q", "inputs": {}}, 400, "invalid_param", "Arg user must be provided."),
        (
            {"query": "", "inputs": {"DIALOG_ID": "1"}, "user": "u"},
            400,
            "invalid_param",
            "query is required",
        ),
        (
            {"query": "q", "user": "u"},
            400,
            "invalid_param",
            "1 validation error for ChatRequestPayload\ninputs\n  Field required",
        ),
    ],
)
async def test_malformed_chat_requests_are_rejected(
    client: httpx2.AsyncClient, body: JSON, status: int, code: str, message: str
) -> None:
    response = await client.post("/chat-messages", headers=auth(), json=body)

    assert response.status_code == status
    assert error_body(response) == {"code": code, "message": message, "status": status}


async def test_invalid_json_is_a_bad_request(client: httpx2.AsyncClient) -> None:
    headers = {**auth(), "Content-Type": "application/json"}

    response = await client.post("/chat-messages", headers=headers, content=b"{oops")

    assert response.status_code == 400
    assert error_body(response) == {
        "code": "bad_request",
        "message": "Invalid JSON payload received or JSON payload is empty.",
        "status": 400,
    }


async def test_app_mode_must_match_the_route(client: httpx2.AsyncClient) -> None:
    chat_on_workflow = await client.post("/chat-messages", headers=auth(FLOW_KEY), json=chat_body())
    run_on_chatflow = await client.post(
        "/workflows/run", headers=auth(), json={"inputs": {}, "user": "u"}
    )

    message = "Please check if your app mode matches the right API route."
    assert error_body(chat_on_workflow) == {
        "code": "not_chat_app",
        "message": message,
        "status": 400,
    }
    assert error_body(run_on_chatflow) == {
        "code": "not_workflow_app",
        "message": message,
        "status": 400,
    }


async def test_every_request_is_recorded(client: httpx2.AsyncClient, dify: FakeDify) -> None:
    files = [{"type": "image", "transfer_method": "remote_url", "url": "https://e.x/a.png"}]
    conversation_id = (await post_chat(client)).json()["conversation_id"]

    await post_chat(client, conversation_id=conversation_id, response_mode="blocking", files=files)

    recorded = dify.apps[CHAT_KEY].requests[-1]
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat-messages"
    assert recorded.authorization == f"Bearer {CHAT_KEY}"
    assert recorded.json == {
        "query": "Hi there",
        "inputs": {"DIALOG_ID": "chat42"},
        "user": "m1:chat42",
        "conversation_id": conversation_id,
        "response_mode": "blocking",
        "files": files,
    }
    assert len(dify.requests) == 2


async def test_files_reach_the_run_only_when_uploads_are_enabled(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    seen: list[DifyRun] = []

    def answer(run: DifyRun) -> str:
        seen.append(run)
        return "ok"

    app = dify.apps[CHAT_KEY]
    app.answer = answer
    file_id = await upload(client, "m1:chat42", "a.pdf", b"%PDF", "application/pdf")
    files = [{"type": "document", "transfer_method": "local_file", "upload_file_id": file_id}]

    await post_chat(client, files=files)
    app.file_upload_enabled = True
    await post_chat(client, files=files)

    assert [run.files for run in seen] == [[], files]
    assert [run.files for run in app.runs] == [[], files]


async def upload(
    client: httpx2.AsyncClient, user: str, name: str, content: bytes, content_type: str
) -> str:
    files = {"file": (name, content, content_type)}
    response = await client.post("/files/upload", headers=auth(), data={"user": user}, files=files)
    assert response.status_code == 201
    file_id: str = response.json()["id"]
    return file_id


def local(kind: str, upload_file_id: str) -> JSON:
    return {"type": kind, "transfer_method": "local_file", "upload_file_id": upload_file_id}


async def test_files_are_checked_like_dify_checks_them(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    app = dify.apps[CHAT_KEY]
    app.file_upload_enabled = True
    app.file_number_limit = 2
    mine = await upload(client, "m1:chat42", "a.png", b"png", "image/png")
    theirs = await upload(client, "someone-else", "b.png", b"png", "image/png")
    archive = await upload(client, "m1:chat42", "c.zip", b"zip", "application/zip")

    unknown = await post_chat(client, files=[local("image", "no-such-id")])
    foreign = await post_chat(client, files=[local("image", theirs)])
    mistyped = await post_chat(client, files=[local("document", mine)])
    custom = await post_chat(client, files=[local("custom", archive)])
    too_many = await post_chat(client, files=[local("image", mine)] * 3)
    app.allowed_file_extensions = (".ZIP",)
    allowed_custom = await post_chat(client, files=[local("custom", archive)])

    assert [r.status_code for r in (unknown, foreign, mistyped, custom, too_many)] == [400] * 5
    assert [error_body(r)["message"] for r in (unknown, foreign, mistyped, custom, too_many)] == [
        "Invalid upload file",
        "Invalid upload file",
        "Detected file type does not match the specified type. Please verify the file.",
        "File validation failed for file: c.zip",
        "Number of files exceeds the maximum limit 2",
    ]
    assert allowed_custom.status_code == 200
    assert [run.files for run in app.runs] == [[local("custom", archive)]]


async def test_workflow_runs_take_files_too(client: httpx2.AsyncClient, dify: FakeDify) -> None:
    app = dify.apps[FLOW_KEY]
    app.file_upload_enabled = True
    files = {"file": ("a.pdf", b"%PDF", "application/pdf")}
    uploaded = await client.post(
        "/files/upload", headers=auth(FLOW_KEY), data={"user": "u1"}, files=files
    )
    item = local("document", uploaded.json()["id"])
    body = {"inputs": {}, "user": "u1", "response_mode": "blocking", "files": [item]}

    response = await client.post("/workflows/run", headers=auth(FLOW_KEY), json=body)

    assert response.status_code == 200
    assert [run.files for run in app.runs] == [[item]]


async def test_parameters_show_the_apps_file_settings(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    app = dify.apps[CHAT_KEY]
    app.file_upload_enabled = True
    app.allowed_file_types = ("image", "custom")
    app.allowed_file_extensions = (".zip",)
    app.file_number_limit = 5

    file_upload = (await client.get("/parameters", headers=auth())).json()["file_upload"]

    assert file_upload["enabled"] is True
    assert file_upload["allowed_file_types"] == ["image", "custom"]
    assert file_upload["allowed_file_extensions"] == [".zip"]
    assert file_upload["allowed_file_upload_methods"] == ["remote_url", "local_file"]
    assert file_upload["number_limits"] == 5


async def test_one_shot_server_error_then_recovery(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].fail_next(HttpError())

    failed = await post_chat(client)
    recovered = await post_chat(client)

    assert failed.status_code == 500
    assert error_body(failed)["code"] == "internal_server_error"
    assert recovered.status_code == 200
    assert len(dify.apps[CHAT_KEY].conversations) == 1


async def test_persistent_rate_limit_until_healed(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    app = dify.apps[CHAT_KEY]
    app.fault = HttpError.too_many_requests(max_active=2)

    first, second = await post_chat(client), await post_chat(client)
    app.heal()
    healed = await post_chat(client)

    assert first.status_code == second.status_code == 429
    assert error_body(first) == {
        "code": "too_many_requests",
        "message": "Too many requests. Please try again later. "
        "The current maximum concurrent requests allowed is 2.",
        "status": 429,
    }
    assert healed.status_code == 200


async def test_concurrency_ceiling_answers_429_while_a_run_holds_the_slot(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    app = dify.apps[CHAT_KEY]
    app.max_active_requests = 1
    app.delay = 0.3

    slow, rejected = await asyncio.gather(post_chat(client), _after(0.1, post_chat(client)))
    later = await post_chat(client)

    assert slow.status_code == 200
    assert rejected.status_code == 429
    assert error_body(rejected)["message"].endswith("allowed is 1.")
    assert later.status_code == 200
    assert app.active_runs == 0
    assert len(app.conversations) == 2


async def test_streaming_run_holds_its_slot_until_the_stream_ends(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    app = dify.apps[CHAT_KEY]
    app.max_active_requests, app.delay = 1, 0.3
    streaming = asyncio.create_task(stream_events(client, "/chat-messages", CHAT_KEY, chat_body()))

    rejected = await _after(0.1, post_chat(client))
    events = await streaming

    assert rejected.status_code == 429
    assert names(events)[-1] == "workflow_finished"
    assert app.active_runs == 0


async def _after(seconds: float, request: Any) -> httpx2.Response:
    await asyncio.sleep(seconds)
    response: httpx2.Response = await request
    return response


async def test_stream_error_event_after_one_chunk(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].fail_next(
        StreamError("completion_request_error", 400, "Boom", after_chunks=1)
    )

    events = payloads(await stream_events(client, "/chat-messages", CHAT_KEY, chat_body()))

    assert names(list(events))[-2:] == ["message", "error"]
    assert "message_end" not in names(list(events))
    error = events[-1]
    assert error == {
        "event": "error",
        "conversation_id": events[0]["conversation_id"],
        "message_id": events[0]["message_id"],
        "created_at": NOW,
        "code": "completion_request_error",
        "status": 400,
        "message": "Boom",
    }


async def test_stream_error_in_blocking_mode_is_an_http_error(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].fail_next(StreamError())

    response = await post_chat(client)

    assert response.status_code == 500
    assert error_body(response) == {
        "code": "internal_server_error",
        "message": "Internal Server Error, please contact support.",
        "status": 500,
    }


async def test_failed_chatflow_run_streams_failed_workflow_then_error(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].fail_next(RunFailed("Model timed out"))

    events = payloads(await stream_events(client, "/chat-messages", CHAT_KEY, chat_body()))

    assert names(list(events))[-3:] == ["node_finished", "workflow_finished", "error"]
    assert "message" not in names(list(events))
    assert events[-2]["data"]["status"] == "failed"
    assert events[-2]["data"]["error"] == "Model timed out"
    assert events[-1]["code"] == "invalid_param"
    assert events[-1]["status"] == 400
    assert events[-1]["message"] == "Run failed: Model timed out"


async def test_failed_chatflow_run_in_blocking_mode_is_400(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].fail_next(RunFailed("Model timed out"))

    response = await post_chat(client)

    assert response.status_code == 400
    assert error_body(response) == {
        "code": "invalid_param",
        "message": "Run failed: Model timed out",
        "status": 400,
    }


async def test_dropped_stream_breaks_off_after_the_first_chunk(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].fail_next(DropConnection(after_chunks=1))
    body = {**chat_body(), "response_mode": "streaming"}
    received: list[Event] = []

    with pytest.raises(httpx2.RemoteProtocolError):
        await collect_stream(client, body, received)

    assert names(received)[-1] == "message"
    assert names(received).count("message") == 1
    assert dify.apps[CHAT_KEY].active_runs == 0


async def test_dropped_blocking_reply_is_cut_mid_body(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].fail_next(DropConnection())

    with pytest.raises(httpx2.RemoteProtocolError):
        await post_chat(client)
    assert (await post_chat(client)).status_code == 200


async def test_slow_model_streams_pings_while_waiting(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    app = dify.apps[CHAT_KEY]
    app.delay, app.ping_interval = 0.35, 0.1
    started = time.perf_counter()

    events = await stream_events(client, "/chat-messages", CHAT_KEY, chat_body())

    assert time.perf_counter() - started >= 0.35
    assert names(events)[:8] == [*SUCCESS_CHAT[:4], "ping", "ping", "ping", "message"]


async def test_slow_model_delays_a_blocking_reply(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[CHAT_KEY].delay = 0.3
    started = time.perf_counter()

    response = await post_chat(client)

    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.3


async def test_blocking_workflow_returns_outputs(client: httpx2.AsyncClient) -> None:
    body = {"inputs": {}, "user": "u1", "response_mode": "blocking"}

    response = await client.post("/workflows/run", headers=auth(FLOW_KEY), json=body)

    reply = response.json()
    assert response.status_code == 200
    assert set(reply) == {"task_id", "workflow_run_id", "data"}
    assert reply["data"]["id"] == reply["workflow_run_id"]
    assert reply["data"]["status"] == "succeeded"
    assert reply["data"]["outputs"] == {"result": "Bonjour le monde"}
    assert reply["data"]["error"] is None
    assert reply["data"]["total_steps"] == 3
    assert reply["data"]["created_at"] == NOW


async def test_streaming_workflow_ends_with_outputs(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[FLOW_KEY].outputs = lambda run: {"echo": f"Hello {run.user}", "count": 2}
    body = {"inputs": {}, "user": "u1"}

    events = payloads(await stream_events(client, "/workflows/run", FLOW_KEY, body))

    assert names(list(events)) == [
        "workflow_started",
        "node_started",
        "node_finished",
        "node_started",
        "text_chunk",
        "text_chunk",
        "node_finished",
        "node_started",
        "node_finished",
        "workflow_finished",
    ]
    run_id = events[0]["workflow_run_id"]
    assert all(event["workflow_run_id"] == run_id for event in events)
    assert all("conversation_id" not in event for event in events)
    assert events[-1]["data"]["outputs"] == {"echo": "Hello u1", "count": 2}
    assert events[-1]["data"]["status"] == "succeeded"


async def test_failed_workflow_is_a_result_not_an_http_error(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    app = dify.apps[FLOW_KEY]
    app.fail_next(RunFailed("HTTP node failed"), times=2)
    body = {"inputs": {}, "user": "u1"}

    blocking = await client.post("/workflows/run", headers=auth(FLOW_KEY), json=body)
    events = payloads(await stream_events(client, "/workflows/run", FLOW_KEY, body))

    assert blocking.status_code == 200
    assert blocking.json()["data"]["status"] == "failed"
    assert blocking.json()["data"]["error"] == "HTTP node failed"
    assert names(list(events))[-1] == "workflow_finished"
    assert events[-1]["data"]["status"] == "failed"
    assert events[-1]["data"]["error"] == "HTTP node failed"


async def test_workflow_stream_error_has_no_task_id(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.apps[FLOW_KEY].fail_next(StreamError())

    events = payloads(
        await stream_events(client, "/workflows/run", FLOW_KEY, {"inputs": {}, "user": "u1"})
    )

    assert events[-1] == {
        "event": "error",
        "workflow_run_id": events[0]["workflow_run_id"],
        "code": "internal_server_error",
        "status": 500,
        "message": "Internal Server Error, please contact support.",
    }


async def test_parameters_show_the_user_input_form(client: httpx2.AsyncClient) -> None:
    response = await client.get("/parameters", headers=auth())

    body = response.json()
    assert body["user_input_form"] == [
        {
            "text-input": {
                "type": "text-input",
                "variable": "FIRST_NAME",
                "label": "FIRST_NAME",
                "required": False,
                "max_length": 48,
            }
        },
        {
            "text-input": {
                "type": "text-input",
                "variable": "DIALOG_ID",
                "label": "DIALOG_ID",
                "required": True,
            }
        },
        {
            "select": {
                "type": "select",
                "variable": "tier",
                "label": "tier",
                "required": False,
                "options": ["free", "pro"],
            }
        },
        {"number": {"type": "number", "variable": "age", "label": "age", "required": False}},
    ]
    assert body["system_parameters"]["image_file_size_limit"] == 10
    assert body["file_upload"]["enabled"] is False


async def test_info_names_the_app_and_its_mode(client: httpx2.AsyncClient) -> None:
    response = await client.get("/info", headers=auth(FLOW_KEY))

    assert response.json() == {
        "name": "Fake Dify app",
        "description": "",
        "tags": [],
        "mode": "workflow",
        "author_name": "BitBot tests",
    }


async def test_upload_stores_the_file_for_the_user(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    files = {"file": ("photo.png", b"\x89PNG-bytes", "image/png")}

    response = await client.post("/files/upload", headers=auth(), data={"user": "u1"}, files=files)

    assert response.status_code == 201
    body = response.json()
    stored = dify.apps[CHAT_KEY].uploads[body["id"]]
    assert (stored.name, stored.user, stored.content) == ("photo.png", "u1", b"\x89PNG-bytes")
    assert body["name"] == "photo.png"
    assert body["size"] == 10
    assert body["extension"] == "png"
    assert body["mime_type"] == "image/png"
    assert body["created_at"] == NOW
    assert body["preview_url"] is None
    assert dify.requests[-1].form == {"user": "u1"}
    assert dify.requests[-1].files == {"file": "photo.png"}


async def test_upload_errors(client: httpx2.AsyncClient, dify: FakeDify) -> None:
    dify.apps[CHAT_KEY].upload_size_limit = 4
    big = {"file": ("a.txt", b"12345", "text/plain")}

    missing = await client.post("/files/upload", headers=auth(), data={"user": "u1"})
    too_big = await client.post("/files/upload", headers=auth(), data={"user": "u1"}, files=big)

    assert missing.status_code == 400
    assert error_body(missing) == {
        "code": "no_file_uploaded",
        "message": "Please upload your file.",
        "status": 400,
    }
    assert too_big.status_code == 413
    assert error_body(too_big) == {"code": "file_too_large", "message": "", "status": 413}


async def test_upload_refuses_blacklisted_extensions_and_parts_without_a_type(
    client: httpx2.AsyncClient, dify: FakeDify
) -> None:
    dify.extension_blacklist.add("exe")
    exe = {"file": ("setup.exe", b"MZ", "application/octet-stream")}
    untyped = {"file": ("a.txt", b"text", "")}

    blacklisted = await client.post("/files/upload", headers=auth(), data={"user": "u"}, files=exe)
    no_type = await client.post("/files/upload", headers=auth(), data={"user": "u"}, files=untyped)

    assert blacklisted.status_code == 400
    assert error_body(blacklisted) == {
        "code": "invalid_param",
        "message": "File extension '.exe' is not allowed for security reasons",
        "status": 400,
    }
    assert no_type.status_code == 415
    assert error_body(no_type)["code"] == "unsupported_file_type"
    assert dify.apps[CHAT_KEY].uploads == {}


async def test_upload_answers_a_scripted_error(client: httpx2.AsyncClient, dify: FakeDify) -> None:
    dify.apps[CHAT_KEY].upload_error = HttpError(401, "unauthorized", "Access token is invalid")
    files = {"file": ("a.txt", b"text", "text/plain")}

    response = await client.post("/files/upload", headers=auth(), data={"user": "u"}, files=files)

    assert response.status_code == 401
    assert error_body(response)["code"] == "unauthorized"
