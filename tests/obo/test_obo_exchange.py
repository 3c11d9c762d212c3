"""POST /api/token/obo/{name}: the portal's user token → a workspace token, cached and audited."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from emulators.entra import demo
from tests.obo.conftest import OBO_PATH, PORTAL, decode_verified, obo, obo_calls, portal_token, sample


async def test_the_token_is_for_the_workspace_and_the_same_user(broker, entra):
    resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 200, body
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == demo.WORKSPACE_SCOPE
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    claims = decode_verified(entra, body["access_token"], demo.TENANT_ID, demo.WORKSPACE_CLIENT_ID)
    assert (claims["oid"], claims["tid"]) == (demo.ALICE_OID, demo.TENANT_ID)
    assert claims["azp"] == demo.BROKER_CLIENT_ID
    assert claims["scp"] == "user_impersonation"
    assert isinstance(body["expires_in"], int)
    assert 0 < body["expires_in"] <= claims["exp"] - int(time.time()) + 1
    assert body["expires_in"] <= 5400           # the emulator grants 60-90 minutes


async def test_entra_receives_the_exact_obo_request_with_our_request_id(broker, entra):
    resp, body = await obo(broker, portal_token(entra), **{"X-Request-Id": "portal-req-42"})
    assert resp.status == 200, body
    assert resp.headers["X-Request-Id"] == "portal-req-42"
    [call] = obo_calls(entra)
    assert call["path"] == f"/{demo.TENANT_ID}/oauth2/v2.0/token"
    assert call["requested_token_use"] == "on_behalf_of"
    assert call["client_id"] == demo.BROKER_CLIENT_ID
    assert call["scope"] == demo.WORKSPACE_SCOPE
    assert call["headers"]["client-request-id"] == "portal-req-42"


async def test_a_second_identical_call_is_served_from_the_cache(broker, entra):
    token = portal_token(entra)
    first, body1 = await obo(broker, token)
    second, body2 = await obo(broker, token)
    assert first.status == second.status == 200
    assert body2["access_token"] == body1["access_token"]
    assert body2["expires_in"] <= body1["expires_in"]
    assert len(obo_calls(entra)) == 1
    assert sample(broker, "cache_events_total", cache="obo", event="hit") == 1
    assert sample(broker, "cache_events_total", cache="obo", event="miss") == 1


async def test_another_token_of_the_same_user_is_exchanged_again(broker, entra):
    """The cache is keyed by the presented token: a new assertion is a new exchange."""
    for _ in range(2):
        resp, body = await obo(broker, portal_token(entra))
        assert resp.status == 200, body
    assert len(obo_calls(entra)) == 2


async def test_fifty_concurrent_identical_requests_make_one_entra_call(broker, entra):
    token = portal_token(entra)
    entra.inject_fault(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", delay=0.5)
    results = await asyncio.gather(*(obo(broker, token) for _ in range(50)))
    assert all(resp.status == 200 for resp, _ in results), [b for r, b in results if r.status != 200][:1]
    assert len({body["access_token"] for _, body in results}) == 1
    assert len(obo_calls(entra)) == 1
    assert sample(broker, "cache_events_total", cache="obo", event="miss") == 1
    assert (sample(broker, "cache_events_total", cache="obo", event="coalesced")
            + sample(broker, "cache_events_total", cache="obo", event="hit")) == 49


async def test_a_cached_token_is_refreshed_five_minutes_before_it_expires(obo_broker, entra):
    entra.control("POST", "config", {"access_token_lifetime": 3600})   # not Entra's varying 60-90 min
    offset = [0.0]
    broker = await obo_broker(clock=lambda: time.time() + offset[0])
    token = portal_token(entra)
    resp, first = await obo(broker, token)
    assert resp.status == 200, first
    offset[0] = 3600 - 300 - 120           # still more than 5 minutes left: cached
    resp, cached = await obo(broker, token)
    assert resp.status == 200, cached
    assert cached["access_token"] == first["access_token"]
    assert cached["expires_in"] <= first["expires_in"] - 3180
    assert len(obo_calls(entra)) == 1
    offset[0] = 3600 - 300 + 5             # inside the refresh margin: a new exchange
    resp, refreshed = await obo(broker, token)
    assert resp.status == 200, refreshed
    assert len(obo_calls(entra)) == 2


async def test_a_user_of_the_second_allowed_tenant_gets_a_token_issued_in_their_own_tenant(broker, entra):
    entra.add_consent(tenant=demo.PARTNER_TENANT_ID, user=demo.CAROL_OID, client_id=demo.BROKER_CLIENT_ID,
                      resource=demo.WORKSPACE_CLIENT_ID, scopes=["user_impersonation"])
    token = portal_token(entra, user=demo.CAROL_UPN, tenant=demo.PARTNER_TENANT_ID)
    resp, body = await obo(broker, token)
    assert resp.status == 200, body
    claims = decode_verified(entra, body["access_token"], demo.PARTNER_TENANT_ID, demo.WORKSPACE_CLIENT_ID)
    assert (claims["oid"], claims["tid"]) == (demo.CAROL_OID, demo.PARTNER_TENANT_ID)
    [call] = obo_calls(entra)
    assert call["path"] == f"/{demo.PARTNER_TENANT_ID}/oauth2/v2.0/token"


async def test_a_guest_in_the_home_tenant_is_exchanged_in_the_home_tenant(broker, entra):
    entra.add_consent(tenant=demo.TENANT_ID, user=demo.CAROL_OID, client_id=demo.BROKER_CLIENT_ID,
                      resource=demo.WORKSPACE_CLIENT_ID, scopes=["user_impersonation"])
    token = portal_token(entra, user=demo.CAROL_UPN, tenant=demo.TENANT_ID)
    resp, body = await obo(broker, token)
    assert resp.status == 200, body
    claims = decode_verified(entra, body["access_token"], demo.TENANT_ID, demo.WORKSPACE_CLIENT_ID)
    assert (claims["oid"], claims["tid"]) == (demo.CAROL_OID, demo.TENANT_ID)


async def test_an_unknown_downstream_is_not_found_only_after_authentication(broker, entra):
    resp, body = await obo(broker, None, name="payroll")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="tokenbroker"'
    resp, body = await obo(broker, "not-a-jwt", name="payroll")
    assert resp.status == 401 and body["error"] == "invalid_token"
    resp, body = await obo(broker, portal_token(entra), name="payroll")
    assert resp.status == 404 and body["error"] == "not_found"
    assert obo_calls(entra) == []


async def test_the_callers_token_must_carry_the_required_scope(broker, entra):
    token = entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=PORTAL, scopes=["something_else"])
    resp, body = await obo(broker, token)
    assert resp.status == 403 and body["error"] == "insufficient_scope"
    assert obo_calls(entra) == []


async def test_only_post_is_allowed(broker, entra):
    resp = await broker.get(OBO_PATH, headers={"Authorization": f"Bearer {portal_token(entra)}"})
    assert resp.status == 405


async def test_each_exchange_is_audited_once_without_the_token(broker, entra):
    token = portal_token(entra)
    with capture_logs() as logs:
        resp, body = await obo(broker, token)
        await obo(broker, token)
    assert resp.status == 200
    events = [e for e in logs if e["event"] == "obo.exchange"]
    assert [e["cache"] for e in events] == ["miss", "hit"]
    first = events[0]
    assert first["downstream"] == "workspace" and first["tid"] == demo.TENANT_ID
    assert first["client_app"] == PORTAL and first["decision"] == "allow" and first["status"] == 200
    assert first["user"] != demo.ALICE_OID and len(first["user"]) == 12
    assert isinstance(first["latency_ms"], float)
    rendered = repr(logs)
    assert token not in rendered and body["access_token"] not in rendered


async def test_obo_calls_are_counted_in_metrics(broker, entra):
    resp, _ = await obo(broker, portal_token(entra))
    assert resp.status == 200
    metrics = await (await broker.get("/metrics")).text()
    assert ('tokenbroker_downstream_requests_total{operation="obo",outcome="success",service="entra"} 1.0'
            in metrics)
    assert 'tokenbroker_downstream_seconds_count{operation="obo",service="entra"} 1.0' in metrics


async def test_the_route_is_documented(broker):
    doc = await (await broker.get("/openapi.json")).json()
    op = doc["paths"]["/api/token/obo/{name}"]["post"]
    assert {"200", "401", "403", "404", "502", "503", "504"} <= set(op["responses"])


async def test_an_app_only_token_cannot_act_on_behalf_of_anyone(obo_broker, entra):
    broker = await obo_broker(allow_app_only=True)
    token = entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=demo.DAEMON_CLIENT_ID, app_only=True)
    me = await broker.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200                         # the broker accepts it as a caller...
    resp, body = await obo(broker, token)           # ...but there is no user to act for
    assert resp.status == 403 and body["error"] == "access_denied", body
    assert obo_calls(entra) == []
