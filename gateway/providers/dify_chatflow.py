"""Dify Chatflow adapter (``/chat-messages``): a Dify workflow run inside a conversation.

The conversation id comes from the stream and is kept in ``Sessions`` under the dialog's key.
"""

from __future__ import annotations

from gateway.providers.base import ProviderConfig, ProviderReply, TurnRequest, Usage
from gateway.providers.dify_workflow import JSON, DifyAdapter, check_run, positive_int
from gateway.providers.errors import ProviderRejected


class DifyChatflow(DifyAdapter):
    """``dify_chatflow``: one conversation per dialog, its id kept in ``Sessions``."""

    async def _turn(self, config: ProviderConfig, request: TurnRequest) -> ProviderReply:
        inputs = await self._inputs(config, request)
        files = await self._upload_files(config, request)
        conversation_id = await self._sessions.get(request.session_key)
        try:
            answer = await self._ask(config, request, inputs, files, conversation_id)
        except ProviderRejected as error:
            gone = error.status == 404 or error.code == "conversation_completed"
            if conversation_id is None or not gone:
                raise
            await self._sessions.forget(request.session_key)
            answer = await self._ask(config, request, inputs, files, None)
        if answer.conversation_id:
            await self._sessions.set(
                request.session_key, answer.conversation_id, request.session_ttl_s
            )
        return ProviderReply(text="".join(answer.parts), usage=answer.usage)

    async def _ask(
        self,
        config: ProviderConfig,
        request: TurnRequest,
        inputs: dict[str, str],
        files: list[JSON],
        conversation_id: str | None,
    ) -> _ChatAnswer:
        body: JSON = {
            "query": request.query,
            "inputs": inputs,
            "user": request.user,
            "response_mode": "streaming",
        }
        if conversation_id:
            body["conversation_id"] = conversation_id
        if files:
            body["files"] = files
        answer = _ChatAnswer()
        await self._run(config, "/chat-messages", body, answer)
        return answer


class _ChatAnswer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.conversation_id: str | None = None
        self.usage: Usage | None = None
        self.finished = False

    def feed(self, event: JSON) -> None:
        kind = event.get("event")
        conversation_id = event.get("conversation_id")
        if isinstance(conversation_id, str) and conversation_id:
            self.conversation_id = conversation_id
        if kind in ("message", "agent_message"):
            self.parts.append(str(event.get("answer") or ""))
        elif kind == "message_replace":
            self.parts = [str(event.get("answer") or "")]
        elif kind == "message_end":
            metadata = event.get("metadata")
            self.usage = _usage(metadata.get("usage") if isinstance(metadata, dict) else None)
            self.finished = True
        elif kind == "workflow_finished":
            check_run(event.get("data"))
            self.finished = True


def _usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = positive_int(raw.get("prompt_tokens"))
    completion = positive_int(raw.get("completion_tokens"))
    total = positive_int(raw.get("total_tokens")) or prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
