"""One turn: from the events of a dialog to the flow's answer in the chat.

Quota and rate limits first (over the rate the turn waits; it is never dropped), then the bot's
configuration, the input variables, "typing" in the chat, the provider (retried with backoff while
it is unavailable), the reply, the usage. Failures never reach the chat as details: the customer
gets the bot's fallback text, the details go to the log and the dead-letter entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from billing import Billing, Deny, TurnUsage
from gateway.dialogs import Work
from gateway.model import ChatEvent
from gateway.providers import DifyForms, ProviderHttp, provider_for
from gateway.providers.base import Button, ProviderConfig, ProviderReply, Sessions, TurnRequest
from gateway.providers.errors import ProviderError, ProviderUnavailable
from gateway.render import resolve_choice
from gateway.sinks import ReplySink, hand_off_after_fallback
from gateway.turnsessions import TurnSessions
from gateway.variables import build_inputs, build_query
from tenants.autopipe import AutoPipeline
from tenants.bitrix24 import Bitrix24Error
from tenants.bots import BotDirectory, BotProfile
from tenants.buckets import Buckets, Rate
from tenants.clock import Clock
from tenants.metrics import (
    LIMITER_WAIT_SECONDS,
    PROVIDER_SECONDS,
    QUOTA_BLOCKS,
    RATE_LIMIT_HITS,
    TURN_SECONDS,
)
from tenants.store import TenantStore

log = logging.getLogger("bitbot.turns")

DEFAULT_FALLBACK = "Sorry, I cannot answer right now. Please try again a little later."
DONE_TTL_S = 86_400
TYPING_AFTER_S = 0.3


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    first_delay_s: float = 1.0
    factor: float = 4.0

    def delay(self, attempt: int) -> float:
        return self.first_delay_s * self.factor**attempt


@dataclass(frozen=True)
class TurnOutcome:
    failure: str | None = None  # None: answered (or nothing to answer)
    summary: str = ""


class Turns:
    def __init__(
        self,
        *,
        bots: BotDirectory,
        store: TenantStore,
        billing: Billing,
        buckets: Buckets,
        http: ProviderHttp,
        sessions: Sessions,
        redis: Redis,
        clock: Clock,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._bots = bots
        self._store = store
        self._billing = billing
        self._buckets = buckets
        self._http = http
        self._sessions = sessions
        self._forms = DifyForms()  # the input forms of the Dify apps this worker talks to
        self._redis: Any = redis
        self._batched = AutoPipeline.of(redis)  # the per-turn reads and writes of concurrent turns
        self._turn_sessions: dict[str, TurnSessions] = {}  # session key -> its running turn's
        self._clock = clock
        self._retry = retry or RetryPolicy()

    async def run(
        self, works: list[Work], sink: ReplySink, profile: BotProfile | None
    ) -> TurnOutcome:
        event = works[-1].event
        tenant = works[-1].tenant
        if profile is None:
            log.info("event for unknown bot %s of tenant %s dropped", event.bot_id, tenant.id)
            return TurnOutcome()
        session_key = _session_key(tenant.member_id, event)
        # One round trip for what the turn reads: done marks, offered choices, the session id,
        # and a place in the rate buckets (taken even for a redelivery; it only counts it).
        (*answered, raw_choices, session), wait = await asyncio.gather(
            self._batched.call(
                "MGET",
                *(_done_key(tenant.id, work.event) for work in works),
                f"{session_key}:choices",
                session_key,
            ),
            self._reserve_rate(tenant.id, event),
        )
        fresh = [work for work, done in zip(works, answered, strict=True) if not done]
        if not fresh:
            return TurnOutcome()
        verdict = await self._billing.check_turn(tenant.id)
        if isinstance(verdict, Deny):
            QUOTA_BLOCKS.inc()
            if verdict.text:
                await sink.say(event, verdict.text)
            await self._mark_done(tenant.id, fresh)
            return TurnOutcome()
        if wait > 0:
            RATE_LIMIT_HITS.labels("events").inc()
            LIMITER_WAIT_SECONDS.labels("events").observe(wait)
            await self._clock.sleep(wait)
        sessions = TurnSessions(self._sessions, session_key, _text_or_none(session))
        self._turn_sessions[session_key] = sessions
        try:
            outcome = await self._answer(fresh, sink, profile, _buttons(raw_choices))
        except BaseException:
            del self._turn_sessions[session_key]
            await sessions.save()
            raise
        del self._turn_sessions[session_key]
        # Issued together, the session id and the done marks leave in one pipeline.
        await asyncio.gather(sessions.save(), self._mark_done(tenant.id, fresh))
        return outcome

    async def _answer(
        self, works: list[Work], sink: ReplySink, profile: BotProfile, choices: list[Button]
    ) -> TurnOutcome:
        event = works[-1].event
        batch = [work.event for work in works] if len(works) > 1 else []
        tenant = works[-1].tenant
        try:
            request = await self._request(event, batch, profile, tenant.member_id, choices, sink)
            reply = await self._ask(sink, event, profile, request)
            sent = await sink.deliver(event, reply) if reply.text or reply.buttons else 0
            TURN_SECONDS.labels(profile.provider_type).observe(time.time() - works[0].received_at)
            if reply.buttons or choices:
                await self._remember_choices(request.session_key, reply)
        except ProviderError as error:
            return await self._fail(works, sink, profile, f"provider: {error}", error.code)
        except Bitrix24Error as error:
            # The reply could not be delivered; telling the chat would fail the same way.
            log.warning("reply to tenant %s failed: %s", tenant.id, error.code)
            return TurnOutcome(f"bitrix24: {error.code}", _summary(event, profile))
        usage = reply.usage
        await self._billing.record(
            tenant.id,
            TurnUsage(
                messages_in=len(works),
                replies_out=sent,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            ),
        )
        return TurnOutcome()

    async def _ask(
        self, sink: ReplySink, event: ChatEvent, profile: BotProfile, request: TurnRequest
    ) -> ProviderReply:
        # "Typing" shows once the flow takes a noticeable time: an answer that comes at once needs
        # none, and would wait behind it (both leave through the portal's one queue, in order).
        typing = asyncio.get_running_loop().call_later(TYPING_AFTER_S, sink.typing, event)
        try:
            return await self._call_provider(profile, request)
        finally:
            typing.cancel()

    async def _request(
        self,
        event: ChatEvent,
        batch: list[ChatEvent],
        profile: BotProfile,
        member_id: str,
        choices: list[Button],
        sink: ReplySink,
    ) -> TurnRequest:
        installer_token = ""
        if profile.pass_tokens:
            tokens = await self._store.tokens(profile.tenant_id)
            installer_token = tokens.access_token if tokens else ""
        session_key = _session_key(member_id, event)
        query = build_query(event, batch)
        if choices:
            query = resolve_choice(query, choices)
        # An adapter that takes files (Dify) fetches them from ``files``; the others ignore them.
        # The variables below describe the first one either way.
        attachments = tuple(file for e in batch or [event] for file in e.files)
        files = sink.files(event) if attachments else None
        return TurnRequest(
            query=query,
            inputs=build_inputs(
                event,
                batch=batch,
                pass_tokens=profile.pass_tokens,
                installer_access_token=installer_token,
            ),
            user=f"{member_id}:{event.dialog_id}",
            session_key=session_key,
            session_ttl_s=profile.session_ttl_s,
            greeting=event.kind == "join",
            attachments=attachments if files is not None else (),
            files=files,
        )

    async def _call_provider(self, profile: BotProfile, request: TurnRequest) -> ProviderReply:
        sessions = self._turn_sessions.get(request.session_key, self._sessions)
        provider = provider_for(profile.provider_type, self._http, sessions, self._forms)
        config = ProviderConfig(
            type=profile.provider_type,
            base_url=profile.base_url,
            api_key=profile.api_key,
            typebot_start_url=profile.typebot_start_url,
        )
        for attempt in range(self._retry.attempts):
            started = time.perf_counter()
            try:
                reply = await provider.run(config, request)
            except ProviderError as error:
                elapsed = time.perf_counter() - started
                PROVIDER_SECONDS.labels(config.type, error.code or "error").observe(elapsed)
                if (
                    not isinstance(error, ProviderUnavailable)
                    or attempt + 1 == self._retry.attempts
                ):
                    raise
                await self._clock.sleep(self._retry.delay(attempt))
                continue
            PROVIDER_SECONDS.labels(config.type, "ok").observe(time.perf_counter() - started)
            return reply
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _fail(
        self, works: list[Work], sink: ReplySink, profile: BotProfile, reason: str, code: str
    ) -> TurnOutcome:
        event = works[-1].event
        log.warning("turn for bot %s failed: %s", profile.id, reason)
        fallback_sent = True
        try:
            await sink.say(event, profile.fallback_text or DEFAULT_FALLBACK)
        except Bitrix24Error as error:
            log.warning("fallback to tenant %s failed: %s", profile.tenant_id, error.code)
            fallback_sent = False
        summary = _summary(event, profile, code)
        if profile.handoff_on_failure:
            # After the fallback has been sent, so the customer reads it before the operator.
            handoff = await hand_off_after_fallback(sink, event, fallback_sent)
            summary = f"{summary} {handoff.summary()}"
        return TurnOutcome(reason, summary)

    async def _reserve_rate(self, tenant_id: int, event: ChatEvent) -> float:
        limits = await self._billing.limits(tenant_id)
        return await self._buckets.reserve_all(
            [
                (f"bitbot:rate:{tenant_id}", Rate.per_minute(limits.events_per_minute_per_tenant)),
                (
                    f"bitbot:rate:{tenant_id}:{event.bot_id}:{event.dialog_id}",
                    Rate.per_minute(limits.events_per_minute_per_dialog),
                ),
            ]
        )

    async def _mark_done(self, tenant_id: int, works: list[Work]) -> None:
        await self._batched.call_many(
            [("SET", _done_key(tenant_id, work.event), "1", "EX", DONE_TTL_S) for work in works]
        )

    async def _remember_choices(self, session_key: str, reply: ProviderReply) -> None:
        key = f"{session_key}:choices"
        if not reply.buttons:
            await self._redis.delete(key)
            return
        items = [{"text": b.text, "value": b.value} for b in reply.buttons]
        await self._redis.set(key, json.dumps(items), ex=DONE_TTL_S)


def _text_or_none(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


def _buttons(raw: bytes | None) -> list[Button]:
    return [Button(item["text"], item["value"]) for item in json.loads(raw)] if raw else []


def _session_key(member_id: str, event: ChatEvent) -> str:
    return f"bitbot:{member_id}:{event.bot_id}:{event.dialog_id}"


def _done_key(tenant_id: int, event: ChatEvent) -> str:
    return f"bitbot:done:{tenant_id}:{event.dedup_key}"


def _summary(event: ChatEvent, profile: BotProfile, code: str = "") -> str:
    """What the dead-letter view may show: ids and kinds, never text, inputs or tokens."""
    parts = [
        f"event={event.event_name}",
        f"bot={profile.id}",
        f"dialog={event.dialog_id}",
        f"message={event.message_id}",
        f"provider={profile.provider_type}",
    ]
    if code:
        parts.append(f"code={code}")
    return " ".join(parts)
