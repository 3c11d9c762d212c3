"""Guessed, truncated, altered and garbage tokens and handles are worthless and never a 500.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import time

import pytest

from tests.http.token_support import (
    PUBLIC_URL,
    exchange_form,
    partner_token,
)
from tests.support.security_broker import ok, post, refresh_form, refused
from tests.validation.forge import segment

# --- opaque handles and garbage -----------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "A" * 43, "A" * 42, "A" * 44, "_" * 43, "refresh", "Bearer x", "." * 2,
])
async def test_guessed_or_truncated_handles_and_garbage_are_worthless(client, token):
    assert await ok(await post(client, "/oauth2/introspect", {"token": token})) == {"active": False}
    assert (await post(client, "/oauth2/revoke", {"token": token})).status == 200
    await refused(await post(client, "/oauth2/token", exchange_form(token)), 400, "invalid_request")
    await refused(await post(client, "/oauth2/token", refresh_form(token)), 400, "invalid_grant")


async def test_a_truncated_or_extended_refresh_token_is_invalid_grant_and_harms_nothing(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token())))
    token = body["refresh_token"]
    for variant in (token[:-1], token + "A", token + "=", token.upper()):
        await refused(await post(client, "/oauth2/token", refresh_form(variant)), 400, "invalid_grant")
    await ok(await post(client, "/oauth2/token", refresh_form(token)))


# --- lone surrogates from unauthenticated callers -------------------------------------------------

def unsigned(header: dict, payload: dict) -> str:
    return f"{segment(header)}.{segment(payload)}.c2ln"


@pytest.mark.parametrize("where", ["assertion-sub", "subject-iss", "subject-kid", "bearer-kid", "bearer-tid"])
async def test_lone_surrogates_from_anyone_are_a_4xx_never_a_500(client, where):
    now = int(time.time())
    token = {"assertion-sub": unsigned({"alg": "ES256", "kid": "k"}, {"iss": "x", "sub": "\ud800", "aud": PUBLIC_URL}),
             "subject-iss": unsigned({"alg": "HS256"}, {"iss": "\udc00", "sub": "u", "exp": now + 60}),
             "subject-kid": unsigned({"alg": "ES256", "kid": "\ud800", "typ": "at+jwt"},
                                     {"iss": PUBLIC_URL, "sub": "u", "exp": now + 60}),
             "bearer-kid": unsigned({"alg": "RS256", "kid": "\ud800"}, {"ver": "2.0", "tid": "t", "exp": now + 60}),
             "bearer-tid": unsigned({"alg": "RS256", "kid": "k"}, {"ver": "2.0", "tid": "\ud800", "exp": now + 60}),
             }[where]
    if where == "assertion-sub":
        resp = await client.post("/oauth2/token", data=exchange_form(partner_token()) + [
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", token)])
        assert resp.status == 401
    elif where.startswith("bearer"):
        resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401
    else:
        resp = await post(client, "/oauth2/token", exchange_form(token, audience="reports"), auth="dashboard")
        assert resp.status == 400
    assert "error" in await resp.json()


# --- a real opaque handle, altered ------------------------------------------------------------------

async def test_a_real_handle_altered_by_one_character_or_truncated_is_worthless(client):
    handle = (await ok(await post(client, "/oauth2/token", exchange_form(partner_token()), auth="vault")))[
        "access_token"]
    assert (await ok(await post(client, "/oauth2/introspect", {"token": handle}, auth="vault")))["active"]
    flipped = handle[:-1] + ("A" if handle[-1] != "A" else "B")
    for variant in (flipped, handle[:-1], handle + "A", handle.upper() if handle.upper() != handle else flipped):
        assert await ok(await post(client, "/oauth2/introspect", {"token": variant}, auth="vault")) == \
            {"active": False}
        await refused(await post(client, "/oauth2/token", exchange_form(variant), auth="vault"), 400,
                      "invalid_request")
    # the owner can still use the real one; a dashboard-audience client can exchange it, mallory cannot
    await refused(await post(client, "/oauth2/token", exchange_form(handle, audience="archive"), auth="mallory"),
                  400, "invalid_request")
    await ok(await post(client, "/oauth2/token", exchange_form(handle, audience="reports"), auth="dashboard"))
