"""Cross-client use and audience injection: a token works only for the clients it names.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import pytest

from tests.http.token_support import (
    exchange_form,
    partner_token,
)
from tests.support.security_broker import claims_of, ok, post, refresh_form, refused

# --- cross-client use -------------------------------------------------------------------------

async def test_another_client_can_neither_refresh_introspect_revoke_nor_exchange_a_token(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    access, refresh = body["access_token"], body["refresh_token"]
    await refused(await post(client, "/oauth2/token", refresh_form(refresh), auth="mallory"), 400, "invalid_grant")
    for token in (access, refresh):
        seen = await ok(await post(client, "/oauth2/introspect", {"token": token}, auth="mallory"))
        assert seen == {"active": False}
        assert (await post(client, "/oauth2/revoke", {"token": token}, auth="mallory")).status == 200
    # mallory is allowed `self` and every audience, yet the token names neither her nor anything of hers
    await refused(await post(client, "/oauth2/token", exchange_form(access, audience="archive"), auth="mallory"),
                  400, "invalid_request")
    # and everything still works for its owner
    assert (await ok(await post(client, "/oauth2/introspect", {"token": access})))["active"] is True
    await ok(await post(client, "/oauth2/token", refresh_form(refresh)))


async def test_an_introspection_only_client_cannot_use_the_token_endpoint(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    await refused(await post(client, "/oauth2/token", refresh_form(body["refresh_token"]), auth="inspector"),
                  400, "unauthorized_client")
    await refused(await post(client, "/oauth2/token", exchange_form(body["access_token"]), auth="inspector"),
                  400, "unauthorized_client")
    assert await ok(await post(client, "/oauth2/introspect", {"token": body["access_token"]},
                               auth="inspector")) == {"active": False}


# --- audience injection -----------------------------------------------------------------------

@pytest.mark.parametrize("targets", [
    pytest.param([("audience", "dashboard reports archive")], id="space-joined"),
    pytest.param([("audience", "dashboard,archive")], id="comma-joined"),
    pytest.param([("audience", '["dashboard","archive"]')], id="json-array"),
    pytest.param([("audience", "dashboard"), ("resource", "archive")], id="resource-smuggles-a-target"),
    pytest.param([("audience", "Dashboard")], id="case-variant"),
    pytest.param([("audience", "dashboard "), ], id="trailing-space"),
    pytest.param([("audience[]", "dashboard")], id="php-array-name"),
])
async def test_audience_injection_is_invalid_target_or_invalid_request(client, targets):
    form = exchange_form(partner_token(), audience=None) + targets
    resp = await post(client, "/oauth2/token", form)
    body = await resp.json()
    assert resp.status == 400 and body["error"] in ("invalid_target", "invalid_request"), body


async def test_several_targets_all_land_in_aud_and_each_named_client_may_use_the_token(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience=None)
                               + [("audience", "dashboard"), ("resource", "reports"), ("audience", "dashboard")]))
    assert claims_of(body["access_token"])["aud"] == ["dashboard", "reports"]
    for who, target in (("dashboard", "reports"), ("reports", "archive")):
        await ok(await post(client, "/oauth2/token", exchange_form(body["access_token"], audience=target), auth=who))
