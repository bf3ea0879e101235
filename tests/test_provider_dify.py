"""The Dify adapters against the fake Dify over real HTTP (reference dify-typebot.md Part A)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest

from gateway.providers import (
    DifyChatflow,
    DifyWorkflow,
    InputTooLong,
    ProviderConfig,
    ProviderError,
    ProviderFailed,
    ProviderHttp,
    ProviderRejected,
    ProviderUnavailable,
    RedisSessions,
    TurnRequest,
    TypebotAdapter,
    Usage,
    provider_for,
)
from gateway.providers.dify_workflow import DifyForms, FormVariable
from tests.fakes.dify import (
    DifyApp,
    DropConnection,
    FakeDify,
    HttpError,
    InputVariable,
    RunFailed,
    StreamError,
)
from tests.fakes.provider_wire import RecordedRequest
from tests.fakes.server import serve

CHAT_KEY = "app-chat-Zq81secret"
FLOW_KEY = "app-flow-Kx42secret"
SESSION_KEY = "bitbot:member-1:55:chat7"
USER = "member-1:chat7"
FORM = [
    InputVariable("FIRST_NAME", max_length=48),
    InputVariable("DIALOG_ID", required=True),
    InputVariable("COMMAND", required=True),
    InputVariable("MESSAGE", type="paragraph"),
]
INPUTS = {"FIRST_NAME": "John", "DIALOG_ID": "chat7", "MESSAGE": "hello there"}


@pytest.fixture
def dify() -> FakeDify:
    fake = FakeDify()
    fake.add_app(DifyApp(api_key=CHAT_KEY, form=FORM))
    fake.add_app(DifyApp(api_key=FLOW_KEY, mode="workflow", form=FORM))
    return fake


@pytest.fixture
async def base_url(dify: FakeDify) -> AsyncIterator[str]:
    async with serve(dify.asgi) as url:
        yield f"{url}/v1"


@pytest.fixture
def sessions() -> RedisSessions:
    return RedisSessions(fakeredis.FakeAsyncRedis())


@pytest.fixture
def forms() -> DifyForms:
    return DifyForms()


@pytest.fixture
def chatflow(
    provider_http: ProviderHttp, sessions: RedisSessions, forms: DifyForms
) -> DifyChatflow:
    return DifyChatflow(provider_http, sessions, forms=forms)


@pytest.fixture
def workflow(
    provider_http: ProviderHttp, sessions: RedisSessions, forms: DifyForms
) -> DifyWorkflow:
    return DifyWorkflow(provider_http, sessions, forms=forms)


def chat_config(base_url: str, api_key: str = CHAT_KEY) -> ProviderConfig:
    return ProviderConfig(type="dify_chatflow", base_url=base_url, api_key=api_key)


def flow_config(base_url: str) -> ProviderConfig:
    return ProviderConfig(type="dify_workflow", base_url=base_url, api_key=FLOW_KEY)


def turn(query: str = "hello there", **inputs: str) -> TurnRequest:
    return TurnRequest(
        query=query, inputs=inputs or dict(INPUTS), user=USER, session_key=SESSION_KEY
    )


def runs(app: DifyApp, path: str = "/v1/chat-messages") -> list[RecordedRequest]:
    return [request for request in app.requests if request.path == path]


async def test_follow_up_turn_continues_the_conversation(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, sessions: RedisSessions
) -> None:
    app = dify.apps[CHAT_KEY]

    first = await chatflow.run(chat_config(base_url), turn("hello there"))
    conversation_id = await sessions.get(SESSION_KEY)
    second = await chatflow.run(chat_config(base_url), turn("and again"))

    assert first.text == second.text == "Hello from Dify."
    assert conversation_id in app.conversations
    assert app.conversations[conversation_id].queries == ["hello there", "and again"]
    first_body, second_body = (request.json for request in runs(app))
    assert "conversation_id" not in first_body
    assert second_body["conversation_id"] == conversation_id
    assert await sessions.get(SESSION_KEY) == conversation_id


async def test_query_inputs_user_and_key_arrive_exactly(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    request = turn("hello there", **INPUTS, user_access_token="not-declared")

    await chatflow.run(chat_config(base_url), request)

    [sent] = runs(dify.apps[CHAT_KEY])
    assert sent.authorization == f"Bearer {CHAT_KEY}"
    # Undeclared inputs stay home; a required one BitBot has no value for goes empty.
    assert sent.json == {
        "query": "hello there",
        "inputs": {**INPUTS, "COMMAND": ""},
        "user": USER,
        "response_mode": "streaming",
    }


async def test_answer_chunks_are_joined_and_usage_is_metered(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    dify.apps[CHAT_KEY].answer = "Bonjour, **John**!\nHow can I help today?"

    reply = await chatflow.run(chat_config(base_url), turn("hello there"))

    assert reply.text == "Bonjour, **John**!\nHow can I help today?"
    assert reply.usage == Usage(prompt_tokens=2, completion_tokens=7, total_tokens=9)
    assert reply.buttons == ()
    assert not reply.session_ended


async def test_lost_conversation_is_forgotten_and_started_again_once(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, sessions: RedisSessions
) -> None:
    app = dify.apps[CHAT_KEY]
    await chatflow.run(chat_config(base_url), turn())
    old_id = await sessions.get(SESSION_KEY)
    assert old_id is not None
    app.forget_conversation(old_id)

    reply = await chatflow.run(chat_config(base_url), turn("still there?"))

    new_id = await sessions.get(SESSION_KEY)
    assert reply.text == "Hello from Dify."
    assert new_id in app.conversations
    assert new_id != old_id
    bodies = [request.json for request in runs(app)]
    assert [body.get("conversation_id") for body in bodies] == [None, old_id, None]
    assert app.conversations[new_id].queries == ["still there?"]


async def test_too_long_input_is_named_before_anything_is_sent(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    with pytest.raises(InputTooLong) as caught:
        await chatflow.run(chat_config(base_url), turn(**{**INPUTS, "FIRST_NAME": "x" * 49}))

    assert (caught.value.variable, caught.value.limit) == ("FIRST_NAME", 48)
    assert runs(dify.apps[CHAT_KEY]) == []


async def test_input_of_exactly_max_length_passes(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    await chatflow.run(chat_config(base_url), turn(**{**INPUTS, "FIRST_NAME": "x" * 48}))

    [sent] = runs(dify.apps[CHAT_KEY])
    assert sent.json["inputs"]["FIRST_NAME"] == "x" * 48


async def test_difys_own_length_refusal_names_the_variable(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, forms: DifyForms
) -> None:
    # A form cached before the app's limit was lowered lets the value through to Dify.
    stale = tuple(FormVariable(v.variable, v.type, v.required, None) for v in FORM)
    forms.store(chat_config(base_url), stale)

    with pytest.raises(InputTooLong) as caught:
        await chatflow.run(chat_config(base_url), turn(**{**INPUTS, "FIRST_NAME": "x" * 60}))

    assert (caught.value.variable, caught.value.limit) == ("FIRST_NAME", 48)
    assert len(runs(dify.apps[CHAT_KEY])) == 1
    assert forms.lookup(chat_config(base_url)) is None


async def test_a_cached_form_that_refuses_is_checked_against_a_fresh_one(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, forms: DifyForms
) -> None:
    stricter = tuple(FormVariable(v.variable, v.type, v.required, 10) for v in FORM)
    forms.store(chat_config(base_url), stricter)

    reply = await chatflow.run(chat_config(base_url), turn(**{**INPUTS, "FIRST_NAME": "x" * 20}))

    assert reply.text == "Hello from Dify."
    assert forms.lookup(chat_config(base_url)) == tuple(
        FormVariable(v.variable, v.type, v.required, v.max_length) for v in FORM
    )


async def test_forms_are_fetched_once_per_app_while_cached(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    for _ in range(3):
        await chatflow.run(chat_config(base_url), turn())

    assert len(runs(dify.apps[CHAT_KEY], "/v1/parameters")) == 1


async def test_each_worker_keeps_its_own_forms(
    provider_http: ProviderHttp, sessions: RedisSessions, dify: FakeDify, base_url: str
) -> None:
    """Turns of one worker share a cache; another worker (or process) reads the form afresh."""
    one_worker = DifyForms()
    for _ in range(2):
        adapter = provider_for("dify_chatflow", provider_http, sessions, one_worker)
        await adapter.run(chat_config(base_url), turn())
    assert len(runs(dify.apps[CHAT_KEY], "/v1/parameters")) == 1

    dify.apps[CHAT_KEY].form = [InputVariable("CITY")]
    another = provider_for("dify_chatflow", provider_http, sessions, DifyForms())
    await another.run(chat_config(base_url), turn(CITY="Riga"))

    assert len(runs(dify.apps[CHAT_KEY], "/v1/parameters")) == 2
    assert (runs(dify.apps[CHAT_KEY])[-1].json or {})["inputs"] == {"CITY": "Riga"}


async def test_required_variable_bitbot_cannot_fill_is_named(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    dify.apps[CHAT_KEY].form = [*FORM, InputVariable("contract", type="file", required=True)]

    with pytest.raises(ProviderRejected, match="input variable contract") as caught:
        await chatflow.run(chat_config(base_url), turn())

    assert caught.value.code == "input_unsupported"


async def test_unknown_api_key_is_rejected(chatflow: DifyChatflow, base_url: str) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await chatflow.run(chat_config(base_url, api_key="app-unknown"), turn())

    assert str(caught.value) == "the Dify API key is not accepted"
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (HttpError.too_many_requests(), 429, "too_many_requests"),
        (HttpError.rate_limited(), 429, "rate_limit_error"),
        (HttpError(), 500, "internal_server_error"),
        (HttpError(503, "", "upstream down"), 503, ""),
    ],
)
async def test_overload_and_server_errors_are_unavailable(
    chatflow: DifyChatflow,
    dify: FakeDify,
    base_url: str,
    fault: HttpError,
    status: int,
    code: str,
) -> None:
    dify.apps[CHAT_KEY].fail_next(fault)

    with pytest.raises(ProviderUnavailable) as caught:
        await chatflow.run(chat_config(base_url), turn())

    assert (caught.value.status, caught.value.code) == (status, code)


async def test_other_client_errors_are_rejected_with_difys_code(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    dify.apps[CHAT_KEY].fail_next(HttpError(400, "app_unavailable", "App unavailable"))

    with pytest.raises(ProviderRejected) as caught:
        await chatflow.run(chat_config(base_url), turn())

    assert (caught.value.status, caught.value.code) == (400, "app_unavailable")
    assert not isinstance(caught.value, InputTooLong)


async def test_error_event_mid_stream_fails_the_turn(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, sessions: RedisSessions
) -> None:
    dify.apps[CHAT_KEY].fail_next(StreamError(after_chunks=2))

    with pytest.raises(ProviderFailed) as caught:
        await chatflow.run(chat_config(base_url), turn())

    assert (caught.value.code, caught.value.status) == ("internal_server_error", 500)
    assert await sessions.get(SESSION_KEY) is None


async def test_failed_chatflow_run_is_a_failure_not_an_empty_answer(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str
) -> None:
    dify.apps[CHAT_KEY].fail_next(RunFailed())

    with pytest.raises(ProviderFailed) as caught:
        await chatflow.run(chat_config(base_url), turn())

    assert caught.value.code == "run_failed"


@pytest.mark.parametrize("after_chunks", [0, 2])
async def test_dropped_connection_is_unavailable(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, after_chunks: int
) -> None:
    dify.apps[CHAT_KEY].fail_next(DropConnection(after_chunks=after_chunks))

    with pytest.raises(ProviderUnavailable) as caught:
        await chatflow.run(chat_config(base_url), turn())

    assert caught.value.code == "connection_error"


async def test_silent_provider_hits_the_read_timeout(
    provider_http: ProviderHttp, sessions: RedisSessions, dify: FakeDify, base_url: str
) -> None:
    dify.apps[CHAT_KEY].delay = 1.0
    adapter = DifyChatflow(provider_http, sessions, read_timeout_s=0.2, forms=DifyForms())

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.run(chat_config(base_url), turn())

    assert caught.value.code == "timeout"


async def test_pings_keep_the_stream_alive_until_the_turn_cap(
    provider_http: ProviderHttp, sessions: RedisSessions, dify: FakeDify, base_url: str
) -> None:
    app = dify.apps[CHAT_KEY]
    app.delay, app.ping_interval = 1.5, 0.1
    adapter = DifyChatflow(
        provider_http, sessions, read_timeout_s=0.5, turn_timeout_s=0.8, forms=DifyForms()
    )

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.run(chat_config(base_url), turn())

    assert caught.value.code == "turn_timeout"


async def test_slow_answer_within_limits_arrives_thanks_to_pings(
    provider_http: ProviderHttp, sessions: RedisSessions, dify: FakeDify, base_url: str
) -> None:
    app = dify.apps[CHAT_KEY]
    app.delay, app.ping_interval = 0.6, 0.1
    adapter = DifyChatflow(provider_http, sessions, read_timeout_s=0.3, forms=DifyForms())

    reply = await adapter.run(chat_config(base_url), turn())

    assert reply.text == "Hello from Dify."


async def test_unreachable_dify_is_unavailable(chatflow: DifyChatflow) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await chatflow.run(chat_config("http://127.0.0.1:9/v1"), turn())

    assert caught.value.code == "connection_error"


async def test_workflow_outputs_become_name_value_lines(
    workflow: DifyWorkflow, dify: FakeDify, base_url: str, sessions: RedisSessions
) -> None:
    app = dify.apps[FLOW_KEY]
    app.outputs = {"result": "Bonjour le monde", "score": 3, "tags": ["a", "b"], "meta": {"ok": 1}}

    reply = await workflow.run(flow_config(base_url), turn())

    assert reply.text == 'result: Bonjour le monde\nscore: 3\ntags: ["a", "b"]\nmeta: {"ok": 1}'
    assert reply.usage == Usage(total_tokens=3)
    [sent] = runs(app, "/v1/workflows/run")
    assert sent.json == {
        "inputs": {**INPUTS, "COMMAND": ""},
        "user": USER,
        "response_mode": "streaming",
    }
    assert await sessions.get(SESSION_KEY) is None


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (RunFailed(), ProviderFailed),
        (StreamError(after_chunks=1), ProviderFailed),
        (DropConnection(after_chunks=1), ProviderUnavailable),
        (HttpError.too_many_requests(), ProviderUnavailable),
    ],
)
async def test_workflow_failures(
    workflow: DifyWorkflow,
    dify: FakeDify,
    base_url: str,
    fault: Any,
    error: type[ProviderError],
) -> None:
    dify.apps[FLOW_KEY].fail_next(fault)

    with pytest.raises(error):
        await workflow.run(flow_config(base_url), turn())


async def test_workflow_key_is_checked(workflow: DifyWorkflow, base_url: str) -> None:
    config = ProviderConfig(type="dify_workflow", base_url=base_url, api_key="app-nope")

    with pytest.raises(ProviderRejected, match="the Dify API key is not accepted"):
        await workflow.run(config, turn())


SECRET_VALUE = "Zebra-4471-private"


@pytest.mark.parametrize(
    "fault",
    [
        HttpError(400, "invalid_param", f"1 validation error\n input_value='{SECRET_VALUE}'"),
        HttpError(500, "internal_server_error", f"boom {SECRET_VALUE} {CHAT_KEY}"),
        StreamError(message=f"model said {SECRET_VALUE}", after_chunks=1),
        RunFailed(error=f"LLM node failed on {SECRET_VALUE}"),
        DropConnection(after_chunks=1),
    ],
)
async def test_errors_never_carry_the_key_or_an_input(
    chatflow: DifyChatflow, dify: FakeDify, base_url: str, fault: Any
) -> None:
    dify.apps[CHAT_KEY].fail_next(fault)
    request = turn(f"question {SECRET_VALUE}", **{**INPUTS, "MESSAGE": SECRET_VALUE})

    with pytest.raises(ProviderError) as caught:
        await chatflow.run(chat_config(base_url), request)

    assert_clean(caught.value)


async def test_too_long_and_unauthorized_errors_carry_no_secret(
    chatflow: DifyChatflow, base_url: str
) -> None:
    long_value = SECRET_VALUE * 5
    with pytest.raises(InputTooLong) as too_long:
        await chatflow.run(chat_config(base_url), turn(**{**INPUTS, "FIRST_NAME": long_value}))
    with pytest.raises(ProviderRejected) as refused:
        await chatflow.run(chat_config(base_url, api_key=f"app-{SECRET_VALUE}"), turn())

    assert_clean(too_long.value)
    assert_clean(refused.value)


def assert_clean(error: BaseException) -> None:
    texts = [str(error), repr(error.args), getattr(error, "code", "")]
    texts += [str(cause) for cause in (error.__cause__, error.__context__) if cause is not None]
    for text in texts:
        assert SECRET_VALUE not in text
        assert CHAT_KEY not in text


def test_provider_table_maps_each_type_to_its_adapter(
    provider_http: ProviderHttp, sessions: RedisSessions
) -> None:
    assert isinstance(provider_for("dify_chatflow", provider_http, sessions), DifyChatflow)
    assert isinstance(provider_for("dify_workflow", provider_http, sessions), DifyWorkflow)
    assert isinstance(provider_for("typebot", provider_http, sessions), TypebotAdapter)
    with pytest.raises(ProviderRejected) as caught:
        provider_for("botpress", provider_http, sessions)
    assert caught.value.code == "unknown_provider"


async def test_redis_sessions_keep_text_ids_with_their_ttl() -> None:
    redis = fakeredis.FakeAsyncRedis()
    sessions = RedisSessions(redis)

    await sessions.set(SESSION_KEY, "conv-1", 3600)

    assert await sessions.get(SESSION_KEY) == "conv-1"
    assert 3590 < await redis.ttl(SESSION_KEY) <= 3600
    await sessions.forget(SESSION_KEY)
    assert await sessions.get(SESSION_KEY) is None
    decoded = RedisSessions(fakeredis.FakeAsyncRedis(decode_responses=True))
    await decoded.set(SESSION_KEY, "conv-2", 60)
    assert await decoded.get(SESSION_KEY) == "conv-2"
