"""Signed but hostile partner tokens (claims, duplicate keys, headers, attacker keys) are refused.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest

from tests.http.token_support import (
    BROKER_AUD,
    PARTNER_ISS,
    PARTNER_SECRET,
    PUBLIC_URL,
    exchange_form,
    partner_token,
)
from tests.support.security_broker import ok, post, refused
from tests.validation.forge import segment, sign

# --- hostile but signed partner tokens ----------------------------------------------------------

@pytest.mark.parametrize("claims", [
    pytest.param({"sub": "\ud800"}, id="lone-surrogate-sub"),
    pytest.param({"jti": "\udfff"}, id="lone-surrogate-jti"),
    pytest.param({"scope": "partner.read \ud83d"}, id="lone-surrogate-scope"),
    pytest.param({"exp": str(int(time.time()) + 600)}, id="string-exp"),
    pytest.param({"exp": None}, id="no-exp"),
    pytest.param({"exp": True}, id="bool-exp"),
    pytest.param({"exp": 10 ** 30}, id="absurd-exp"),
    pytest.param({"aud": [BROKER_AUD[:-1]]}, id="partial-aud"),
    pytest.param({"iss": PARTNER_ISS + "/"}, id="iss-with-slash"),
    pytest.param({"sub": ""}, id="empty-sub"),
    pytest.param({"sub": 42}, id="numeric-sub"),
    pytest.param({"jti": None}, id="no-jti-with-replay-check"),
    pytest.param({"act": "agent"}, id="act-not-an-object"),
    pytest.param({"may_act": ["agent"]}, id="may-act-not-an-object"),
])
async def test_signed_but_hostile_partner_claims_are_invalid_request_never_500(client, claims):
    resp = await post(client, "/oauth2/token", exchange_form(partner_token(**claims)))
    body = await resp.json()
    if claims.get("exp") == 10 ** 30:                   # legal, just long-lived: capped at the client's TTL
        assert resp.status == 200 and body["expires_in"] <= 900, body
        return
    assert (resp.status, body["error"]) == (400, "invalid_request"), body


def raw_hs256(header: dict, payload_json: str, secret: str = PARTNER_SECRET) -> str:
    import hmac as _hmac
    signing_input = f"{segment(header)}.{segment(payload_json)}"
    sig = _hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


async def test_duplicate_claims_in_a_signed_partner_token_are_refused(client):
    now = int(time.time())
    payload = (f'{{"iss":"{PARTNER_ISS}","sub":"user-1","aud":"{BROKER_AUD}","scope":"partner.read",'
               f'"scope":"partner.all","iat":{now},"exp":{now + 600},"jti":"dup-1"}}')
    token = raw_hs256({"alg": "HS256", "typ": "JWT"}, payload)
    await refused(await post(client, "/oauth2/token", exchange_form(token)), 400, "invalid_request")


@pytest.mark.parametrize("header", [
    {"alg": "HS256", "crit": ["exp"]},
    {"alg": "hs256"},
    {"alg": "none"},
    {"alg": "HS512"},
])
async def test_partner_tokens_with_a_hostile_header_are_refused(client, header):
    now = int(time.time())
    payload = json.dumps({"iss": PARTNER_ISS, "sub": "u", "aud": BROKER_AUD, "iat": now, "exp": now + 600,
                          "jti": f"h-{header['alg']}"})
    await refused(await post(client, "/oauth2/token", exchange_form(raw_hs256(header, payload))),
                  400, "invalid_request")


async def test_a_token_signed_by_an_attacker_key_naming_our_issuer_is_refused(client):
    now = int(time.time())
    forged = sign({"alg": "RS256", "typ": "at+jwt", "kid": "attacker"},
                  {"iss": PUBLIC_URL, "sub": "admin", "aud": "dashboard", "client_id": "portal", "scope": "admin",
                   "iat": now, "exp": now + 600, "jti": "forged"}, alg="RS256", key=None)
    await refused(await post(client, "/oauth2/token", exchange_form(forged, audience="reports"), auth="dashboard"),
                  400, "invalid_request")
    assert await ok(await post(client, "/oauth2/introspect", {"token": forged})) == {"active": False}
