"""GET /api/me with genuine Entra tokens: v1 and v2, both tenants, scheme variants, caching."""

from __future__ import annotations

import time

from multidict import CIMultiDict
from structlog.testing import capture_logs

from emulators.entra import demo
from service.typedefs import METRICS
from tests.validation.conftest import BROKER, SPA


def sample(client, name: str, **labels: str) -> float:
    return client.app[METRICS].registry.get_sample_value(f"tokenbroker_{name}", labels) or 0.0


async def me(client, token: str, scheme: str = "Bearer"):
    resp = await client.get("/api/me", headers={"Authorization": f"{scheme} {token}"})
    return resp, await resp.json()


async def test_a_v2_token_is_accepted_and_described(broker, entra):
    token = entra.mint(resource=BROKER, client_id=SPA, scopes=["user_impersonation"])
    resp, body = await me(broker, token)
    assert resp.status == 200, body
    assert body == {"oid": demo.ALICE_OID, "tid": demo.TENANT_ID, "app_id": SPA,
                    "scopes": ["user_impersonation"], "token_version": "2.0"}
    assert resp.headers["Cache-Control"] == "no-store"


async def test_a_v1_token_for_the_app_id_uri_is_accepted(broker, entra):
    token = entra.mint(resource=demo.BROKER_APP_ID_URI, client_id=SPA, version=1,
                       scopes=["user_impersonation"])
    resp, body = await me(broker, token)
    assert resp.status == 200, body
    assert body["token_version"] == "1.0"
    assert body["app_id"] == SPA and body["oid"] == demo.ALICE_OID


async def test_a_v1_token_for_the_client_id_is_accepted(broker, entra):
    token = entra.mint(resource=BROKER, client_id=demo.CLIENT_ID, version=1, scopes=["user_impersonation"])
    resp, body = await me(broker, token)
    assert resp.status == 200, body
    assert (body["token_version"], body["app_id"]) == ("1.0", demo.CLIENT_ID)


async def test_a_user_of_the_second_allowed_tenant_is_accepted(broker, entra):
    for version in (1, 2):
        token = entra.mint(resource=BROKER, tenant=demo.PARTNER_TENANT_ID, client_id=SPA,
                           scopes=["user_impersonation"], version=version)
        resp, body = await me(broker, token)
        assert resp.status == 200, body
        assert (body["tid"], body["oid"]) == (demo.PARTNER_TENANT_ID, demo.CAROL_OID)


async def test_the_second_tenant_is_refused_when_only_the_home_tenant_is_allowed(broker_for, entra):
    broker = await broker_for(allowed_tenants=())
    token = entra.mint(resource=BROKER, tenant=demo.PARTNER_TENANT_ID, client_id=SPA,
                       scopes=["user_impersonation"])
    resp, body = await me(broker, token)
    assert resp.status == 403 and body["error"] == "access_denied"
    assert 'error="access_denied"' in resp.headers["WWW-Authenticate"]


async def test_the_bearer_scheme_is_case_insensitive(broker, kit):
    for scheme in ("bearer", "BEARER", "BeArEr"):
        resp, body = await me(broker, kit.token, scheme)
        assert resp.status == 200, (scheme, body)


async def test_no_or_other_credentials_get_a_challenge_without_an_error_attribute(broker, kit):
    for headers in ({}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, {"Authorization": f"Token {kit.token}"}):
        resp = await broker.get("/api/me", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="tokenbroker"'
        assert resp.content_type == "application/json"
        assert "error" in await resp.json()


async def test_two_authorization_headers_are_an_invalid_token(broker, kit):
    headers = CIMultiDict([("Authorization", f"Bearer {kit.token}"), ("Authorization", f"Bearer {kit.token}")])
    resp = await broker.get("/api/me", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"] == "invalid_token"


async def test_every_required_scope_must_be_present(broker_for, entra):
    broker = await broker_for(required_scopes=("user_impersonation", "Files.Read"))
    both = entra.mint(resource=BROKER, client_id=SPA, scopes=["Files.Read", "user_impersonation"])
    resp, body = await me(broker, both)
    assert resp.status == 200 and body["scopes"] == ["Files.Read", "user_impersonation"]
    one = entra.mint(resource=BROKER, client_id=SPA, scopes=["user_impersonation"])
    resp, body = await me(broker, one)
    assert resp.status == 403 and body["error"] == "insufficient_scope"
    assert 'scope="user_impersonation Files.Read"' in resp.headers["WWW-Authenticate"]


async def test_app_only_tokens_pass_when_allowed(broker_for, entra):
    broker = await broker_for(allow_app_only=True)
    token = entra.mint(resource=BROKER, client_id=demo.DAEMON_CLIENT_ID, app_only=True,
                       claims={"roles": [demo.BROKER_APP_ROLE]})
    resp, body = await me(broker, token)
    assert resp.status == 200, body
    assert body["scopes"] == [] and body["app_id"] == demo.DAEMON_CLIENT_ID


async def test_a_refusal_is_logged_and_counted_by_reason_without_the_token(broker, kit):
    token = kit.mint(claims={"aud": "api://elsewhere"})
    with capture_logs() as logs:
        resp, _ = await me(broker, token)
    assert resp.status == 401
    refused = [e for e in logs if e["event"] == "auth.refused"]
    assert len(refused) == 1
    assert refused[0]["reason"] == "audience"
    assert refused[0]["kid"] == kit.header["kid"] and refused[0]["tid"] == demo.TENANT_ID
    assert refused[0]["app_id"] == SPA
    assert all(token not in str(e) and token.split(".")[2] not in str(e) for e in logs)
    assert sample(broker, "token_validation_failures_total", reason="audience") == 1


async def test_a_token_is_verified_once_then_served_from_the_cache(broker, kit):
    for _ in range(3):
        resp, _ = await me(broker, kit.token)
        assert resp.status == 200
    assert sample(broker, "cache_events_total", cache="entra_tokens", event="miss") == 1
    assert sample(broker, "cache_events_total", cache="entra_tokens", event="hit") == 2


async def test_a_cached_token_still_expires(broker_for, kit):
    now = [time.time()]
    broker = await broker_for(clock=lambda: now[0])
    token = kit.mint(lifetime=600)
    assert (await me(broker, token))[0].status == 200
    now[0] += 600 + 121
    resp, body = await me(broker, token)
    assert resp.status == 401 and body["error"] == "invalid_token"
    assert sample(broker, "token_validation_failures_total", reason="expired") == 1


async def test_policy_checks_rerun_on_cached_tokens(broker_for, kit):
    """The cache holds what was proven about the token, not the decision of one call."""
    broker = await broker_for(required_scopes=("user_impersonation",))
    other = await broker_for(required_scopes=("Files.Read",))
    assert (await me(broker, kit.token))[0].status == 200
    assert (await me(other, kit.token))[0].status == 403


async def test_api_me_is_in_the_openapi_document(broker):
    doc = await (await broker.get("/openapi.json")).json()
    assert set(doc["paths"]["/api/me"]["get"]["responses"]) >= {"200", "401", "403"}
