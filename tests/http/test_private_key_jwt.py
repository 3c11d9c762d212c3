"""private_key_jwt at /oauth2/token, /oauth2/introspect and /oauth2/revoke, and in the metadata."""

from __future__ import annotations

import jwt
import pytest

from service.app import create_app
from tests.http.token_support import (
    PUBLIC_URL,
    basic,
    exchange_form,
    make_settings,
    partner_token,
    post_token,
)
from tests.support.client_keys import ClientKeys


@pytest.fixture(name="keys")
def _keys(tmp_path) -> ClientKeys:
    return ClientKeys.create(tmp_path, "signer", PUBLIC_URL)


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path, keys):
    settings = make_settings(tmp_path, f"""
[[clients]]
client_id = "signer"
jwks = "{keys.path}"
allowed_issuers = ["partner"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
""")
    return await aiohttp_client(create_app(settings))


async def invalid_client(resp) -> dict:
    body = await resp.json()
    assert resp.status == 401, body
    assert body["error"] == "invalid_client"
    assert resp.headers["Cache-Control"] == "no-store"
    return body


@pytest.mark.parametrize("kid", ["signer-rsa", "signer-ec"])
async def test_a_client_exchanges_a_token_authenticated_by_its_signed_assertion(client, keys, kid):
    form = exchange_form(partner_token()) + keys.form(keys.assertion(kid))
    resp = await post_token(client, form, auth="")
    body = await resp.json()
    assert resp.status == 200, body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "signer" and claims["aud"] == "dashboard" and claims["scope"] == "read"


async def test_a_replayed_assertion_is_invalid_client(client, keys):
    form = exchange_form(partner_token()) + keys.form()
    assert (await post_token(client, form, auth="")).status == 200
    resp = await post_token(client, form, auth="")
    await invalid_client(resp)
    assert "WWW-Authenticate" not in resp.headers     # no Basic challenge: Basic was not used


@pytest.mark.parametrize("aud", [f"{PUBLIC_URL}/oauth2/token", [PUBLIC_URL]])
async def test_an_assertion_for_the_token_endpoint_url_or_an_audience_array_is_invalid_client(client, keys, aud):
    form = exchange_form(partner_token()) + keys.form(keys.assertion(aud=aud))
    await invalid_client(await post_token(client, form, auth=""))


async def test_an_assertion_with_basic_credentials_is_two_methods(client, keys):
    form = exchange_form(partner_token()) + keys.form()
    resp = await post_token(client, form, auth="portal")
    await invalid_client(resp)
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_a_keyed_client_cannot_authenticate_with_a_secret(client):
    form = exchange_form(partner_token()) + [("client_id", "signer"), ("client_secret", "")]
    await invalid_client(await post_token(client, form, auth=""))
    resp = await post_token(client, exchange_form(partner_token()), auth="",
                            headers=basic("signer", "guess"))
    await invalid_client(resp)


async def test_introspection_and_revocation_accept_private_key_jwt(client, keys):
    resp = await post_token(client, exchange_form(partner_token()) + keys.form(), auth="")
    token = (await resp.json())["access_token"]
    seen = await (await client.post("/oauth2/introspect", data=[("token", token), *keys.form()])).json()
    assert seen["active"] is True and seen["client_id"] == "signer"
    assert (await client.post("/oauth2/revoke", data=[("token", token), *keys.form()])).status == 200
    after = await (await client.post("/oauth2/introspect", data=[("token", token), *keys.form()])).json()
    assert after == {"active": False}
    replay = keys.form()
    await client.post("/oauth2/introspect", data=[("token", token), *replay])
    await invalid_client(await client.post("/oauth2/introspect", data=[("token", token), *replay]))


async def test_the_metadata_lists_private_key_jwt_and_its_algorithms(client):
    doc = await (await client.get("/.well-known/oauth-authorization-server")).json()
    for endpoint in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert "private_key_jwt" in doc[f"{endpoint}_auth_methods_supported"]
        algs = doc[f"{endpoint}_auth_signing_alg_values_supported"]
        assert set(algs) == {"RS256", "PS256", "ES256", "EdDSA"} and "none" not in algs
