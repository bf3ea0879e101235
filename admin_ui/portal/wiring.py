"""The portal UI's services, built once per admin app from the process runtime."""

from __future__ import annotations

from dataclasses import dataclass

import httpx2

from admin_ui.portal.auth import AppPageAuth
from admin_ui.portal.avatar import Avatars
from admin_ui.portal.bots import BotService
from admin_ui.portal.commands import CommandService
from admin_ui.portal.commandsync import CommandSync
from admin_ui.portal.connectors import ConnectorService
from admin_ui.portal.context import Gate
from admin_ui.portal.options import PortalOptions
from admin_ui.portal.plan import PlanReader
from admin_ui.portal.providercheck import ConnectionCheck
from admin_ui.portal.session import SessionSigner
from admin_ui.portal.sync import BotSync
from admin_ui.portal.testchat import TestChat
from tenants.bitrix24 import Services
from tenants.queue import Queue
from tenants.runtime import Runtime


@dataclass(frozen=True)
class Portal:
    gate: Gate
    auth: AppPageAuth
    connectors: ConnectorService
    checks: ConnectionCheck
    bots: BotService
    commands: CommandService
    testchat: TestChat
    plan: PlanReader
    public_url: str | None


def build_portal(
    runtime: Runtime, services: Services, http: httpx2.AsyncClient, options: PortalOptions
) -> Portal:
    settings = runtime.settings
    assert settings.hash_key is not None  # build_runtime refuses to start without it
    signer = SessionSigner(settings.hash_key, services.clock)
    guard = services.guard
    bot_sync = BotSync(runtime.engine, services, settings.public_url)
    bots = BotService(runtime.engine, services.store, guard, Avatars(http, guard), bot_sync)
    queue = Queue(runtime.redis, runtime.vault, settings.queue_shards)
    return Portal(
        gate=Gate(signer, services.store),
        auth=AppPageAuth(services, signer, options),
        connectors=ConnectorService(runtime.engine, runtime.vault, guard),
        checks=ConnectionCheck(http, guard),
        bots=bots,
        commands=CommandService(runtime.engine, bots, CommandSync(runtime.engine, bot_sync)),
        testchat=TestChat(runtime.redis, queue, services.clock),
        plan=PlanReader(runtime.engine, runtime.redis, services.clock),
        public_url=settings.public_url,
    )
