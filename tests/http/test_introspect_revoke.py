"""Introspection (RFC 7662) and revocation (RFC 7009) of our access and refresh tokens."""

from __future__ import annotations

from tests.http.token_support import (
    basic,
    exchange_form,
    exchange_ok,
    partner_token,
    post_token,
)


async def introspect(client, token: str, auth: str = "portal") -> dict:
    resp = await client.post("/oauth2/introspect", data={"token": token}, headers=basic(auth))
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    return await resp.json()


async def revoke(client, token: str, auth: str = "portal") -> None:
    resp = await client.post("/oauth2/revoke", data={"token": token}, headers=basic(auth))
    assert resp.status == 200


async def test_exchange_introspect_revoke_introspect(client):
    issued = await exchange_ok(client, exchange_form(partner_token(lifetime=3600), scope="read"))
    info = await introspect(client, issued["access_token"])
    assert info["active"] is True
    assert info["client_id"] == "portal" and info["aud"] == "dashboard" and info["scope"] == "read"
    assert info["exp"] > info["iat"] and info["jti"] and info["sub"] and info["iss"] == "http://broker.test"
    await revoke(client, issued["access_token"])
    assert await introspect(client, issued["access_token"]) == {"active": False}


async def test_a_client_named_in_aud_sees_the_details_and_others_see_inactive(client):
    issued = await exchange_ok(client, exchange_form(partner_token()))
    assert (await introspect(client, issued["access_token"], auth="dashboard"))["active"] is True
    assert await introspect(client, issued["access_token"], auth="inspector") == {"active": False}


async def test_another_clients_revocation_leaves_the_token_untouched(client):
    issued = await exchange_ok(client, exchange_form(partner_token()))
    await revoke(client, issued["access_token"], auth="dashboard")
    await revoke(client, issued["refresh_token"], auth="inspector")
    assert (await introspect(client, issued["access_token"]))["active"] is True
    assert (await introspect(client, issued["refresh_token"]))["active"] is True


async def test_a_revoked_token_can_no_longer_be_exchanged(client):
    issued = await exchange_ok(client, exchange_form(partner_token()))
    await revoke(client, issued["access_token"])
    resp = await post_token(client, exchange_form(issued["access_token"], audience="reports"), auth="dashboard")
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"


async def test_unknown_and_garbage_tokens_are_inactive_and_revoking_them_is_fine(client):
    for token in ("nope", "a.b.c", partner_token()):
        assert await introspect(client, token) == {"active": False}
        await revoke(client, token)


async def test_a_refresh_token_introspects_and_revoking_it_revokes_the_family(client):
    issued = await exchange_ok(client, exchange_form(partner_token()))
    info = await introspect(client, issued["refresh_token"])
    assert info["active"] is True and info["token_type"] == "refresh_token" and info["client_id"] == "portal"
    await revoke(client, issued["refresh_token"])
    assert await introspect(client, issued["refresh_token"]) == {"active": False}
    resp = await post_token(client, [("grant_type", "refresh_token"), ("refresh_token", issued["refresh_token"])])
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_grant"


async def test_introspection_requires_client_authentication_and_a_token(client):
    resp = await client.post("/oauth2/introspect", data={"token": "x"})
    assert resp.status == 401
    assert (await resp.json())["error"] == "invalid_client"
    resp = await client.post("/oauth2/introspect", data={}, headers=basic("portal"))
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"
    resp = await client.post("/oauth2/revoke", data=[("token", "a"), ("token", "b")], headers=basic("portal"))
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"
