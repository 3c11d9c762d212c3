"""A Teams exchange whose first caller (the single-flight leader) goes away still completes for the
others and for the next caller, and is cached once."""

from __future__ import annotations

import asyncio

import pytest

from emulators.entra import demo
from service.typedefs import ACS_CLIENT

from .conftest import claims


async def held_by_acs(acs) -> None:
    """Wait until the emulator has logged the leader's (delayed) Teams exchange: it is in flight."""
    while not await asyncio.to_thread(acs.requests, operation="get_token_for_teams_user"):
        await asyncio.sleep(0.01)


async def test_a_cancelled_cache_leader_does_not_fail_or_poison_the_shared_exchange(broker, tokens, acs):
    # The first caller of a Teams exchange runs the ACS call for everyone; when it goes away
    # (client disconnect, its own deadline), the 49 others still get the token and the
    # answer is cached for the next caller.
    client = broker.server.app[ACS_CLIENT]
    teams = tokens.teams()
    exp = claims(teams)["exp"]
    acs.inject_fault("get_token_for_teams_user", delay=0.5)
    call = lambda: client.exchange_teams_token_cached(teams, demo.CLIENT_ID, demo.ALICE_OID,  # noqa: E731
                                                      not_after=exp)
    leader = asyncio.create_task(call())
    await held_by_acs(acs)
    followers = [asyncio.create_task(call()) for _ in range(49)]
    await asyncio.sleep(0)                               # the followers join the leader's flight
    leader.cancel()
    results = await asyncio.gather(*followers)
    assert len({token for token, _ in results}) == 1
    with pytest.raises(asyncio.CancelledError):
        await leader
    token, _ = await call()
    assert token == results[0][0]
    assert len(acs.requests(operation="get_token_for_teams_user")) == 1


async def test_a_lone_cancelled_leader_still_completes_the_exchange_for_the_next_caller(broker, tokens, acs):
    client = broker.server.app[ACS_CLIENT]
    teams = tokens.teams()
    acs.inject_fault("get_token_for_teams_user", delay=0.3)
    leader = asyncio.create_task(client.exchange_teams_token_cached(teams, demo.CLIENT_ID, demo.ALICE_OID))
    await held_by_acs(acs)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    token, _ = await client.exchange_teams_token_cached(teams, demo.CLIENT_ID, demo.ALICE_OID)
    assert token.count(".") == 2
    assert len(acs.requests(operation="get_token_for_teams_user")) == 1
