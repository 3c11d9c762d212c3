"""A revoked token or one signed by a retired key is dead everywhere, before its exp.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import time

import jwt

from service.issuing.keyring import rotate_keys
from service.typedefs import KEYRING
from tests.http.token_support import (
    ACCESS_TOKEN,
    exchange_form,
    partner_token,
)
from tests.support.security_broker import ok, post, refused

# --- revocation ---------------------------------------------------------------------------------

async def test_a_revoked_access_token_is_dead_everywhere(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    assert (await post(client, "/oauth2/revoke", {"token": body["access_token"]})).status == 200
    assert await ok(await post(client, "/oauth2/introspect", {"token": body["access_token"]})) == {"active": False}
    await refused(await post(client, "/oauth2/token", exchange_form(body["access_token"], audience="reports"),
                             auth="dashboard"), 400, "invalid_request")
    # ...also as an actor token
    form = exchange_form(partner_token(sub="someone-else"), audience="dashboard") + [
        ("actor_token", body["access_token"]), ("actor_token_type", ACCESS_TOKEN)]
    await refused(await post(client, "/oauth2/token", form), 400, "invalid_request")


# --- key rotation -------------------------------------------------------------------------------

async def test_a_token_signed_by_a_retired_key_is_dead_before_its_exp(client, tmp_path):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    old_kid = jwt.get_unverified_header(body["access_token"])["kid"]
    # an operator rotates with no overlap at all (max_token_ttl=0): the old key retires now
    rotate_keys(tmp_path / "keys", "ES256", now=time.time(), activation_delay=0, max_token_ttl=0)
    client.app[KEYRING].reload()
    kids = [k["kid"] for k in (await ok(await client.get("/oauth2/jwks")))["keys"]]
    assert old_kid not in kids and kids
    assert await ok(await post(client, "/oauth2/introspect", {"token": body["access_token"]})) == {"active": False}
    await refused(await post(client, "/oauth2/token", exchange_form(body["access_token"], audience="reports"),
                             auth="dashboard"), 400, "invalid_request")
    fresh = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] in kids
