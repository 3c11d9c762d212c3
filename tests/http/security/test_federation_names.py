"""Federation matches the validated trusted issuer NAME, and a refused request uses up nothing.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import base64
import secrets
import time

import jwt

from service.app import create_app
from service.grants.linking import Accounts
from service.typedefs import STORE
from tests.http.token_support import (
    BROKER_AUD,
    exchange_form,
)
from tests.support.security_broker import claims_of, ok, refused, security_settings

# --- federation: the issuer is the trusted issuer's NAME, matched after validation -------------------

CI_SECRET = "ci-hmac-secret-of-at-least-32-bytes-long!"
EVIL_SECRET = "evil-hmac-secret-of-at-least-32-bytes-long"
FEDERATION_TOML = f"""
[[trusted_issuers]]
name = "ci"
issuer = "https://ci.example"
secret = "{CI_SECRET}"
audiences = ["tokenbroker-federation"]
algorithms = ["HS256"]
replay_check = true

[[trusted_issuers]]
name = "evil"
issuer = "ci"
secret = "{EVIL_SECRET}"
audiences = ["tokenbroker-federation"]
algorithms = ["HS256"]

[[clients]]
client_id = "deployer"
client_secret = "deployer-secret-0123456789abcdef"
allowed_issuers = ["ci", "evil"]
allowed_audiences = ["build-agent"]
allowed_scopes = ["deploy", "read"]

[[clients]]
client_id = "build-agent"
client_secret = "build-agent-secret-0123456789abc"
allowed_scopes = ["deploy"]
federated_identities = [{{ issuer = "ci", subject = "repo:acme/app", audience = "tokenbroker-federation" }}]
"""


def ci_token(iss: str, secret: str, sub: str = "repo:acme/app") -> str:
    now = int(time.time())
    return jwt.encode({"iss": iss, "sub": sub, "aud": "tokenbroker-federation", "scope": "deploy read",
                       "iat": now, "exp": now + 300, "jti": secrets.token_hex(8)}, secret, algorithm="HS256")


DEPLOYER = {"Authorization": "Basic " + base64.b64encode(b"deployer:deployer-secret-0123456789abcdef").decode()}


async def test_a_request_refused_by_federation_does_not_use_up_a_single_use_token(aiohttp_client, tmp_path):
    """`read` passes the requester's policy but not the federated client's scopes: invalid_scope,
    and the single-use token is still good for a corrected request."""
    client = await aiohttp_client(create_app(security_settings(tmp_path, FEDERATION_TOML)))
    token = ci_token("https://ci.example", CI_SECRET)
    resp = await client.post("/oauth2/token", headers=DEPLOYER,
                             data=exchange_form(token, audience="build-agent", scope="read"))
    await refused(resp, 400, "invalid_scope")
    resp = await client.post("/oauth2/token", headers=DEPLOYER,
                             data=exchange_form(token, audience="build-agent", scope="deploy"))
    assert claims_of((await ok(resp))["access_token"])["sub"] == "build-agent"
    resp = await client.post("/oauth2/token", headers=DEPLOYER,
                             data=exchange_form(token, audience="build-agent", scope="deploy"))
    await refused(resp, 400, "invalid_request")                        # and now it is used up


async def test_a_request_refused_by_account_linking_does_not_use_up_a_single_use_token(aiohttp_client, tmp_path):
    extra = f"""
[[trusted_issuers]]
name = "linked-only"
issuer = "https://linked.example"
secret = "{CI_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
replay_check = true
linking = "require_linked"

[[clients]]
client_id = "linker"
client_secret = "linker-secret-0123456789abcdefgh"
allowed_issuers = ["linked-only"]
allowed_audiences = ["dashboard"]
"""
    client = await aiohttp_client(create_app(security_settings(tmp_path, extra)))
    auth = {"Authorization": "Basic " + base64.b64encode(b"linker:linker-secret-0123456789abcdefgh").decode()}
    now = int(time.time())
    token = jwt.encode({"iss": "https://linked.example", "sub": "ext-9", "aud": BROKER_AUD, "iat": now,
                        "exp": now + 300, "jti": "once-9"}, CI_SECRET, algorithm="HS256")
    await refused(await client.post("/oauth2/token", headers=auth, data=exchange_form(token)), 400,
                  "invalid_request")
    accounts = Accounts(client.app[STORE])
    account = await accounts.create({"name": "Ext Nine"})
    await accounts.link(account.id, "linked-only", "ext-9")
    body = await ok(await client.post("/oauth2/token", headers=auth, data=exchange_form(token)))
    assert claims_of(body["access_token"])["sub"] == account.id


async def test_federation_matches_the_validated_issuer_not_an_iss_that_spells_its_name(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(security_settings(tmp_path, FEDERATION_TOML)))
    deployer = DEPLOYER

    async def exchange(token: str) -> dict:
        resp = await client.post("/oauth2/token", data=exchange_form(token, audience="build-agent"),
                                 headers=deployer)
        return await ok(resp)

    real = claims_of((await exchange(ci_token("https://ci.example", CI_SECRET)))["access_token"])
    assert real["sub"] == real["client_id"] == "build-agent"
    # the "evil" issuer's iss is literally "ci", the NAME of the federated issuer: an ordinary user
    spoof = claims_of((await exchange(ci_token("ci", EVIL_SECRET)))["access_token"])
    assert spoof["sub"] != "build-agent" and spoof["client_id"] == "deployer"
    # and the evil issuer's key cannot sign for https://ci.example
    resp = await client.post("/oauth2/token", headers=deployer,
                             data=exchange_form(ci_token("https://ci.example", EVIL_SECRET), audience="build-agent"))
    await refused(resp, 400, "invalid_request")
