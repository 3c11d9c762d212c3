"""The action endpoints against the real Entra emulator and a real stand-in broker server."""

from __future__ import annotations

import base64
import json
import time

from emulators.entra import demo
from minimal_client.broker import decode_unverified

from .flows import action, authorize, csrf_token, finish, sign_in

EXP = int(time.time()) + 3600


def _jwt(claims: dict) -> str:
    def seg(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{seg({'alg': 'RS256', 'typ': 'JWT'})}.{seg(claims)}.c2lnbmF0dXJl"


def _claims(token: str) -> dict:
    decoded = decode_unverified(token)
    assert decoded is not None
    return decoded["claims"]


def _assert_broker_token(request) -> None:
    auth = request.headers["Authorization"]
    assert auth.startswith("Bearer ")
    claims = _claims(auth.removeprefix("Bearer "))
    assert claims["aud"] in (demo.BROKER_CLIENT_ID, demo.BROKER_APP_ID_URI)
    assert "user_impersonation" in claims["scp"].split()
    assert claims["oid"] == demo.ALICE_OID and claims["azp"] == demo.CLIENT_ID


async def test_a_broker_error_is_returned_exactly_as_the_broker_sent_it(client, idp, broker):
    refusal = {"error": "consent_required", "error_description": "AADSTS65001: no consent",
               "extra": {"nested": [1, 2]}}
    broker.answers[("POST", "/api/token/obo/workspace")] = (403, refusal)
    await sign_in(client, idp)
    resp = await action(client, "/action/obo/workspace")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == 403
    assert body["broker_response"] == refusal
    assert body["decoded"] is None and body["expires_at"] is None
    (seen,) = broker.seen
    _assert_broker_token(seen)
    assert seen.headers["X-Request-Id"] == body["request_id"]


async def test_the_teams_action_sends_both_tokens_and_decodes_the_answer(client, idp, broker):
    acs_token = _jwt({"skypeid": "acs:alice", "scp": 1024, "exp": EXP})
    broker.answers[("GET", "/api/token/teams")] = (201, {"token": acs_token,
                                                         "expiresOn": "2030-01-01T00:00:00Z"})
    await sign_in(client, idp)
    body = await (await action(client, "/action/teams")).json()
    assert body["status"] == 201
    assert body["broker_response"]["token"] == acs_token
    assert body["decoded"]["claims"] == {"skypeid": "acs:alice", "scp": 1024, "exp": EXP}
    assert body["decoded"]["header"]["alg"] == "RS256"
    assert body["expires_at"] == 1893456000          # from expiresOn, not the claims
    (seen,) = broker.seen
    _assert_broker_token(seen)
    teams = _claims(seen.headers["teams-user-aad-token"])
    assert teams["aud"] in (demo.ACS_APP_ID, demo.ACS_APP_ID_URI)
    assert {"Teams.ManageCalls", "Teams.ManageChats"} <= set(teams["scp"].split())
    assert teams["oid"] == demo.ALICE_OID


async def test_missing_teams_consent_leads_through_incremental_consent(client, idp, broker, entra):
    broker.answers[("GET", "/api/token/teams")] = (201, {"token": _jwt({"exp": EXP}),
                                                         "expiresOn": "2030-01-01T00:00:00Z"})
    entra.remove_consent(tenant=demo.TENANT_ID, user=demo.ALICE_OID, client_id=demo.CLIENT_ID,
                         resource=demo.ACS_APP_ID)
    await sign_in(client, idp)
    first = await action(client, "/action/teams")
    assert first.status == 401
    body = await first.json()
    assert body["consent_url"] == "/login?consent=teams"
    assert body["entra_error"]["error"] == "invalid_grant" and 65001 in body["entra_error"]["error_codes"]
    assert broker.seen == []

    target, fields = await authorize(client, idp, body["consent_url"], demo.ALICE_UPN)
    assert (await finish(client, target, fields)).headers["Location"] == "/"
    second = await (await action(client, "/action/teams")).json()
    assert second["status"] == 201 and len(broker.seen) == 1
    assert 'id="whoami"' in await (await client.get("/")).text()


async def test_the_acs_identity_action_creates_the_user_then_gets_a_token(client, idp, broker):
    token = _jwt({"skypeid": "acs:x", "exp": EXP})
    broker.answers[("POST", "/api/user")] = (201, {"acsUserIdentity": "8:acs:x"})
    broker.answers[("GET", "/api/token")] = (201, {"token": token, "expiresOn": "2030-01-01T00:00:00Z",
                                                   "user": {"communicationUserId": "8:acs:x"}})
    await sign_in(client, idp)
    body = await (await action(client, "/action/acs-identity")).json()
    assert [(r.method, r.path) for r in broker.seen] == [("POST", "/api/user"), ("GET", "/api/token")]
    assert body["status"] == 201 and body["broker_response"]["user"]["communicationUserId"] == "8:acs:x"
    assert body["decoded"]["claims"]["skypeid"] == "acs:x"
    assert body["steps"] == [{"call": "POST /api/user", "status": 201,
                              "broker_response": {"acsUserIdentity": "8:acs:x"},
                              "request_id": broker.seen[0].headers["X-Request-Id"]}]
    assert broker.seen[0].headers["X-Request-Id"] != broker.seen[1].headers["X-Request-Id"]


async def test_a_failed_user_creation_stops_before_the_token_call(client, idp, broker):
    broker.answers[("POST", "/api/user")] = (503, {"error": "temporarily_unavailable",
                                                  "error_description": "ACS is down"})
    await sign_in(client, idp)
    body = await (await action(client, "/action/acs-identity")).json()
    assert body["status"] == 503
    assert body["broker_response"] == {"error": "temporarily_unavailable", "error_description": "ACS is down"}
    assert [r.path for r in broker.seen] == ["/api/user"]


async def test_actions_refuse_a_missing_csrf_token_or_a_foreign_origin(client, idp, broker):
    await sign_in(client, idp)
    assert (await client.post("/action/acs-identity")).status == 403
    token = await csrf_token(client)
    foreign = await client.post("/action/acs-identity",
                                headers={"X-CSRF-Token": token, "Origin": "https://evil.example"})
    assert foreign.status == 403
    assert (await foreign.json())["error"] == "csrf_failed"
    assert broker.seen == []


async def test_an_unsafe_obo_name_is_refused_without_calling_the_broker(client, idp, broker):
    await sign_in(client, idp)
    resp = await action(client, "/action/obo/" + "x" * 65)
    assert resp.status == 404
    assert broker.seen == []


async def test_the_page_script_renders_every_result_field_the_browser_test_looks_for():
    from minimal_client.pages import STATIC
    script = (STATIC / "app.js").read_text()
    for needle in ('"status"', '"error"', '"claims"', '"countdown"', "setInterval", "textContent",
                   "X-CSRF-Token", "decoded, not verified"):
        assert needle in script
    assert "innerHTML" not in script


async def test_each_browser_session_has_its_own_token_cache(client, idp, broker, aiohttp_client):
    import asyncio
    other = await aiohttp_client(client.server)       # a second browser on the same app
    broker.answers[("POST", "/api/token/obo/workspace")] = (200, {"access_token": _jwt({"exp": EXP}),
                                                                  "token_type": "Bearer", "expires_in": 3600})
    await sign_in(client, idp, demo.ALICE_UPN)
    await sign_in(other, idp, demo.BOB_UPN)
    alice, bob = await asyncio.gather(action(client, "/action/obo/workspace"),
                                      action(other, "/action/obo/workspace"))
    by_request = {r.headers["X-Request-Id"]: _claims(r.headers["Authorization"].removeprefix("Bearer "))["oid"]
                  for r in broker.seen}
    assert by_request[(await alice.json())["request_id"]] == demo.ALICE_OID
    assert by_request[(await bob.json())["request_id"]] == demo.BOB_OID
    assert demo.BOB_NAME in await (await other.get("/")).text()
    assert demo.BOB_NAME not in await (await client.get("/")).text()


async def test_concurrent_actions_of_one_session_share_refresh_token_rotation(client, idp, broker, entra):
    import asyncio
    # ATs with < 300 s left count as expired for msal: every action refreshes, and the emulator
    # spends each refresh token on use. Concurrent refreshes must not race each other.
    entra.control("POST", "config", {"access_token_lifetime": 120})
    broker.answers[("POST", "/api/token/obo/workspace")] = (200, {"access_token": _jwt({"exp": EXP}),
                                                                  "token_type": "Bearer", "expires_in": 3600})
    await sign_in(client, idp)
    token = await csrf_token(client)
    answers = await asyncio.gather(*(client.post("/action/obo/workspace", headers={"X-CSRF-Token": token})
                                     for _ in range(4)))
    assert [a.status for a in answers] == [200] * 4
    assert len(broker.seen) == 4
    assert len(entra.requests(grant_type="refresh_token")) == 4
