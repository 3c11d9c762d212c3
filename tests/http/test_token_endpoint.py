"""POST /oauth2/token: RFC 8693 exchanges of partner and own tokens, responses, lifetimes, scopes."""

from __future__ import annotations

import time

import jwt
from structlog.testing import capture_logs

from service.app import create_app
from tests.http.token_support import (
    ACCESS_TOKEN,
    BASE_TOML,
    JWT_TYPE,
    PUBLIC_URL,
    basic,
    exchange_form,
    exchange_ok,
    make_settings,
    partner_token,
    post_token,
)


async def jwks_of(client) -> jwt.PyJWKSet:
    resp = await client.get("/oauth2/jwks")
    assert resp.status == 200
    return jwt.PyJWKSet.from_dict(await resp.json())


async def verify(client, token: str, audience: str | list[str]) -> dict:
    """Verify with PyJWT against the broker's published jwks_uri, as a resource server would."""
    keys = await jwks_of(client)
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(token, keys[kid].key, algorithms=["ES256"], audience=audience, issuer=PUBLIC_URL,
                      options={"require": ["exp", "iat", "jti", "sub", "aud", "iss"]})


async def test_a_partner_token_is_exchanged_for_an_rfc9068_token_that_verifies_against_the_jwks(client):
    resp = await post_token(client, exchange_form(partner_token(lifetime=3600), scope="read"))
    body = await resp.json()
    assert resp.status == 200, body
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Pragma"] == "no-cache"
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "Bearer"
    assert "scope" not in body                      # same as requested
    assert "refresh_token" in body                  # portal has refresh_tokens = true
    assert 890 <= body["expires_in"] <= 900
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    claims = await verify(client, body["access_token"], "dashboard")
    assert claims["aud"] == "dashboard"
    assert claims["client_id"] == "portal"
    assert claims["scope"] == "read"
    assert claims["iss"] == PUBLIC_URL


async def test_the_local_subject_is_stable_per_issuer_subject_and_not_the_external_sub(client):
    first = await exchange_ok(client, exchange_form(partner_token(sub="u-1")))
    second = await exchange_ok(client, exchange_form(partner_token(sub="u-1")))
    other = await exchange_ok(client, exchange_form(partner_token(sub="u-2")))
    sub = lambda b: jwt.decode(b["access_token"], options={"verify_signature": False})["sub"]  # noqa: E731
    assert sub(first) == sub(second) != sub(other)
    assert sub(first) != "u-1"


async def test_without_a_requested_scope_the_issued_scope_is_subject_within_client(client):
    # partner.read maps to read only: write is allowed for the client but not held by the subject
    body = await exchange_ok(client, exchange_form(partner_token(scope="partner.read")))
    assert body["scope"] == "read"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "read"


async def test_scope_map_translates_partner_scopes(client):
    body = await exchange_ok(client, exchange_form(partner_token(scope="partner.all")))
    assert set(body["scope"].split()) == {"read", "write"}


async def test_unmapped_partner_scopes_grant_nothing(client):
    body = await exchange_ok(client, exchange_form(partner_token(scope="read write admin")))
    assert "scope" not in jwt.decode(body["access_token"], options={"verify_signature": False})


async def test_a_scope_the_subject_does_not_hold_is_invalid_scope(client):
    resp = await post_token(client, exchange_form(partner_token(scope="partner.read"), scope="read write"))
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_scope"


async def test_a_scope_the_client_may_not_request_is_invalid_scope(client):
    resp = await post_token(client, exchange_form(partner_token(), scope="admin"))
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_scope"


async def test_the_lifetime_never_exceeds_the_subject_tokens(client):
    body = await exchange_ok(client, exchange_form(partner_token(lifetime=60)))
    assert body["expires_in"] <= 60
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] <= int(time.time()) + 60


async def test_several_audiences_all_land_in_aud(client):
    body = await exchange_ok(client, exchange_form(partner_token(), audience=["dashboard", "reports"]))
    claims = await verify(client, body["access_token"], "reports")
    assert claims["aud"] == ["dashboard", "reports"]


async def test_resource_counts_as_a_target(client):
    form = exchange_form(partner_token(), audience=None, resource="reports")
    claims = await verify(client, (await exchange_ok(client, form))["access_token"], "reports")
    assert claims["aud"] == "reports"


