"""Opaque access tokens (`token_format = "opaque"`): handles, introspection, revocation, expiry,
refresh, and handles presented back as `self` subject tokens."""

from __future__ import annotations

import pytest

from service.app import create_app
from service.typedefs import STORE
from tests.http.token_support import (
    ACCESS_TOKEN,
    JWT_TYPE,
    basic,
    exchange_form,
    exchange_ok,
    make_settings,
    partner_token,
    post_token,
)

VAULT = """
[[clients]]
client_id = "vault"
client_secret = "vault-secret-0123456789abcdefghi"
token_format = "opaque"
allowed_issuers = ["partner", "self"]
allowed_audiences = ["dashboard", "reports"]
allowed_scopes = ["read", "write"]
refresh_tokens = true
"""


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path, clock):
    return await aiohttp_client(create_app(make_settings(tmp_path, VAULT), clock=clock))


async def vault_exchange(client, **extra) -> dict:
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token(), **extra),
                             headers=basic("vault", "vault-secret-0123456789abcdefghi"))
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def introspect(client, token: str, who: str, secret: str | None = None) -> dict:
    resp = await client.post("/oauth2/introspect", data={"token": token}, headers=basic(who, secret))
    assert resp.status == 200
    return await resp.json()


async def test_an_opaque_client_gets_a_random_handle_not_a_jwt(client):
    body = await vault_exchange(client, scope="read")
    handle = body["access_token"]
    assert "." not in handle and len(handle) >= 43
    assert body["issued_token_type"] == ACCESS_TOKEN and body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 900
    assert body["refresh_token"] and body["refresh_token"] != handle


async def test_only_the_hash_of_a_handle_is_stored(client):
    handle = (await vault_exchange(client))["access_token"]
    records = await client.app[STORE].scan("opaque")
    assert len(records) == 1
    assert all(handle not in key and handle not in repr(value) for key, value in records)


async def test_introspection_gives_the_claims_to_the_tokens_client_and_its_audience_only(client):
    handle = (await vault_exchange(client, scope="read"))["access_token"]
    own = await introspect(client, handle, "vault", "vault-secret-0123456789abcdefghi")
    assert own["active"] is True and own["client_id"] == "vault" and own["aud"] == "dashboard"
    assert own["scope"] == "read" and own["iss"] == "http://broker.test"
    assert {"sub", "exp", "iat", "jti"} <= set(own)
    audience = await introspect(client, handle, "dashboard")
    assert audience["active"] is True and audience["sub"] == own["sub"]
    assert await introspect(client, handle, "reports") == {"active": False}
    assert await introspect(client, handle + "x", "vault", "vault-secret-0123456789abcdefghi") == {"active": False}


async def test_a_revoked_handle_is_inactive_and_others_cannot_revoke_it(client):
    handle = (await vault_exchange(client))["access_token"]
    resp = await client.post("/oauth2/revoke", data={"token": handle}, headers=basic("reports"))
    assert resp.status == 200
    assert (await introspect(client, handle, "vault", "vault-secret-0123456789abcdefghi"))["active"] is True
    resp = await client.post("/oauth2/revoke", data={"token": handle}, headers=basic("vault", "vault-secret-0123456789abcdefghi"))
    assert resp.status == 200
    assert await introspect(client, handle, "vault", "vault-secret-0123456789abcdefghi") == {"active": False}
    assert await client.app[STORE].scan("opaque") == []


async def test_an_expired_handle_is_inactive(client, clock):
    body = await vault_exchange(client)
    clock.now += body["expires_in"] + 1
    assert await introspect(client, body["access_token"], "vault", "vault-secret-0123456789abcdefghi") == {"active": False}


async def test_a_refresh_gives_an_opaque_client_a_new_handle(client):
    first = await vault_exchange(client)
    resp = await client.post("/oauth2/token", headers=basic("vault", "vault-secret-0123456789abcdefghi"),
                             data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    body = await resp.json()
    assert resp.status == 200, body
    assert "." not in body["access_token"] and body["access_token"] != first["access_token"]
    assert (await introspect(client, body["access_token"], "vault", "vault-secret-0123456789abcdefghi"))["active"] is True


async def test_an_opaque_client_cannot_ask_for_a_jwt(client):
    resp = await client.post("/oauth2/token", headers=basic("vault", "vault-secret-0123456789abcdefghi"),
                             data=exchange_form(partner_token(), requested_token_type=JWT_TYPE))
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"


async def test_a_handle_is_exchanged_as_a_self_subject_token_by_a_client_it_names(client):
    handle = (await vault_exchange(client, scope="read"))["access_token"]
    body = await exchange_ok(client, exchange_form(handle, audience="reports"), auth="dashboard")
    assert body["access_token"].count(".") == 2          # the dashboard gets JWTs
    derived = await introspect(client, body["access_token"], "dashboard")
    assert derived["sub"] == (await introspect(client, handle, "vault", "vault-secret-0123456789abcdefghi"))["sub"]
    # a handle of type jwt is not a JWT; a client the handle does not name is refused
    for form, who in ((exchange_form(handle, audience="reports", subject_token_type=JWT_TYPE), "dashboard"),
                      (exchange_form(handle, audience="archive"), "reports")):
        resp = await post_token(client, form, auth=who)
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"


async def test_a_revoked_handle_is_refused_as_a_subject_token(client):
    handle = (await vault_exchange(client))["access_token"]
    await client.post("/oauth2/revoke", data={"token": handle}, headers=basic("vault", "vault-secret-0123456789abcdefghi"))
    resp = await post_token(client, exchange_form(handle, audience="reports"), auth="dashboard")
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
