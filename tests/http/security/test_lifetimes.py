"""No token outlives what it came from: exchange/refresh chains and delegated tokens vs their actor.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from tests.http.token_support import (
    exchange_form,
    partner_token,
)
from tests.support.security_broker import claims_of, delegated, ok, post, refresh_form, refused

# --- lifetime laundering ----------------------------------------------------------------------

async def test_a_chain_of_three_exchanges_and_refreshes_never_outlives_the_original_subject(client):
    subject = partner_token(lifetime=120)
    subject_exp = claims_of(subject)["exp"]
    first = await ok(await post(client, "/oauth2/token", exchange_form(subject, audience="dashboard")))
    second = await ok(await post(client, "/oauth2/token", exchange_form(first["access_token"], audience="reports"),
                                 auth="dashboard"))
    third = await ok(await post(client, "/oauth2/token", exchange_form(second["access_token"], audience="archive"),
                                auth="reports"))
    refreshed = await ok(await post(client, "/oauth2/token", refresh_form(first["refresh_token"])))
    re_refreshed = await ok(await post(client, "/oauth2/token", refresh_form(second["refresh_token"]),
                                       auth="dashboard"))
    for body in (first, second, third, refreshed, re_refreshed):
        assert claims_of(body["access_token"])["exp"] <= subject_exp
        assert body["expires_in"] <= 120
    assert claims_of(third["access_token"])["sub"] == claims_of(first["access_token"])["sub"]


# --- the actor's lifetime ---------------------------------------------------------------------------

async def test_a_delegated_token_never_outlives_its_actor_token(client):
    body = await ok(await post(client, "/oauth2/token", delegated(partner_token(sub="user-1", lifetime=600),
                                                                  partner_token(sub="agent-1", lifetime=45))))
    assert body["expires_in"] <= 45


async def test_an_actor_token_expired_within_the_clock_skew_is_refused(client):
    stale = partner_token(sub="agent-1", iat=int(time.time()) - 300, exp=int(time.time()) - 20)
    with capture_logs() as logs:
        await refused(await post(client, "/oauth2/token", delegated(partner_token(sub="user-1"), stale)),
                      400, "invalid_request")
    assert [e["reason"] for e in logs if e.get("audit")] == ["actor_expired"]
