"""What Bitrix24 POSTs to the app: lifecycle events, classic bot events, the installer frame.

Every builder returns flat PHP-style form pairs (``auth[member_id]``, ``data[PARAMS][MESSAGE]``,
all values strings) exactly as §4 of shared/reference/bitrix24.md describes, so a test can send
them over HTTP with ``send_event`` or hand them to a Starlette ``TestClient``. Builders read the
portal's state and mint real tokens from the fake auth server; pair lifecycle builders with the
matching ``Portal`` call (``portal.uninstall()`` then ``app_uninstall(portal, clean=True)``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx2

from tests.fakes.bitrix24_model import Bot, Chat, Command, IncomingFile, User
from tests.fakes.bitrix24_php import FormPairs, encode, flatten
from tests.fakes.bitrix24_portal import Portal
from tests.fakes.bitrix24_tokens import TokenPair

EVENT_USER_AGENT = "Bitrix24 Webhook Engine"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def envelope(portal: Portal, event: str, data: dict[str, Any], auth: dict[str, Any]) -> FormPairs:
    """Top-level keys of every event (§4.1)."""
    return flatten(
        {
            "event": event,
            "event_handler_id": portal.handler_id(event),
            "data": data,
            "ts": int(portal.now()),
            "auth": auth,
        }
    )


def portal_auth(portal: Portal, *, application_token: bool = True) -> dict[str, Any]:
    """The token-less ``auth`` block (uninstall, payment, automation-triggered events)."""
    auth: dict[str, Any] = {
        "domain": portal.domain,
        "server_endpoint": portal.server_endpoint,
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
    }
    if application_token:
        auth["application_token"] = portal.application_token
    return auth


def token_auth(portal: Portal, pair: TokenPair, *, refresh: bool) -> dict[str, Any]:
    """The full ``auth`` block of §4.2 for the user the pair belongs to."""
    auth: dict[str, Any] = {
        "access_token": pair.access_token,
        "expires": pair.expires,
        "expires_in": pair.expires_in,
        "scope": pair.scope,
        "domain": portal.domain,
        "server_endpoint": portal.server_endpoint,
        "status": portal.status,
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
        "user_id": pair.user_id,
    }
    if refresh:
        auth["refresh_token"] = pair.refresh_token
    auth["application_token"] = portal.application_token
    return auth


# -- application lifecycle (§1.3, §1.4) ------------------------------------------------------


def app_install(portal: Portal, *, tokens: TokenPair | None = None) -> FormPairs:
    """``ONAPPINSTALL`` with the install token pair (refresh token included)."""
    data = {
        "VERSION": portal.app_version,
        "ACTIVE": "Y",
        "INSTALLED": "Y",
        "LANGUAGE_ID": portal.language,
    }
    auth = token_auth(portal, tokens or portal.auth, refresh=True)
    return envelope(portal, "ONAPPINSTALL", data, auth)


def app_update(
    portal: Portal, *, previous_version: int, tokens: TokenPair | None = None
) -> FormPairs:
    """``ONAPPUPDATE``; call ``portal.update_app(version)`` first so the token is the new one."""
    data = {
        "VERSION": portal.app_version,
        "PREVIOUS_VERSION": previous_version,
        "LANGUAGE_ID": portal.language,
    }
    auth = token_auth(portal, tokens or portal.issue_tokens(), refresh=True)
    return envelope(portal, "ONAPPUPDATE", data, auth)


def app_uninstall(portal: Portal, *, clean: bool) -> FormPairs:
    """``ONAPPUNINSTALL``: no tokens, only the application token to check (§1.4)."""
    data = {"LANGUAGE_ID": portal.language, "CLEAN": 1 if clean else 0}
    return envelope(portal, "ONAPPUNINSTALL", data, portal_auth(portal))


def app_payment(portal: Portal, *, status: str = "P", days: int = 30) -> FormPairs:
    """``ONAPPPAYMENT``; the documented example carries no ``application_token``."""
    data = {
        "CODE": portal.app_code,
        "VERSION": portal.app_version,
        "STATUS": status,
        "PAYMENT_EXPIRED": "Y" if portal.payment_expired else "N",
        "DAYS": days,
        "LANGUAGE_ID": portal.language,
    }
    return envelope(portal, "ONAPPPAYMENT", data, portal_auth(portal, application_token=False))


# -- installer / app page frame (§1.2) -------------------------------------------------------


@dataclass(frozen=True)
class FramePost:
    """The POST Bitrix24 makes when the admin opens the app: some params in the query."""

    query: FormPairs
    form: FormPairs


def installer_frame(
    portal: Portal,
    *,
    tokens: TokenPair | None = None,
    placement: str = "DEFAULT",
    placement_options: str | None = None,
    lang: str | None = None,
) -> FramePost:
    pair = tokens or portal.auth
    protocol = "0" if portal.client_endpoint.startswith("http://") else "1"
    query = [
        ("DOMAIN", portal.domain),
        ("PROTOCOL", protocol),
        ("LANG", lang or portal.language),
        ("APP_SID", secrets.token_hex(16)),
    ]
    form = [
        ("AUTH_ID", pair.access_token),
        ("AUTH_EXPIRES", str(pair.expires_in)),
        ("REFRESH_ID", pair.refresh_token),
        ("SERVER_ENDPOINT", portal.server_endpoint),
        ("APPLICATION_TOKEN", portal.application_token),
        ("APPLICATION_SCOPE", portal.scope),
        ("member_id", portal.member_id),
        ("status", portal.status),
        ("PLACEMENT", placement),
    ]
    if placement_options is not None:
        form.append(("PLACEMENT_OPTIONS", placement_options))
    return FramePost(query, form)


# -- classic bot events (§4.3 to §4.5, files §9.1) ----------------------------------------------


def bot_token_block(portal: Portal, bot: Bot, *, refresh: bool) -> dict[str, Any]:
    """``data[BOT][{id}]``: the bot's own tokens, flat and again under ``AUTH`` (§4.3)."""
    pair = portal.issue_tokens(bot.id)
    tokens = token_auth(portal, pair, refresh=refresh)
    tokens["client_id"] = portal.client_id
    return {**tokens, "AUTH": dict(tokens), "BOT_ID": bot.id, "BOT_CODE": bot.code}


