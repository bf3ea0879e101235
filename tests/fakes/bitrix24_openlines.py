"""Open Lines session methods for bots (``imopenlines.bot.session.*``), reference §5.1.

Only ``imopenlines.bot.session.operator`` is served: it hands an Open-Line chat whose session the
bot holds to the line's queue. ``CHAT_ID`` is the numeric chat id; like PHP's ``intval`` the fake
reads ``chat123`` as 0, which is ``CHAT_ID_EMPTY``. A chat that is not an Open-Line chat, or whose
session a human already holds, is ``WRONG_CHAT`` ("Operator is not a bot"). Not emulated: the
``WRONG_AUTH_TYPE`` refusal of session (browser) auth, and the queue's choice of an operator.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.bitrix24_model import OperatorHandoff, RestError
from tests.fakes.bitrix24_params import (
    Caller,
    Method,
    Params,
    bad_request,
    param_int,
    upper_keys,
)
from tests.fakes.bitrix24_portal import Portal


def bot_session_operator(portal: Portal, params: Params, caller: Caller) -> Any:
    params = upper_keys(params)
    chat_id = param_int(params, "CHAT_ID")
    if chat_id is None or chat_id <= 0:
        raise bad_request("CHAT_ID_EMPTY", "Chat ID can't be empty")
    session = portal.open_lines.get(chat_id)
    if session is None or session.holder != "bot":
        raise wrong_chat()
    session.holder = "operator"
    portal.handoffs.append(OperatorHandoff(chat_id, caller.user.id, portal.now()))
    return True


def wrong_chat() -> RestError:
    return bad_request("WRONG_CHAT", "Operator is not a bot")


METHODS_OPENLINES: dict[str, Method] = {
    "imopenlines.bot.session.operator": Method("imopenlines", bot_session_operator),
}
