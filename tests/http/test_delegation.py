"""Delegation (RFC 8693 §1.1, §4.1, §4.4) at /oauth2/token: `act` in JWTs and introspection, nested
chains, `may_act`, actor == subject, no refresh tokens for delegated tokens, the audited chain."""

from __future__ import annotations

import time

import jwt
import pytest
from structlog.testing import capture_logs

from service.typedefs import TOKEN_ISSUER
from tests.http.token_support import (
    ACCESS_TOKEN,
    JWT_TYPE,
    PARTNER_ISS,
    basic,
    exchange_form,
    exchange_ok,
    partner_token,
    post_token,
)
from tests.support.oauth import refused as refused_with


def delegated_form(subject: str, actor: str, *, audience: str = "dashboard", actor_type: str = ACCESS_TOKEN,
                   **extra) -> list[tuple[str, str]]:
    return exchange_form(subject, audience=audience, **extra) + [("actor_token", actor),
                                                                 ("actor_token_type", actor_type)]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def local_sub(client, token: str) -> str:
    """The local sub the broker gives a partner identity (from a plain exchange)."""
    return claims_of((await exchange_ok(client, exchange_form(token)))["access_token"])["sub"]


async def refused(resp) -> None:
    await refused_with(resp, 400, "invalid_request")


async def test_an_actor_token_puts_act_in_the_jwt_and_in_introspection_and_no_refresh_token(client):
    agent = await local_sub(client, partner_token(sub="agent-1"))
    user = await local_sub(client, partner_token(sub="user-1"))
    body = await exchange_ok(client, delegated_form(partner_token(sub="user-1"), partner_token(sub="agent-1")))
    assert "refresh_token" not in body                      # portal has refresh_tokens = true
    claims = claims_of(body["access_token"])
    assert claims["sub"] == user and claims["act"] == {"sub": agent}
    seen = await (await client.post("/oauth2/introspect", data={"token": body["access_token"]},
                                    headers=basic("portal"))).json()
    assert seen["active"] is True and seen["act"] == {"sub": agent}


async def test_a_second_delegation_nests_the_earlier_chain(client):
    agent1 = await local_sub(client, partner_token(sub="agent-1"))
    agent2 = await local_sub(client, partner_token(sub="agent-2"))
    first = await exchange_ok(client, delegated_form(partner_token(sub="user-1"), partner_token(sub="agent-1")))
    second = await exchange_ok(client, delegated_form(first["access_token"], partner_token(sub="agent-2"),
                                                      audience="reports"))
    claims = claims_of(second["access_token"])
    assert claims["act"] == {"sub": agent2, "act": {"sub": agent1}}
    assert claims["sub"] == claims_of(first["access_token"])["sub"]
    seen = await (await client.post("/oauth2/introspect", data={"token": second["access_token"]},
                                    headers=basic("portal"))).json()
    assert seen["act"] == {"sub": agent2, "act": {"sub": agent1}}
    assert "refresh_token" not in second


async def test_exchanging_a_delegated_token_again_keeps_its_act(client):
    first = await exchange_ok(client, delegated_form(partner_token(sub="user-1"), partner_token(sub="agent-1")))
    again = await exchange_ok(client, exchange_form(first["access_token"], audience="reports"), auth="dashboard")
    assert claims_of(again["access_token"])["act"] == claims_of(first["access_token"])["act"]


@pytest.mark.parametrize("may_act", [{"sub": "agent-1"}, {"sub": "agent-1", "iss": PARTNER_ISS},
                                     {"sub": "agent-1", "client_id": "agent-app"}])
async def test_an_actor_named_by_may_act_is_accepted(client, may_act):
    subject = partner_token(sub="user-1", may_act=may_act)
    body = await exchange_ok(client, delegated_form(subject, partner_token(sub="agent-1", client_id="agent-app")))
    assert claims_of(body["access_token"])["act"]["client_id"] == "agent-app"


