"""Entra subject tokens (real tokens from the Entra emulator over HTTPS) and RFC 8693 Appendix A
request/response vectors, adapted: the RFC's tokens are opaque, ours are minted JWTs."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from emulators.entra import demo
from service.app import create_app
from service.typedefs import TOKEN_ISSUER
from tests.http.token_support import (
    ACCESS_TOKEN,
    BASE_TOML,
    JWT_TYPE,
    basic,
    exchange_form,
    make_settings,
    post_token,
)
from tests.support.oauth import entra_block

BROKER = demo.BROKER_CLIENT_ID


def entra_toml(emu) -> str:
    return entra_block(emu, client_id=BROKER, allowed_tenants=f'["{demo.TENANT_ID}", "{demo.PARTNER_TENANT_ID}"]',
                       scope_map='{ user_impersonation = ["read", "write"] }') + """
[[clients]]
client_id = "spa-backend"
client_secret = "spa-backend-secret-0123456789abc"
allowed_issuers = ["entra"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]

[[clients]]
client_id = "rs08"
client_secret = "sha256:9240e884568b5711d2d566e9274836cc6e21db543b1f5e57939207197c2e1a58"   # the RFC 8693 A.1 vector's 30-character secret, hashed
allowed_issuers = ["self", "partner"]
allowed_audiences = ["https://backend.example.com/api", "urn:example:cooperation-context"]
access_token_ttl = 60
"""


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path, entra):
    return await aiohttp_client(create_app(make_settings(tmp_path, entra_toml(entra), base=BASE_TOML)))


def mint_entra(emu, **kw) -> str:
    kw.setdefault("resource", BROKER)
    kw.setdefault("client_id", demo.PUBLIC_CLIENT_ID)
    kw.setdefault("scopes", ["user_impersonation"])
    return emu.mint(**kw)


async def spa_exchange(client, token: str, **extra):
    return await client.post("/oauth2/token", data=exchange_form(token, **extra),
                             headers=basic("spa-backend", "spa-backend-secret-0123456789abc"))


async def test_an_entra_token_is_exchanged_with_tid_oid_and_a_local_sub(client, entra):
    resp = await spa_exchange(client, mint_entra(entra, user=demo.ALICE_UPN))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["scope"] == "read"    # user_impersonation → read, write; the client may have read only
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["tid"] == demo.TENANT_ID and claims["oid"] == demo.ALICE_OID
    assert claims["sub"] not in (demo.ALICE_OID, demo.ALICE_UPN)
    uuid.UUID(claims["sub"])


async def test_the_local_sub_is_keyed_on_tid_and_oid_not_on_the_token_version_or_app(client, entra):
    v1 = await (await spa_exchange(client, mint_entra(entra, user=demo.ALICE_UPN, version=1))).json()
    v2 = await (await spa_exchange(client, mint_entra(entra, user=demo.ALICE_UPN, version=2,
                                                      client_id=demo.CLIENT_ID))).json()
    bob = await (await spa_exchange(client, mint_entra(entra, user=demo.BOB_UPN))).json()
    sub = lambda b: jwt.decode(b["access_token"], options={"verify_signature": False})["sub"]  # noqa: E731
    assert sub(v1) == sub(v2) != sub(bob)


async def test_the_lifetime_is_capped_by_the_entra_tokens_expiry(client, entra):
    body = await (await spa_exchange(client, mint_entra(entra, lifetime=60))).json()
    assert 0 < body["expires_in"] <= 60


@pytest.mark.parametrize("kw", [
    pytest.param({"resource": "https://graph.microsoft.com"}, id="token-for-another-resource"),
    pytest.param({"scopes": ["other_scope"]}, id="missing-required-scope"),
    pytest.param({"lifetime": -300}, id="expired"),
])
async def test_an_unacceptable_entra_token_is_invalid_request(client, entra, kw):
    resp = await spa_exchange(client, mint_entra(entra, **kw))
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


async def test_a_client_not_allowed_entra_cannot_exchange_entra_tokens(client, entra):
    resp = await post_token(client, exchange_form(mint_entra(entra)), auth="portal")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


# --- RFC 8693 Appendix A ------------------------------------------------------------------

RFC_A1_BODY = ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
               "&resource=https%3A%2F%2Fbackend.example.com%2Fapi"
               "&subject_token={subject_token}"
               "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token")
RFC_A1_AUTH = "Basic cnMwODpsb25nLXNlY3VyZS1yYW5kb20tc2VjcmV0"     # rs08:long-secure-random-secret


async def test_rfc8693_a1_impersonation_vector(client):
    """A.1: resource + access_token subject → Bearer access token, expires_in 60 (the client TTL)."""
    subject = client.app[TOKEN_ISSUER].mint({"sub": "user-a1", "aud": "rs08", "client_id": "portal"},
                                            now=time.time(), ttl=600).token
    resp = await client.post("/oauth2/token", data=RFC_A1_BODY.format(subject_token=subject), headers={
        "Authorization": RFC_A1_AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    body = await resp.json()
    assert resp.status == 200, body
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://backend.example.com/api"
    assert claims["sub"] == "user-a1"


async def test_rfc8693_a2_vector_with_the_subject_token_as_its_own_actor_is_refused(client):
    """A.2.1 shape, but the actor token is the subject token itself: actor == subject is invalid_request
    (the real A.2 delegation is in tests/http/test_delegation.py)."""
    subject = client.app[TOKEN_ISSUER].mint({"sub": "user@example.net", "aud": "rs08", "client_id": "rs08",
                                             "may_act": {"sub": "admin@example.net"}},
                                            now=time.time(), ttl=600).token
    form = exchange_form(subject, audience="urn:example:cooperation-context", subject_token_type=JWT_TYPE,
                         actor_token=subject, actor_token_type=JWT_TYPE)
    resp = await client.post("/oauth2/token", data=form, headers={"Authorization": RFC_A1_AUTH})
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


async def test_rfc8693_a2_subject_alone_is_exchanged_for_a_jwt(client):
    subject = client.app[TOKEN_ISSUER].mint({"sub": "user@example.net", "aud": "rs08", "client_id": "rs08"},
                                            now=time.time(), ttl=3600).token
    form = exchange_form(subject, audience="urn:example:cooperation-context", subject_token_type=JWT_TYPE,
                         requested_token_type=JWT_TYPE)
    resp = await client.post("/oauth2/token", data=form, headers={"Authorization": RFC_A1_AUTH})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["issued_token_type"] == JWT_TYPE
    assert body["expires_in"] == 60
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == \
        "urn:example:cooperation-context"
