"""The broker authenticates to ACS with a connection string or, with no key, an Entra credential."""

from __future__ import annotations

from emulators.entra import demo


async def _exchange_and_create(broker, tokens) -> None:
    headers = tokens.headers(teams=tokens.teams())
    teams = await broker.get("/api/token/teams", headers=headers)
    assert teams.status == 201, await teams.json()
    user = await broker.post("/api/user", headers=headers)
    assert user.status == 201, await user.json()


async def test_a_connection_string_authenticates_with_hmac(broker_for, tokens, acs):
    broker = await broker_for(access_key=None, endpoint=None, connection_string=acs.connection_string)
    await _exchange_and_create(broker, tokens)
    calls = acs.requests()
    assert [c["auth"] for c in calls] == ["hmac", "hmac"] and {c["status"] for c in calls} == {200, 201}


async def test_without_a_key_the_brokers_entra_credential_is_used(broker_for, tokens, acs, entra):
    broker = await broker_for(access_key=None, entra_extra={"client_secret": demo.BROKER_SECRET})
    await _exchange_and_create(broker, tokens)
    calls = acs.requests()
    assert [c["auth"] for c in calls] == ["bearer", "bearer"]
    grants = entra.requests(grant_type="client_credentials")
    assert len(grants) == 1  # one app token, cached by the credential for both calls


async def test_a_refused_entra_credential_is_502_not_a_teams_token_error(broker_for, tokens, acs, entra):
    broker = await broker_for(access_key=None, entra_extra={"client_secret": "wrong-secret"})
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams()))
    body = await resp.json()
    assert (resp.status, body["error"]) == (502, "bad_gateway")
    assert acs.requests() == []
