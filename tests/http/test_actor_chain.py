"""The actor's own delegation chain (an agent acting for an orchestrator) at /oauth2/token: kept
nested under the new actor in the JWT and in introspection, namespaced like the subject's
chain, followed by the subject's earlier chain, within the same depth bound."""

from __future__ import annotations

import jwt
from structlog.testing import capture_logs

from tests.http.test_delegation import claims_of, delegated_form, local_sub, refused
from tests.http.token_support import PARTNER_ISS, basic, exchange_ok, partner_token, post_token


async def introspected_act(client, token: str) -> dict:
    seen = await (await client.post("/oauth2/introspect", data={"token": token}, headers=basic("portal"))).json()
    assert seen["active"] is True
    return seen["act"]


async def test_a_partner_actors_own_chain_is_nested_in_the_partners_namespace(client):
    agent = await local_sub(client, partner_token(sub="agent-1"))
    actor = partner_token(sub="agent-1", act={"sub": "orchestrator-1", "client_id": "orch-app"})
    with capture_logs() as logs:
        body = await exchange_ok(client, delegated_form(partner_token(sub="user-1"), actor))
    expected = {"sub": agent, "act": {"sub": "orchestrator-1", "client_id": "orch-app", "iss": PARTNER_ISS}}
    assert claims_of(body["access_token"])["act"] == expected
    assert await introspected_act(client, body["access_token"]) == expected
    [event] = [e for e in logs if e.get("event") == "token_exchange"]
    assert len(event["actor_chain"]) == 2 and "orchestrator-1" not in str(event)


async def test_our_own_actor_token_keeps_its_chain_as_it_is(client):
    agent = await local_sub(client, partner_token(sub="agent-1"))
    orchestrated = await exchange_ok(client, delegated_form(partner_token(sub="orchestrator-1"),
                                                            partner_token(sub="agent-1")))
    orchestrator = claims_of(orchestrated["access_token"])["sub"]
    body = await exchange_ok(client, delegated_form(partner_token(sub="user-1"), orchestrated["access_token"]))
    assert claims_of(body["access_token"])["act"] == {"sub": orchestrator, "client_id": "portal",
                                                      "act": {"sub": agent}}


async def test_the_subjects_earlier_chain_follows_the_actors_chain(client):
    first = await exchange_ok(client, delegated_form(partner_token(sub="user-1"), partner_token(sub="helper-1")))
    helper = claims_of(first["access_token"])["act"]["sub"]
    agent = await local_sub(client, partner_token(sub="agent-1"))
    actor = partner_token(sub="agent-1", act={"sub": "orchestrator-1"})
    second = await exchange_ok(client, delegated_form(first["access_token"], actor, audience="reports"))
    act = claims_of(second["access_token"])["act"]
    assert act == {"sub": agent, "act": {"sub": "orchestrator-1", "iss": PARTNER_ISS, "act": {"sub": helper}}}
    assert await introspected_act(client, second["access_token"]) == act


def chain(depth: int) -> dict:
    node: dict = {"sub": f"node-{depth}"}
    for i in range(depth - 1, 0, -1):
        node = {"sub": f"node-{i}", "act": node}
    return node


async def test_the_actors_chain_counts_towards_the_depth_bound(client):
    ok = await post_token(client, delegated_form(partner_token(sub="user-1"),
                                                 partner_token(sub="agent-1", act=chain(6))))
    assert ok.status == 200, await ok.text()
    too_deep = partner_token(sub="agent-1", act=chain(8))
    await refused(await post_token(client, delegated_form(partner_token(sub="user-1"), too_deep)))


async def test_an_actor_chain_claiming_to_come_from_the_broker_is_refused(client):
    broker_iss = jwt.decode((await exchange_ok(client, delegated_form(
        partner_token(sub="user-1"), partner_token(sub="agent-1"))))["access_token"],
        options={"verify_signature": False})["iss"]
    forged = partner_token(sub="agent-1", act={"sub": "admin", "iss": broker_iss})
    await refused(await post_token(client, delegated_form(partner_token(sub="user-1"), forged)))


async def test_a_malformed_actor_chain_is_refused(client):
    for act in ({"client_id": "no-sub"}, "orchestrator-1", {"sub": ""}):
        await refused(await post_token(client, delegated_form(partner_token(sub="user-1"),
                                                              partner_token(sub="agent-1", act=act))))