async def test_requested_token_type_jwt_is_echoed_as_issued_token_type(client):
    body = await exchange_ok(client, exchange_form(partner_token(), subject_token_type=JWT_TYPE,
                                                   requested_token_type=JWT_TYPE))
    assert body["issued_token_type"] == JWT_TYPE
    assert body["token_type"] == "Bearer"


async def test_post_authentication_works_with_the_same_result(client):
    form = exchange_form(partner_token()) + [("client_id", "dashboard"), ("client_secret", "dashboard-secret")]
    resp = await client.post("/oauth2/token", data=form)
    # dashboard authenticates fine but may not exchange partner tokens
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


async def test_basic_credentials_are_form_decoded(client):
    """RFC 6749 §2.3.1: the secret `portal secret:with+special&chars%` arrives form-encoded."""
    resp = await post_token(client, exchange_form(partner_token()))
    assert resp.status == 200
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()),
                             headers=basic("portal", "portal secret:with special&chars%"))
    assert resp.status == 401


async def test_cross_client_exchange_needs_the_token_to_name_the_client(client):
    # portal gets a token for the dashboard; dashboard may exchange it for reports
    mine = (await exchange_ok(client, exchange_form(partner_token(scope="partner.read"))))["access_token"]
    body = await exchange_ok(client, exchange_form(mine, audience="reports"), auth="dashboard")
    claims = await verify(client, body["access_token"], "reports")
    assert claims["client_id"] == "dashboard"
    assert claims["scope"] == "read"
    # reports is not named by that token: refused
    resp = await post_token(client, exchange_form(mine, audience="archive"), auth="reports")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


async def test_a_cross_client_exchange_keeps_the_subject_and_never_outlives_it(client):
    first = await exchange_ok(client, exchange_form(partner_token(lifetime=120)))
    second = await exchange_ok(client, exchange_form(first["access_token"], audience="reports"), auth="dashboard")
    c1 = jwt.decode(first["access_token"], options={"verify_signature": False})
    c2 = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert c1["sub"] == c2["sub"]
    assert c2["exp"] <= c1["exp"]


async def test_the_metadata_document_is_served_under_both_names(client):
    a = await client.get("/.well-known/oauth-authorization-server")
    b = await client.get("/.well-known/openid-configuration")
    doc = await a.json()
    assert doc == await b.json()
    assert doc["issuer"] == PUBLIC_URL
    assert doc["token_endpoint"] == f"{PUBLIC_URL}/oauth2/token"
    assert doc["jwks_uri"] == f"{PUBLIC_URL}/oauth2/jwks"
    assert doc["introspection_endpoint"] == f"{PUBLIC_URL}/oauth2/introspect"
    assert doc["revocation_endpoint"] == f"{PUBLIC_URL}/oauth2/revoke"
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post",
                                                                 "private_key_jwt"}
    assert ACCESS_TOKEN in doc["token_exchange_subject_token_types_supported"]


async def test_metadata_is_path_inserted_when_the_issuer_has_a_path(aiohttp_client, tmp_path):
    settings = make_settings(tmp_path, base=BASE_TOML.replace('public_url = "http://broker.test"', 'public_url = "https://x.test/tb"'))
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/.well-known/oauth-authorization-server/tb")
    assert resp.status == 200
    assert (await resp.json())["issuer"] == "https://x.test/tb"


async def test_an_exchange_is_audited_and_counted_without_the_token(client):
    token = partner_token()
    with capture_logs() as logs:
        await exchange_ok(client, exchange_form(token))
        await post_token(client, exchange_form(token, audience="nope"))
    events = [e for e in logs if e.get("audit")]
    assert [e["decision"] for e in events] == ["allow", "deny"]
    assert events[0]["client_id"] == "portal" and events[0]["issuer"] == "partner"
    assert events[0]["jti"] and events[0]["subject"] and events[0]["audience"] == ["dashboard"]
    assert events[1]["reason"] == "denied_audience"
    assert all(token not in repr(e) for e in logs)
    metrics = await (await client.get("/metrics")).text()
    assert 'tokenbroker_token_exchange_total{decision="allow"' in metrics