def user_block(user: User) -> dict[str, Any]:
    return {
        "ID": user.id,
        "NAME": user.name,
        "FIRST_NAME": user.first_name,
        "LAST_NAME": user.last_name,
        "WORK_POSITION": user.work_position,
        "GENDER": user.gender,
        "IS_BOT": _yn(user.is_bot),
        "IS_CONNECTOR": _yn(user.is_connector),
        "IS_NETWORK": "N",
        "IS_EXTRANET": _yn(user.is_extranet),
    }


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _author_auth(portal: Portal, author: User, with_tokens: bool | None) -> dict[str, Any]:
    # Customers write from outside Bitrix24: no user session to lend tokens (§2.5), unless asked.
    if with_tokens is None:
        with_tokens = not author.is_connector
    if not with_tokens:
        return portal_auth(portal)
    return token_auth(portal, portal.issue_tokens(author.id), refresh=False)


def message_params(
    portal: Portal, bot: Bot, chat: Chat, author: User, text: str, message_id: int
) -> dict[str, Any]:
    """``data[PARAMS]`` of ``ONIMBOTMESSAGEADD`` for private, group and Open Channel chats."""
    params: dict[str, Any] = {
        "MESSAGE": text,
        "MESSAGE_ID": message_id,
        "MESSAGE_TYPE": chat.message_type,
        "CHAT_TYPE": chat.message_type,
        "DIALOG_ID": chat.dialog_id,
        "TO_CHAT_ID": chat.id,
        "FROM_USER_ID": author.id,
        "AUTHOR_ID": author.id,
        "TO_USER_ID": bot.id if chat.message_type in ("P", "C") else 0,
        "SYSTEM": "N",
    }
    if not chat.is_private:
        params.update(_chat_fields(chat))
    if chat.message_type == "C":
        params["MESSAGE_ORIGINAL"] = f"[USER={bot.id}]{bot.name}[/USER] {text}"
    params.update({"COMMAND_CONTEXT": "TEXTAREA", "PLATFORM_CONTEXT": "web"})
    params["LANGUAGE"] = portal.language
    return params


def _chat_fields(chat: Chat) -> dict[str, Any]:
    return {
        "CHAT_ID": chat.id,
        "CHAT_TITLE": chat.title,
        "CHAT_AUTHOR_ID": chat.owner_id,
        "CHAT_ENTITY_TYPE": chat.entity_type,
        "CHAT_ENTITY_ID": chat.entity_id,
        "CHAT_ENTITY_DATA_1": chat.entity_data_1,
        "CHAT_ENTITY_DATA_2": chat.entity_data_2,
        "CHAT_ENTITY_DATA_3": chat.entity_data_3,
    }


def file_block(portal: Portal, file: IncomingFile, chat: Chat, author: User) -> dict[str, Any]:
    """One ``data[PARAMS][FILES][{id}]`` entry; key set from CORE, unconfirmed by DOCS (§9.1)."""
    download = (
        f"{portal.uri}/bitrix/services/main/ajax.php?action=disk.api.file.download&fileId={file.id}"
    )
    image: dict[str, Any] | bool = (
        {"width": file.width, "height": file.height} if file.type == "image" else False
    )
    return {
        "id": file.id,
        "chatId": chat.id,
        "date": portal.iso_now(),
        "type": file.type,
        "name": file.name,
        "extension": file.extension,
        "size": file.size,
        "image": image,
        "status": "done",
        "progress": 100,
        "authorId": author.id,
        "authorName": author.name,
        "urlPreview": download if file.type == "image" else "",
        "urlShow": download,
        "urlDownload": download,
    }


