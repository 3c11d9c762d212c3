"""Entra says no, slowly, or not at all: every failure has its documented answer, never a 500."""

from __future__ import annotations

import asyncio
import base64

import pytest
from structlog.testing import capture_logs

from emulators.entra import demo
from emulators.entra.obo import mfa_claims_challenge
from tests.obo.conftest import JWT_BEARER, obo, obo_calls, obo_calls_async, portal_token, sample


def audit_events(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "obo.exchange"]


async def test_a_user_without_consent_gets_consent_required(broker, entra):
    with capture_logs() as logs:
        resp, body = await obo(broker, portal_token(entra, user=demo.BOB_UPN))
    assert resp.status == 403, body
    assert body["error"] == "consent_required"
    assert resp.headers["Cache-Control"] == "no-store"
    [event] = audit_events(logs)
    assert event["decision"] == "deny" and event["reason"] == "consent_required" and event["aadsts"] == 65001
    assert event["correlation_id"]                       # Entra's, for the operator


async def test_mfa_required_by_entra_becomes_a_claims_challenge(broker, entra):
    entra.set_mfa(resource=demo.WORKSPACE_CLIENT_ID)
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 401, body
    assert body["error"] == "insufficient_claims"
    claims_b64 = base64.b64encode(mfa_claims_challenge().encode()).decode()
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer realm="", authorization_uri="{entra.url}/{demo.TENANT_ID}/oauth2/v2.0/authorize", '
        f'error="insufficient_claims", claims="{claims_b64}"')
    assert base64.b64decode(claims_b64).decode() == mfa_claims_challenge()


async def test_the_claims_challenge_names_the_callers_own_tenant(broker, entra):
    entra.add_consent(tenant=demo.PARTNER_TENANT_ID, user=demo.CAROL_OID, client_id=demo.BROKER_CLIENT_ID,
                      resource=demo.WORKSPACE_CLIENT_ID, scopes=["user_impersonation"])
    entra.set_mfa(user=demo.CAROL_OID)
    resp, body = await obo(broker, portal_token(entra, user=demo.CAROL_UPN, tenant=demo.PARTNER_TENANT_ID))
    assert resp.status == 401, body
    assert (f'authorization_uri="{entra.url}/{demo.PARTNER_TENANT_ID}/oauth2/v2.0/authorize"'
            in resp.headers["WWW-Authenticate"])


async def test_an_assertion_entra_considers_expired_is_an_invalid_token(broker, entra):
    token = portal_token(entra)
    entra.shift_clock(2 * 3600)          # Entra's clock is ahead: AADSTS500133
    with capture_logs() as logs:
        resp, body = await obo(broker, token)
    assert resp.status == 401, body
    assert body["error"] == "invalid_token"
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert audit_events(logs)[0]["aadsts"] == 500133


@pytest.mark.parametrize(("aadsts", "status", "error"), [
    (65001, 403, "consent_required"),
    (50076, 401, "insufficient_claims"),
    (50013, 401, "invalid_token"),
    (500133, 401, "invalid_token"),
    (7000218, 502, "bad_gateway"),
    (700016, 502, "bad_gateway"),
    (70011, 502, "bad_gateway"),          # a misconfigured downstream scope: the operator's problem
])
async def test_entra_error_codes_map_to_documented_answers(broker, entra, aadsts, status, error):
    entra.inject_fault(grant_type=JWT_BEARER, aadsts=aadsts,
                       suberror="consent_required" if aadsts == 65001 else None)
    resp, body = await obo(broker, portal_token(entra))
    assert (resp.status, body["error"]) == (status, error), body
    assert set(body) >= {"error", "error_description"}
    assert "AADSTS" not in body["error_description"]


async def test_a_wrong_broker_secret_is_a_502_with_an_operator_log_line(obo_broker, entra):
    broker = await obo_broker(env={"TOKENBROKER_ENTRA__CLIENT_SECRET": "not-the-secret"})
    with capture_logs() as logs:
        resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 502, body
    assert body["error"] == "bad_gateway"
    [line] = [e for e in logs if e["event"] == "obo.credentials_refused"]
    assert line["aadsts"] == 7000215 and line["log_level"] == "error"
    assert line["credential"] == "client_secret"
    assert "not-the-secret" not in repr(logs)


async def test_a_passing_entra_outage_is_retried_within_the_deadline(broker, entra):
    entra.inject_fault(grant_type=JWT_BEARER, status=503, count=1)
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 200, body
    assert len(obo_calls(entra)) == 2


async def test_a_lasting_entra_outage_is_a_503_with_retry_after(broker, entra):
    entra.inject_fault(grant_type=JWT_BEARER, status=503, count=10)
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 503, body
    assert body["error"] == "temporarily_unavailable"
    assert int(resp.headers["Retry-After"]) > 0
    assert len(obo_calls(entra)) == 3                   # bounded retries
    assert sample(broker, "downstream_requests_total", service="entra", operation="obo",
                  outcome="transient") == 3


async def test_throttling_longer_than_the_deadline_is_passed_on_at_once(broker, entra):
    entra.inject_fault(grant_type=JWT_BEARER, status=429, retry_after=30, count=10)
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 503, body
    assert resp.headers["Retry-After"] == "30"
    assert len(obo_calls(entra)) == 1


async def test_failures_are_not_cached(broker, entra):
    token = portal_token(entra)
    entra.inject_fault(grant_type=JWT_BEARER, aadsts=50013)
    resp, _ = await obo(broker, token)
    assert resp.status == 401
    resp, body = await obo(broker, token)
    assert resp.status == 200, body


async def test_an_entra_slower_than_the_timeout_is_a_504(obo_broker, entra):
    broker = await obo_broker(timeout=1)
    entra.inject_fault(grant_type=JWT_BEARER, delay=4, count=5)
    with capture_logs() as logs:
        resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 504, body
    assert body["error"] == "gateway_timeout"
    assert int(resp.headers["Retry-After"]) > 0
    assert audit_events(logs)[0]["reason"] == "timeout"
    assert sample(broker, "downstream_requests_total", service="entra", operation="obo", outcome="timeout") == 1


async def test_a_slow_entra_call_does_not_stall_other_requests(broker, entra):
    cached = portal_token(entra)
    resp, _ = await obo(broker, cached)                  # warm the cache for this token
    assert resp.status == 200
    other = portal_token(entra)
    slow = portal_token(entra)
    entra.inject_fault(grant_type=JWT_BEARER, delay=3, count=1)
    slow_call = asyncio.create_task(obo(broker, slow))
    while len(await obo_calls_async(entra)) < 2:         # the slow call is now held by Entra
        await asyncio.sleep(0.02)
    health = await broker.get("/healthz")
    hit, hit_body = await obo(broker, cached)
    fresh, fresh_body = await obo(broker, other)          # another Entra call goes through too
    assert health.status == 200 and hit.status == 200 and fresh.status == 200, (hit_body, fresh_body)
    assert not slow_call.done()
    resp, body = await slow_call
    assert resp.status == 200, body
