"""Upscoping: refresh and exchange never widen scope or audience beyond what the client and subject hold.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

from service.app import create_app
from tests.http.token_support import (
    exchange_form,
    partner_token,
)
from tests.support.security_broker import claims_of, ok, post, refresh_form, refused, security_settings

# --- upscoping --------------------------------------------------------------------------------

async def test_refresh_never_widens_scope_or_audience(client):
    body = await ok(await post(client, "/oauth2/token",
                               exchange_form(partner_token(scope="partner.read"), audience="dashboard")))
    assert claims_of(body["access_token"])["scope"] == "read"
    await refused(await post(client, "/oauth2/token", refresh_form(body["refresh_token"], scope="read write")),
                  400, "invalid_scope")
    # audience/resource sent with a refresh are ignored: the family's audience is what it is
    again = await ok(await post(client, "/oauth2/token",
                                refresh_form(body["refresh_token"], audience="reports", resource="reports")))
    claims = claims_of(again["access_token"])
    assert claims["aud"] == "dashboard" and claims["scope"] == "read"


async def test_a_refresh_after_the_client_lost_a_scope_no_longer_issues_that_scope(aiohttp_client, tmp_path):
    """An operator removes `write` from portal: existing refresh families must not keep minting it."""
    store = f"sqlite:///{tmp_path}/state.db"
    before = await aiohttp_client(create_app(security_settings(tmp_path, store=store)))
    body = await ok(await post(before, "/oauth2/token", exchange_form(partner_token(scope="partner.all"))))
    assert claims_of(body["access_token"])["scope"] == "read write"
    await before.close()
    after = await aiohttp_client(create_app(security_settings(tmp_path, store=store, portal_scopes='["read"]')))
    again = await ok(await post(after, "/oauth2/token", refresh_form(body["refresh_token"])))
    assert claims_of(again["access_token"])["scope"] == "read"
    assert again["scope"] == "read"
    await refused(await post(after, "/oauth2/token", refresh_form(again["refresh_token"], scope="write")),
                  400, "invalid_scope")


async def test_exchanging_our_own_token_never_gains_a_scope_it_lacks(client):
    narrow = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(scope="partner.read"))))
    # dashboard may grant read and write, but the subject only holds read
    await refused(await post(client, "/oauth2/token", exchange_form(narrow["access_token"], audience="reports",
                                                                    scope="write"), auth="dashboard"),
                  400, "invalid_scope")
    wide = await ok(await post(client, "/oauth2/token", exchange_form(narrow["access_token"], audience="reports"),
                               auth="dashboard"))
    assert claims_of(wide["access_token"])["scope"] == "read"


async def test_scope_map_grants_only_what_it_maps_even_to_a_client_allowed_more(client):
    """mallory may grant admin, and the partner token says admin, but the partner's scope_map
    has no entry for it: with a scope_map, unmapped scopes grant nothing."""
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(scope="admin partner.read")),
                               auth="mallory"))
    assert claims_of(body["access_token"])["scope"] == "read"
    for scope in ("admin", "write", "read admin"):
        await refused(await post(client, "/oauth2/token", exchange_form(partner_token(scope="admin partner.read"),
                                                                        scope=scope), auth="mallory"),
                      400, "invalid_scope")
