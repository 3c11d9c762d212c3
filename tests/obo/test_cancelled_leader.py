"""An OBO exchange whose first caller (the single-flight leader) goes away neither fails nor poisons
the shared call; the answer is cached for the next caller."""

from __future__ import annotations

import asyncio

import pytest

from service.typedefs import OBO_CLIENT

from .conftest import obo_caller, obo_calls, obo_calls_async, portal_token


async def test_a_cancelled_cache_leader_does_not_fail_or_poison_the_shared_exchange(broker, entra):
    client = broker.server.app[OBO_CLIENT]
    workspace = client.downstream("workspace")
    assertion = portal_token(entra)
    entra.inject_fault(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", delay=0.5, count=1)

    def call():
        return client.exchange(workspace, assertion, obo_caller(assertion))

    leader = asyncio.create_task(call())
    while not await obo_calls_async(entra):          # the leader's request is held by Entra
        await asyncio.sleep(0.02)
    followers = [asyncio.create_task(call()) for _ in range(49)]
    await asyncio.sleep(0)
    leader.cancel()
    results = await asyncio.gather(*followers)
    assert len({r.access_token for r in results}) == 1
    with pytest.raises(asyncio.CancelledError):
        await leader
    again = await call()                                # cached: the leader's call completed
    assert again.access_token == results[0].access_token
    assert len(obo_calls(entra)) == 1


async def test_a_cancelled_lone_leader_leaves_a_usable_answer_and_no_failure(broker, entra):
    client = broker.server.app[OBO_CLIENT]
    workspace = client.downstream("workspace")
    assertion = portal_token(entra)
    entra.inject_fault(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", delay=0.3, count=1)
    leader = asyncio.create_task(client.exchange(workspace, assertion, obo_caller(assertion)))
    while not await obo_calls_async(entra):
        await asyncio.sleep(0.02)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    token = await client.exchange(workspace, assertion, obo_caller(assertion))
    assert token.access_token.count(".") == 2
    assert len(obo_calls(entra)) == 1
