"""The refresh_token grant: rotation, reuse detection, binding to the client, lifetime caps."""

from __future__ import annotations

import time

import jwt

from tests.http.token_support import exchange_form, exchange_ok, partner_token, post_token


def refresh_form(token: str, **extra: str) -> list[tuple[str, str]]:
    return [("grant_type", "refresh_token"), ("refresh_token", token), *extra.items()]


async def test_each_refresh_rotates_the_refresh_token_and_keeps_the_grant(client):
    first = await exchange_ok(client, exchange_form(partner_token(lifetime=3600), scope="read"))
    second = await exchange_ok(client, refresh_form(first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    c1 = jwt.decode(first["access_token"], options={"verify_signature": False})
    c2 = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert (c2["sub"], c2["aud"], c2["scope"], c2["client_id"]) == (c1["sub"], c1["aud"], "read", "portal")
    assert c2["jti"] != c1["jti"]
    third = await exchange_ok(client, refresh_form(second["refresh_token"]))
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client):
    first = await exchange_ok(client, exchange_form(partner_token(lifetime=3600)))
    second = await exchange_ok(client, refresh_form(first["refresh_token"]))
    replay = await post_token(client, refresh_form(first["refresh_token"]))
    assert replay.status == 400
    assert (await replay.json())["error"] == "invalid_grant"
    # the legitimate successor is dead too
    after = await post_token(client, refresh_form(second["refresh_token"]))
    assert after.status == 400
    assert (await after.json())["error"] == "invalid_grant"


async def test_a_refresh_token_of_another_client_is_invalid_grant_and_stays_usable(client):
    first = await exchange_ok(client, exchange_form(partner_token(lifetime=3600)))
    resp = await post_token(client, refresh_form(first["refresh_token"]), auth="dashboard")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_grant"
    await exchange_ok(client, refresh_form(first["refresh_token"]))


async def test_refreshed_tokens_never_outlive_the_original_subject_token(client):
    first = await exchange_ok(client, exchange_form(partner_token(lifetime=90)))
    second = await exchange_ok(client, refresh_form(first["refresh_token"]))
    assert second["expires_in"] <= 90
    claims = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert claims["exp"] <= int(time.time()) + 90


async def test_a_refresh_may_narrow_the_scope_but_not_widen_it(client):
    first = await exchange_ok(client, exchange_form(partner_token(lifetime=3600), scope="read"))
    wider = await post_token(client, refresh_form(first["refresh_token"], scope="read write"))
    assert wider.status == 400
    assert (await wider.json())["error"] == "invalid_scope"
    both = await exchange_ok(client, exchange_form(partner_token(lifetime=3600), scope="read write"))
    narrow = await exchange_ok(client, refresh_form(both["refresh_token"], scope="write"))
    assert jwt.decode(narrow["access_token"], options={"verify_signature": False})["scope"] == "write"


async def test_clients_without_refresh_tokens_get_none(client):
    mine = await exchange_ok(client, exchange_form(partner_token()))
    body = await exchange_ok(client, exchange_form(mine["access_token"], audience="reports"), auth="dashboard")
    assert "refresh_token" not in body
