"""Every local refusal of `/api/token/teams`: the right status and code, and ACS never called."""

from __future__ import annotations

import base64

import pytest

from emulators.entra import demo
from tests.acs.conftest import TEAMS_SCOPES


def _forge_signature(token: str) -> str:
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0xFF
    return f"{head}.{body}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


async def _refused(broker, acs, headers: dict, status: int, error: str) -> dict:
    resp = await broker.get("/api/token/teams", headers=headers)
    body = await resp.json()
    assert (resp.status, body["error"]) == (status, error), body
    assert "WWW-Authenticate" not in resp.headers  # never a Bearer challenge for the Teams token
    assert resp.headers["Cache-Control"] == "no-store"
    assert acs.requests() == []
    return body


async def test_a_missing_teams_header_is_invalid_request(broker, tokens, acs):
    await _refused(broker, acs, tokens.headers(), 400, "invalid_request")


async def test_an_empty_teams_header_is_invalid_request(broker, tokens, acs):
    await _refused(broker, acs, tokens.headers(teams=""), 400, "invalid_request")


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
async def test_a_garbage_teams_token_is_invalid_teams_token(broker, tokens, acs, garbage):
    body = await _refused(broker, acs, tokens.headers(teams=garbage), 400, "invalid_teams_token")
    assert garbage not in body["error_description"]


async def test_an_expired_teams_token_is_refused(broker, tokens, acs):
    await _refused(broker, acs, tokens.headers(teams=tokens.teams(lifetime=-3600)), 400, "invalid_teams_token")


async def test_a_token_for_another_audience_is_refused(broker, tokens, acs):
    wrong = tokens.teams(resource=demo.BROKER_CLIENT_ID, scopes=["user_impersonation"])
    await _refused(broker, acs, tokens.headers(teams=wrong), 400, "invalid_teams_token")


@pytest.mark.parametrize("scope", TEAMS_SCOPES)
async def test_a_teams_token_missing_one_teams_scope_is_forbidden(broker, tokens, acs, scope):
    only = [s for s in TEAMS_SCOPES if s != scope]
    await _refused(broker, acs, tokens.headers(teams=tokens.teams(scopes=only)), 403, "invalid_teams_token")


async def test_a_teams_token_of_an_app_not_allowed_is_forbidden(broker, tokens, acs):
    other_app = tokens.teams(client_id=demo.PUBLIC_CLIENT_ID)
    await _refused(broker, acs, tokens.headers(teams=other_app), 403, "invalid_teams_token")


async def test_a_teams_token_of_another_user_is_refused(broker, tokens, acs):
    bob = tokens.teams(user=demo.BOB_UPN)
    await _refused(broker, acs, tokens.headers(teams=bob), 400, "invalid_teams_token")


async def test_a_teams_token_of_the_same_oid_in_another_tenant_is_refused(broker_for, tokens, acs):
    broker = await broker_for(entra_extra={"allowed_tenants": [demo.TENANT_ID, demo.PARTNER_TENANT_ID]})
    carol_home = tokens.bearer(user=demo.CAROL_UPN, tenant=demo.TENANT_ID)
    carol_partner = tokens.teams(user=demo.CAROL_UPN, tenant=demo.PARTNER_TENANT_ID)
    await _refused(broker, acs, tokens.headers(bearer=carol_home, teams=carol_partner), 400,
                   "invalid_teams_token")


async def test_a_forged_teams_signature_is_refused(broker, tokens, acs):
    await _refused(broker, acs, tokens.headers(teams=_forge_signature(tokens.teams())), 400,
                   "invalid_teams_token")


async def test_an_unauthenticated_caller_gets_a_bearer_challenge_and_acs_is_not_called(broker, tokens, acs):
    resp = await broker.get("/api/token/teams", headers={"teams-user-aad-token": tokens.teams()})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert acs.requests() == []


async def test_refusals_are_audited_as_denied(broker, tokens, acs):
    from structlog.testing import capture_logs
    with capture_logs() as logs:
        resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams(scopes=[])))
    assert resp.status in (400, 403)
    [event] = [e for e in logs if e["event"] == "acs.teams_exchange"]
    assert event["decision"] == "deny" and event["reason"] and event["acs_correlation_id"] is None


async def test_without_signature_checks_the_claims_are_still_checked_and_acs_refuses_forgeries(
        broker_for, tokens, acs):
    broker = await broker_for(verify_teams_token_signature=False)
    await _refused(broker, acs, tokens.headers(teams=tokens.teams(client_id=demo.PUBLIC_CLIENT_ID)), 403,
                   "invalid_teams_token")
    forged = _forge_signature(tokens.teams())
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=forged))
    body = await resp.json()
    # passes the local claim checks, so ACS sees it — and refuses it: still the Teams token's fault
    assert (resp.status, body["error"]) == (400, "invalid_teams_token"), body
    [call] = acs.requests(operation="get_token_for_teams_user")
    assert call["status"] == 401
