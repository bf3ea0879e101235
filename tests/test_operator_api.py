"""The operator JSON API: bearer tokens (shown once, kept as a hash, revocable) and its routes."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from admin_ui.operator.schema import operator_tokens
from billing import Subscriptions
from tenants.runtime import Runtime
from tenants.schema import operators
from tests.conftest import SteppedClock
from tests.operator_kit import (
    Operator,
    a_bot,
    a_dead_letter,
    a_provider,
    a_tenant,
    audit_rows,
    signed_in,
)

TOKEN = re.compile(r'<code class="token" id="new-token">(bbo_[A-Za-z0-9_-]{43})</code>')
PLAN = {
    "code": "pro",
    "name": "Pro",
    "monthly_messages": 10_000,
    "max_bots": None,
    "events_per_minute_tenant": 600,
    "events_per_minute_dialog": 30,
    "over_quota_text": {"en": "Out of answers this month."},
}


async def new_token(operator: Operator, name: str = "billing sync") -> str:
    created = await operator.post("/operator/tokens", {"name": name})
    assert created.status_code == 201
    found = TOKEN.search(created.text)
    assert found is not None, created.text
    return found.group(1)


class Api:
    def __init__(self, url: str, http: httpx2.AsyncClient, token: str) -> None:
        self.url, self.http = url + "/operator/api", http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        return await self.http.request(
            method, self.url + path, json=body, params=params, headers=self.headers
        )

    async def get(self, path: str, **params: str) -> Any:
        return await self.call("GET", path, **params)


async def test_a_token_is_shown_once_and_stored_as_a_hash(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        token = await new_token(operator)
        listing = html.unescape((await operator.get("/operator/tokens")).text)
        assert "billing sync" in listing
        assert token not in listing
        assert (await operator.post("/operator/tokens", {"name": " "})).status_code == 400
    async with migrated.engine.connect() as connection:
        (row,) = (await connection.execute(sa.select(operator_tokens))).all()
    assert token.encode() not in row.token_hash
    assert len(row.token_hash) == 32
    assert token not in repr(await audit_rows(migrated))


async def test_the_api_wants_a_live_token(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        token = await new_token(operator)
        api = Api(operator.url, http, token)
        assert (await api.get("/tenants")).status_code == 200

        nothing = await http.get(api.url + "/tenants")
        assert nothing.status_code == 401
        assert nothing.json() == {
            "error": {
                "code": "unauthorized",
                "message": "send Authorization: Bearer <token>",
                "fields": {},
            }
        }
        cookie_only = await http.get(
            api.url + "/tenants", headers={"Cookie": f"bitbot_operator={operator.cookie}"}
        )
        assert cookie_only.status_code == 401
        forged = Api(operator.url, http, "bbo_" + "A" * 43)
        assert (await forged.get("/tenants")).json()["error"]["code"] == "invalid_token"

        (token_id,) = [r["details"]["token"] for r in await audit_rows(migrated, "token.create")]
        revoked = await operator.post(f"/operator/tokens/{token_id}/revoke")
        assert revoked.headers["location"] == "/operator/tokens?done=token_revoked"
        after = await api.get("/tenants")
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "invalid_token"


async def test_a_disabled_operators_tokens_stop_working(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        api = Api(operator.url, http, await new_token(operator))
        async with migrated.engine.begin() as connection:
            await connection.execute(sa.update(operators).values(disabled=True))
        assert (await api.get("/plans")).status_code == 401


async def test_tenants_are_read_and_changed_through_the_api(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    await a_tenant(migrated, "globex")
    await a_bot(migrated, tenant_id, await a_provider(migrated))
    letter = await a_dead_letter(migrated, tenant_id, "acme-member")
    async with signed_in(migrated, http, clock) as operator:
        api = Api(operator.url, http, await new_token(operator))
        found = (await api.get("/tenants", q="acme")).json()
        assert [t["domain"] for t in found["tenants"]] == ["acme.bitrix24.com"]
        assert found["total"] == 1

        base = f"/tenants/{tenant_id}"
        assert (await api.call("POST", base + "/trial", {"days": 3})).status_code == 200
        changed = await api.call("POST", base + "/plan", {"plan": "business"})
        assert changed.json()["state"] == "active"
        assert (await api.call("POST", base + "/suspend")).json()["state"] == "suspended"
        assert (await api.call("POST", base + "/resume")).json()["state"] == "active"
        refused = await api.call("POST", base + "/trial", {"days": 3})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "subscription_refused"
        no_plan = await api.call("POST", base + "/plan", {})
        assert no_plan.json()["error"]["fields"] == {"plan": "a plan code"}
        assert (await api.call("POST", base + "/plan", {"plan": "gold"})).status_code == 404

        tenant = (await api.get(base)).json()
        assert tenant["tenant"]["member_id"] == "acme-member"
        assert tenant["plan"]["code"] == "business"
        assert [b["name"] for b in tenant["bots"]] == ["Concierge"]
        assert "application_token_hash" not in tenant["tenant"]
        usage = await api.get(base + "/usage", **{"from": "2026-01-01", "to": "2026-01-03"})
        assert usage.json() == {"from": "2026-01-01", "to": "2026-01-03", "days": []}

        letters = (await api.get(base + "/dead-letters")).json()["dead_letters"]
        assert [d["entry_id"] for d in letters] == [letter]
        replayed = await api.call("POST", f"{base}/dead-letters/{letter}/replay")
        assert replayed.json()["replayed"] == letter
        assert (await api.get("/tenants/999")).status_code == 404
    api_rows = [r for r in await audit_rows(migrated) if r["details"].get("via") == "api"]
    assert [r["action"] for r in api_rows] == [
        "tenant.extend_trial",
        "tenant.change_plan",
        "tenant.suspend",
        "tenant.resume",
        "dead_letter.replay",
    ]
    assert all(r["details"]["token"] == api_rows[0]["details"]["token"] for r in api_rows)


async def test_plans_through_the_api_keep_their_invariants(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    tenant_id = await a_tenant(migrated, "acme")
    await Subscriptions(migrated.engine, clock).start_trial(tenant_id)
    async with signed_in(migrated, http, clock) as operator:
        api = Api(operator.url, http, await new_token(operator))
        created = await api.call("POST", "/plans", PLAN)
        assert created.status_code == 201
        plan_id = created.json()["id"]
        negative = await api.call("PUT", f"/plans/{plan_id}", {**PLAN, "monthly_messages": -1})
        assert negative.status_code == 422
        assert negative.json()["error"] == {
            "code": "plan_refused",
            "message": "the monthly message quota cannot be negative (got -1); leave it empty"
            " for unlimited",
            "fields": {},
        }
        wrong = await api.call("PUT", f"/plans/{plan_id}", {**PLAN, "active": "yes", "x": 1})
        assert wrong.json()["error"]["fields"] == {"x": "not a plan field"}
        typed = await api.call("PUT", f"/plans/{plan_id}", {**PLAN, "max_bots": True})
        assert typed.json()["error"]["fields"] == {"max_bots": "wrong type: int or NoneType"}
        assert (await api.call("POST", "/plans", "not json")).status_code == 400
        broken = await http.post(api.url + "/plans", content=b"{", headers=api.headers)
        assert broken.json()["error"]["message"] == "the body is not valid JSON"
        plans = (await api.get("/plans")).json()["plans"]
        trial = next(p for p in plans if p["code"] == "trial")
        assert trial["subscriptions"] == 1
        in_use = await api.call("DELETE", f"/plans/{trial['id']}")
        assert in_use.status_code == 422
        assert "default trial" in in_use.json()["error"]["message"]
        assert (await api.call("DELETE", f"/plans/{plan_id}")).status_code == 204
        assert (await api.get(f"/plans/{plan_id}")).status_code == 404


async def test_providers_through_the_api(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    used = await a_provider(migrated, "Dify cloud")
    await a_bot(migrated, await a_tenant(migrated, "acme"), used)
    async with signed_in(migrated, http, clock) as operator:
        api = Api(operator.url, http, await new_token(operator))
        body = {"name": "Typebot", "type": "typebot", "base_url": "https://typebot.io"}
        created = await api.call("POST", "/providers", body)
        assert created.status_code == 201
        assert created.json()["label"] == "Typebot (Typebot)"
        refused = await api.call("DELETE", f"/providers/{used}")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "refused"
        bad = await api.call("POST", "/providers", {"name": 1, "type": "typebot"})
        assert bad.json()["error"]["fields"] == {"name": "a string", "base_url": "a string"}
        listed = (await api.get("/providers")).json()["providers"]
        assert [(p["name"], p["connectors"]) for p in listed] == [("Dify cloud", 1), ("Typebot", 0)]
        gone = await api.call("DELETE", f"/providers/{created.json()['id']}")
        assert gone.status_code == 204


@pytest.mark.parametrize("path", ["/nothing", "/tenants/1/explode"])
async def test_unknown_api_paths_answer_json(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock, path: str
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        response = await http.get(operator.url + "/operator/api" + path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_audit_and_csv_through_the_api(
    migrated: Runtime, http: httpx2.AsyncClient, clock: SteppedClock
) -> None:
    async with signed_in(migrated, http, clock) as operator:
        api = Api(operator.url, http, await new_token(operator))
        entries = (await api.get("/audit", action="token.create")).json()["entries"]
        assert [e["action"] for e in entries] == ["token.create"]
        assert entries[0]["actor_email"] == "ops@bitbot.example.com"
        csv = await api.get("/usage.csv", **{"from": "2026-01-01", "to": "2026-01-02"})
        assert csv.text.startswith("tenant_id,member_id,domain,day,")
