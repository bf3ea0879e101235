"""The JSON Dify puts on the wire for one run: stream events and blocking bodies.

Shapes follow reference dify-typebot.md §A1/§A2 and Dify's response converters: a chat stream
wraps every event in ``conversation_id``/``message_id``/``created_at``, a workflow stream in
``workflow_run_id``; ``error`` events carry the error fields but no ``task_id``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.fakes.clock import Clock

JSON = dict[str, Any]

PING = b"event: ping\n\n"


def sse(event: JSON) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True)
class Node:
    node_id: str
    node_type: str
    title: str
    index: int
    predecessor_node_id: str | None


START = Node("start", "start", "Start", 1, None)
LLM = Node("llm", "llm", "LLM", 2, "start")
ANSWER = Node("answer", "answer", "Answer", 3, "llm")
END = Node("end", "end", "End", 3, "llm")


@dataclass
class RunIds:
    """Identifiers and timing of one run; chat runs also have a message and a conversation."""

    workflow_id: str
    user: str
    clock: Clock
    conversation_id: str | None = None
    task_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    workflow_run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.perf_counter)
    created_at: int = field(init=False)

    def __post_init__(self) -> None:
        self.created_at = self.now()

    def now(self) -> int:
        return int(self.clock())

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.started, 6)


class RunEvents:
    """Builds the events of one run in the shape of its app type."""

    def __init__(self, ids: RunIds, inputs: JSON, *, chat: bool) -> None:
        self.ids = ids
        self.inputs = inputs
        self.chat = chat
        self._executions: dict[str, tuple[str, float]] = {}

    def workflow_started(self) -> JSON:
        data = {
            "id": self.ids.workflow_run_id,
            "workflow_id": self.ids.workflow_id,
            "inputs": self.inputs,
            "created_at": self.ids.created_at,
            "reason": "initial",
        }
        return self._event("workflow_started", workflow_run_id=self.ids.workflow_run_id, data=data)

    def node_started(self, node: Node) -> JSON:
        execution_id = str(uuid.uuid4())
        self._executions[node.node_id] = (execution_id, time.perf_counter())
        data = {
            **self._node_data(node, execution_id),
            "extras": {},
            "iteration_id": None,
            "loop_id": None,
        }
        return self._event("node_started", workflow_run_id=self.ids.workflow_run_id, data=data)

    def node_finished(
        self, node: Node, *, outputs: JSON | None = None, error: str | None = None
    ) -> JSON:
        execution_id, started = self._executions[node.node_id]
        data = {
            **self._node_data(node, execution_id),
            "process_data": None,
            "outputs": outputs,
            "status": "failed" if error else "succeeded",
            "error": error,
            "elapsed_time": round(time.perf_counter() - started, 6),
            "execution_metadata": None,
            "finished_at": self.ids.now(),
            "files": [],
        }
        return self._event("node_finished", workflow_run_id=self.ids.workflow_run_id, data=data)

    def workflow_finished(self, result: JSON) -> JSON:
        data = {
            **result,
            "created_by": {"id": end_user_id(self.ids.user), "user": self.ids.user},
            "exceptions_count": 0,
            "files": [],
        }
        return self._event("workflow_finished", workflow_run_id=self.ids.workflow_run_id, data=data)

    def message(self, delta: str) -> JSON:
        return self._event("message", id=self.ids.message_id, answer=delta)

    def message_end(self, usage: JSON) -> JSON:
        metadata = {"usage": usage, "retriever_resources": []}
        return self._event("message_end", id=self.ids.message_id, metadata=metadata)

    def text_chunk(self, text: str, variable: str) -> JSON:
        data = {"text": text, "from_variable_selector": [END.node_id, variable]}
        return self._event("text_chunk", workflow_run_id=self.ids.workflow_run_id, data=data)

    def error(self, code: str, status: int, message: str) -> JSON:
        return {**self._envelope("error"), "code": code, "status": status, "message": message}

    def run_result(self, *, status: str, outputs: JSON, error: str | None, tokens: int) -> JSON:
        """``data`` of a blocking workflow reply; the streaming ``workflow_finished`` adds to it."""
        return {
            "id": self.ids.workflow_run_id,
            "workflow_id": self.ids.workflow_id,
            "status": status,
            "outputs": outputs,
            "error": error,
            "elapsed_time": self.ids.elapsed(),
            "total_tokens": tokens,
            "total_steps": 3 if status == "succeeded" else 2,
            "created_at": self.ids.created_at,
            "finished_at": self.ids.now(),
        }

    def _node_data(self, node: Node, execution_id: str) -> JSON:
        return {
            "id": execution_id,
            "node_id": node.node_id,
            "node_type": node.node_type,
            "title": node.title,
            "index": node.index,
            "predecessor_node_id": node.predecessor_node_id,
            "inputs": self.inputs if node is START else None,
            "created_at": self.ids.created_at,
        }

    def _envelope(self, event: str) -> JSON:
        if self.chat:
            return {
                "event": event,
                "conversation_id": self.ids.conversation_id,
                "message_id": self.ids.message_id,
                "created_at": self.ids.created_at,
            }
        return {"event": event, "workflow_run_id": self.ids.workflow_run_id}

    def _event(self, event: str, **payload: Any) -> JSON:
        return {**self._envelope(event), "task_id": self.ids.task_id, **payload}


def chat_reply(ids: RunIds, answer: str, usage: JSON) -> JSON:
    """Body of a blocking ``/chat-messages`` reply (``ChatCompletionResponse``)."""
    return {
        "event": "message",
        "task_id": ids.task_id,
        "id": ids.message_id,
        "message_id": ids.message_id,
        "conversation_id": ids.conversation_id,
        "mode": "advanced-chat",
        "answer": answer,
        "metadata": {"usage": usage, "retriever_resources": []},
        "created_at": ids.created_at,
    }


def workflow_reply(events: RunEvents, result: JSON) -> JSON:
    return {
        "task_id": events.ids.task_id,
        "workflow_run_id": events.ids.workflow_run_id,
        "data": result,
    }


_UNIT_PRICE = Decimal("0.001")
_PRICE_UNIT = Decimal("0.001")
_PRICE_PLACES = Decimal("0.0000001")


def count_tokens(text: str) -> int:
    """The fake's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def usage(prompt: str, completion: str, latency: float) -> JSON:
    prompt_tokens, completion_tokens = count_tokens(prompt), count_tokens(completion)
    prompt_price = _price(prompt_tokens)
    completion_price = _price(completion_tokens)
    return {
        "prompt_tokens": prompt_tokens,
        "prompt_unit_price": str(_UNIT_PRICE),
        "prompt_price_unit": str(_PRICE_UNIT),
        "prompt_price": str(prompt_price),
        "completion_tokens": completion_tokens,
        "completion_unit_price": str(_UNIT_PRICE),
        "completion_price_unit": str(_PRICE_UNIT),
        "completion_price": str(completion_price),
        "total_tokens": prompt_tokens + completion_tokens,
        "total_price": str(prompt_price + completion_price),
        "currency": "USD",
        "latency": round(latency, 3),
    }


def _price(tokens: int) -> Decimal:
    return (tokens * _UNIT_PRICE * _PRICE_UNIT).quantize(_PRICE_PLACES)


def end_user_id(user: str) -> str:
    """Dify keys an end user by a UUID of its own; derive a stable one from ``user``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dify-end-user:{user}"))