def message_add(
    portal: Portal,
    bot: Bot,
    chat: Chat,
    author: User,
    text: str,
    *,
    files: tuple[IncomingFile, ...] = (),
    message_id: int | None = None,
    author_tokens: bool | None = None,
) -> FormPairs:
    """v1 ``ONIMBOTMESSAGEADD``; the message is remembered so replies can be matched to it."""
    message_id = portal.record_inbound(chat, author, text, message_id)
    params = message_params(portal, bot, chat, author, text, message_id)
    if files:
        params["PARAMS"] = {"FILE_ID": [f.id for f in files]}
        params["FILES"] = {str(f.id): file_block(portal, f, chat, author) for f in files}
    data = {
        "BOT": {str(bot.id): bot_token_block(portal, bot, refresh=True)},
        "PARAMS": params,
        "USER": user_block(author),
    }
    return envelope(portal, "ONIMBOTMESSAGEADD", data, _author_auth(portal, author, author_tokens))


def command_add(
    portal: Portal,
    command: Command,
    chat: Chat,
    author: User,
    *,
    command_params: str = "",
    context: str = "TEXTAREA",
    message_id: int | None = None,
    author_tokens: bool | None = None,
) -> FormPairs:
    """v1 ``ONIMCOMMANDADD``; ``data[COMMAND]`` is keyed by command id (§4.5)."""
    bot = portal.bots[command.bot_id]
    text = f"/{command.command} {command_params}".strip()
    message_id = portal.record_inbound(chat, author, text, message_id)
    entry = bot_token_block(portal, bot, refresh=True)
    entry.update(
        {
            "COMMAND": command.command,
            "COMMAND_ID": command.id,
            "COMMAND_PARAMS": command_params,
            "COMMAND_CONTEXT": context,
            "MESSAGE_ID": message_id,
        }
    )
    user = {
        k: v
        for k, v in user_block(author).items()
        if k in ("ID", "NAME", "FIRST_NAME", "LAST_NAME", "GENDER")
    }
    data = {
        "COMMAND": {str(command.id): entry},
        "PARAMS": message_params(portal, bot, chat, author, text, message_id),
        "USER": user,
    }
    return envelope(portal, "ONIMCOMMANDADD", data, _author_auth(portal, author, author_tokens))


def join_chat(portal: Portal, bot: Bot, chat: Chat, user: User) -> FormPairs:
    """v1 ``ONIMBOTJOINCHAT``; CORE sends no refresh token with it (§2.5)."""
    params: dict[str, Any] = {
        "CHAT_TYPE": chat.message_type,
        "MESSAGE_TYPE": chat.message_type,
        "BOT_ID": bot.id,
        "USER_ID": user.id,
        "DIALOG_ID": chat.dialog_id,
    }
    if chat.is_private:
        params.update({"TO_USER_ID": bot.id, "FROM_USER_ID": user.id})
    else:
        params.update(
            {
                "CHAT_ID": chat.id,
                "CHAT_AUTHOR_ID": chat.owner_id,
                "CHAT_ENTITY_TYPE": chat.entity_type,
                "CHAT_ENTITY_ID": chat.entity_id,
                "ACCESS_HISTORY": 1,
            }
        )
    params["LANGUAGE"] = portal.language
    data = {
        "BOT": {str(bot.id): bot_token_block(portal, bot, refresh=False)},
        "PARAMS": params,
        "USER": {k: v for k, v in user_block(user).items() if not k.startswith("IS_")},
    }
    return envelope(portal, "ONIMBOTJOINCHAT", data, _author_auth(portal, user, None))


def bot_delete(portal: Portal, bot: Bot) -> FormPairs:
    """v1 ``ONIMBOTDELETE``: only ``BOT_ID`` and ``BOT_CODE`` in ``data``."""
    data = {"BOT_ID": bot.id, "BOT_CODE": bot.code}
    return envelope(portal, "ONIMBOTDELETE", data, _author_auth(portal, portal.admin, None))


# -- delivery over HTTP --------------------------------------------------------------------


async def send_event(
    url: str, pairs: FormPairs, *, client: httpx2.AsyncClient | None = None
) -> httpx2.Response:
    """POST the pairs form-encoded, as the Bitrix24 queue server does."""
    headers = {"Content-Type": FORM_CONTENT_TYPE, "User-Agent": EVENT_USER_AGENT}
    return await _post(url, encode(pairs), headers, client)


async def open_frame(
    url: str, frame: FramePost, *, client: httpx2.AsyncClient | None = None
) -> httpx2.Response:
    """POST the installer/app frame request the admin's browser would make."""
    target = f"{url}{'&' if '?' in url else '?'}{encode(frame.query)}"
    return await _post(target, encode(frame.form), {"Content-Type": FORM_CONTENT_TYPE}, client)


async def _post(
    url: str, body: str, headers: dict[str, str], client: httpx2.AsyncClient | None
) -> httpx2.Response:
    if client is not None:
        return await client.post(url, content=body, headers=headers)
    async with httpx2.AsyncClient() as own_client:
        return await own_client.post(url, content=body, headers=headers)
