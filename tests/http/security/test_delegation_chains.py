"""Forged delegation chains: act claims keep their real issuer and may_act cannot be bypassed.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

from tests.http.token_support import (
    ACCESS_TOKEN,
    PARTNER_ISS,
    PUBLIC_URL,
    exchange_form,
    partner_token,
)
from tests.support.security_broker import claims_of, ok, post, refused

# --- forged delegation chains -------------------------------------------------------------------

async def test_an_act_chain_asserted_by_a_partner_keeps_the_partner_as_its_issuer(client):
    """A partner may say who acted, but only in its own namespace: a bare `sub` must not read as
    one of our local subjects, and it may not speak for the broker."""
    victim = claims_of((await ok(await post(client, "/oauth2/token", exchange_form(partner_token(sub="victim")))))
                       ["access_token"])["sub"]
    forged = partner_token(sub="user-1", act={"sub": victim, "act": {"sub": "agent-0"}})
    body = await ok(await post(client, "/oauth2/token", exchange_form(forged)))
    act = claims_of(body["access_token"])["act"]
    assert act == {"sub": victim, "iss": PARTNER_ISS, "act": {"sub": "agent-0", "iss": PARTNER_ISS}}
    seen = await ok(await post(client, "/oauth2/introspect", {"token": body["access_token"]}))
    assert seen["act"] == act
    # re-exchanging our token keeps the partner's stamp (it is ours now, nothing is rewritten)
    again = await ok(await post(client, "/oauth2/token", exchange_form(body["access_token"], audience="reports"),
                                auth="dashboard"))
    assert claims_of(again["access_token"])["act"] == act


async def test_a_partner_cannot_assert_an_act_in_the_brokers_name(client):
    forged = partner_token(sub="user-1", act={"sub": "someone", "iss": PUBLIC_URL})
    await refused(await post(client, "/oauth2/token", exchange_form(forged)), 400, "invalid_request")


async def test_may_act_cannot_be_bypassed_by_leaving_out_the_actor_or_sending_the_wrong_one(client):
    subject = lambda: partner_token(sub="user-1", may_act={"sub": "agent-7"})  # noqa: E731
    await refused(await post(client, "/oauth2/token", exchange_form(subject())), 400, "invalid_request")
    wrong = exchange_form(subject()) + [("actor_token", partner_token(sub="agent-8")),
                                        ("actor_token_type", ACCESS_TOKEN)]
    await refused(await post(client, "/oauth2/token", wrong), 400, "invalid_request")
    right = exchange_form(subject()) + [("actor_token", partner_token(sub="agent-7")),
                                        ("actor_token_type", ACCESS_TOKEN)]
    body = await ok(await post(client, "/oauth2/token", right))
    assert "refresh_token" not in body
