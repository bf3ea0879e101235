"""The flow's inputs and query for one turn: the seed's variable contract (DESIGN §5).

Every name is always present (``""`` when the event has no value) so a flow can declare them all.
Merged messages (``batch``) are one turn: the turn's event is the last of the batch and gives the
ids; ``MESSAGE`` joins the texts and ``MESSAGE_BATCH`` lists them one by one.

``file_id``/``file_type`` describe one file, the first attached in the turn, as the seed passes a
single id. The query of a command is ``/command params`` rebuilt from the event rather than the
message text: for a keyboard button the text is the bot's own message, and v1 and v2 then read
the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gateway.model import ChatEvent, FileRef

INPUT_NAMES = (
    "BOT_ID",
    "DIALOG_ID",
    "CHAT_ID",
    "MESSAGE_ID",
    "MESSAGE",
    "AUTHOR_ID",
    "FIRST_NAME",
    "LAST_NAME",
    "COMMAND_ID",
    "COMMAND",
    "COMMAND_PARAMS",
    "CHAT_TITLE",
    "LANGUAGE",
    "CHAT_ENTITY_DATA_1",
    "CHAT_ENTITY_DATA_2",
    "CHAT_ENTITY_ID",
    "file_id",
    "file_type",
    "client_endpoint",
    "scope",
)
BATCH_NAMES = ("MESSAGE_BATCH", "MESSAGE_BATCH_SIZE")
TOKEN_NAMES = ("user_access_token", "bot_access_token", "access_token")


def build_inputs(
    event: ChatEvent,
    *,
    batch: Sequence[ChatEvent] = (),
    pass_tokens: bool,
    installer_access_token: str = "",
) -> dict[str, str]:
    """Dify ``inputs`` / Typebot ``prefilledVariables``; tokens only when the bot allows it."""
    turn = _turn(event, batch)
    file = _first_file(turn)
    inputs = {
        "BOT_ID": str(event.bot_id),
        "DIALOG_ID": event.dialog_id,
        "CHAT_ID": event.chat_id,
        "MESSAGE_ID": event.message_id,
        "MESSAGE": _joined_text(turn),
        "AUTHOR_ID": event.author_id,
        "FIRST_NAME": event.first_name,
        "LAST_NAME": event.last_name,
        "COMMAND_ID": event.command_id,
        "COMMAND": event.command,
        "COMMAND_PARAMS": event.command_params,
        "CHAT_TITLE": event.chat_title,
        "LANGUAGE": event.language,
        "CHAT_ENTITY_DATA_1": event.chat_entity_data_1,
        "CHAT_ENTITY_DATA_2": event.chat_entity_data_2,
        "CHAT_ENTITY_ID": event.chat_entity_id,
        "file_id": file.id if file else "",
        "file_type": file.type if file else "",
        "client_endpoint": event.client_endpoint,
        "scope": event.scope,
    }
    if len(turn) > 1:
        inputs["MESSAGE_BATCH"] = json.dumps(
            [
                {"message": e.text, "message_id": e.message_id, "author_id": e.author_id}
                for e in turn
            ],
            ensure_ascii=False,
        )
        inputs["MESSAGE_BATCH_SIZE"] = str(len(turn))
    if pass_tokens:
        inputs["user_access_token"] = installer_access_token
        inputs["bot_access_token"] = event.bot_access_token
        inputs["access_token"] = event.access_token
    return inputs


def build_query(event: ChatEvent, batch: Sequence[ChatEvent] = ()) -> str:
    """What the flow is asked: the text, ``File sent: {name}``, ``/command params`` or the event."""
    if event.kind == "command":
        return f"/{event.command} {event.command_params}".strip()
    if event.kind != "message":
        # A join carries no message: the flow gets the event name so it can greet.
        return event.event_name
    turn = _turn(event, batch)
    text = _joined_text(turn)
    file = _first_file(turn)
    if not text and file is not None:
        return f"File sent: {file.name or file.id}"
    return text


def _turn(event: ChatEvent, batch: Sequence[ChatEvent]) -> Sequence[ChatEvent]:
    if not batch:
        return (event,)
    if batch[-1] != event:
        raise ValueError("the turn's event must be the last of its batch")
    return batch


def _joined_text(turn: Sequence[ChatEvent]) -> str:
    return "\n".join(e.text for e in turn if e.text)


def _first_file(turn: Sequence[ChatEvent]) -> FileRef | None:
    return next((file for e in turn for file in e.files), None)