@pytest.mark.parametrize("may_act, actor_claims", [
    ({"sub": "agent-1"}, {"sub": "agent-2"}),
    ({"sub": "agent-1", "iss": "https://other.example"}, {"sub": "agent-1"}),
    ({"sub": "agent-1", "client_id": "agent-app"}, {"sub": "agent-1", "client_id": "other-app"}),
    ({"sub": "agent-1", "client_id": "agent-app"}, {"sub": "agent-1"}),
])
async def test_an_actor_not_matching_may_act_is_refused(client, may_act, actor_claims):
    subject = partner_token(sub="user-1", may_act=may_act)
    await refused(await post_token(client, delegated_form(subject, partner_token(**actor_claims))))


@pytest.mark.parametrize("may_act", [{"sub": "agent-1"}, "agent-1", {"iss": PARTNER_ISS}])
async def test_a_may_act_subject_without_an_actor_is_refused(client, may_act):
    await refused(await post_token(client, exchange_form(partner_token(sub="user-1", may_act=may_act))))


async def test_an_actor_equal_to_the_subject_is_refused(client):
    await refused(await post_token(client, delegated_form(partner_token(sub="user-1"), partner_token(sub="user-1"))))


async def test_an_invalid_actor_token_or_an_actor_of_a_disallowed_issuer_is_refused(client):
    forged = partner_token(sub="agent-1", secret="another-secret-of-at-least-32-bytes!!")
    await refused(await post_token(client, delegated_form(partner_token(sub="user-1"), forged)))
    # the dashboard may use only `self` tokens: a partner actor is refused even with a self subject
    own = (await exchange_ok(client, exchange_form(partner_token(sub="user-1"))))["access_token"]
    resp = await post_token(client, delegated_form(own, partner_token(sub="agent-1"), audience="reports"),
                            auth="dashboard")
    await refused(resp)


async def test_rfc8693_a2_delegation_vector_with_our_own_tokens(client):
    """A.2.1 adapted: a jwt subject naming its actor in may_act, and that actor's jwt."""
    issuer, now = client.app[TOKEN_ISSUER], time.time()
    subject = issuer.mint({"sub": "user@example.net", "aud": "portal", "client_id": "rs08",
                           "may_act": {"sub": "admin@example.net"}}, now=now, ttl=600).token
    actor = issuer.mint({"sub": "admin@example.net", "aud": "portal", "client_id": "admin-app"},
                        now=now, ttl=600).token
    form = delegated_form(subject, actor, actor_type=JWT_TYPE, subject_token_type=JWT_TYPE,
                          requested_token_type=JWT_TYPE)
    body = await exchange_ok(client, form)
    assert body["issued_token_type"] == JWT_TYPE
    claims = claims_of(body["access_token"])
    assert claims["sub"] == "user@example.net"
    assert claims["act"] == {"sub": "admin@example.net", "client_id": "admin-app"}
    assert "may_act" not in claims


async def test_the_audit_event_records_the_hashed_actor_chain(client):
    first = await exchange_ok(client, delegated_form(partner_token(sub="user-1"), partner_token(sub="agent-1")))
    with capture_logs() as logs:
        await exchange_ok(client, delegated_form(first["access_token"], partner_token(sub="agent-2"),
                                                 audience="reports"))
    events = [e for e in logs if e.get("audit")]
    assert len(events) == 1 and events[0]["decision"] == "allow"
    chain = events[0]["actor_chain"]
    assert len(chain) == 2 and all(len(h) == 12 for h in chain) and chain[0] != chain[1]
    assert "agent-1" not in repr(logs) and "agent-2" not in repr(logs)


async def test_a_refused_delegation_is_audited_with_the_actor(client):
    subject = partner_token(sub="user-1", may_act={"sub": "agent-1"})
    with capture_logs() as logs:
        await refused(await post_token(client, delegated_form(subject, partner_token(sub="agent-2"))))
    events = [e for e in logs if e.get("audit")]
    assert events[0]["decision"] == "deny" and events[0]["reason"] == "may_act_mismatch"
    assert len(events[0]["actor_chain"]) == 1
