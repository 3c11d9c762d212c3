"""`/api/user` and `/api/token`: ACS identities keyed by (tid, oid), durable on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from emulators.entra import demo
from service.app import create_app
from tests.acs.conftest import claims


async def test_post_user_creates_one_identity_then_answers_200_with_it(broker, tokens, acs):
    headers = tokens.headers()
    first = await broker.post("/api/user", headers=headers)
    created = await first.json()
    assert first.status == 201 and created["acsUserIdentity"].startswith("8:acs:")
    assert first.headers["Cache-Control"] == "no-store"
    again = await broker.post("/api/user", headers=headers)
    assert again.status == 200 and await again.json() == created
    read = await broker.get("/api/user", headers=headers)
    assert read.status == 200 and await read.json() == created
    assert created["acsUserIdentity"] in acs.identities()
    assert len(acs.requests(operation="create_user")) == 1


async def test_get_user_without_an_identity_is_404_not_found(broker, tokens, acs):
    resp = await broker.get("/api/user", headers=tokens.headers(bearer=tokens.bearer(user=demo.BOB_UPN)))
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    assert acs.requests() == []


async def test_users_get_their_own_identities(broker, tokens, acs):
    alice = await (await broker.post("/api/user", headers=tokens.headers())).json()
    bob_headers = tokens.headers(bearer=tokens.bearer(user=demo.BOB_UPN))
    bob = await (await broker.post("/api/user", headers=bob_headers)).json()
    assert alice["acsUserIdentity"] != bob["acsUserIdentity"]


async def test_concurrent_first_posts_create_exactly_one_identity(broker, tokens, acs):
    headers = tokens.headers()
    acs.inject_fault("create_user", delay=0.2)
    responses = await asyncio.gather(*(broker.post("/api/user", headers=headers) for _ in range(10)))
    bodies = [await r.json() for r in responses]
    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    assert len({b["acsUserIdentity"] for b in bodies}) == 1
    assert len(acs.requests(operation="create_user")) == 1


async def test_two_replicas_racing_keep_one_identity_and_delete_the_extra(aiohttp_client, acs_settings,
                                                                         tokens, acs, tmp_path):
    settings = acs_settings(store_url=f"sqlite:///{tmp_path / 'state.db'}")
    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))
    headers = tokens.headers()
    acs.inject_fault("create_user", delay=0.5, count=2)  # both replicas are creating at once
    a, b = await asyncio.gather(one.post("/api/user", headers=headers), two.post("/api/user", headers=headers))
    assert sorted([a.status, b.status]) == [200, 201]
    identity = (await a.json())["acsUserIdentity"]
    assert (await b.json())["acsUserIdentity"] == identity
    assert len(acs.requests(operation="create_user")) == 2
    [deleted] = acs.requests(operation="delete_user")
    assert deleted["status"] == 204
    assert identity in acs.identities()


async def test_get_token_issues_an_acs_token_for_the_users_identity(broker, tokens, acs):
    headers = tokens.headers()
    missing = await broker.get("/api/token", headers=headers)
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    identity = (await (await broker.post("/api/user", headers=headers)).json())["acsUserIdentity"]
    resp = await broker.get("/api/token", headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["user"] == {"communicationUserId": identity, "id": identity, "rawId": identity}
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    expires = datetime.fromisoformat(body["expiresOn"].replace("Z", "+00:00"))
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(minutes=61)
    check = acs.check_token(body["token"])
    assert check["valid"] and check["skypeid"] == identity.removeprefix("8:")
    [call] = acs.requests(operation="get_token")
    assert call["status"] == 200


async def test_identity_scopes_and_lifetime_come_from_the_configuration(broker_for, tokens, acs):
    broker = await broker_for(identity_scopes=["voip"], identity_token_ttl=7200)
    headers = tokens.headers()
    await broker.post("/api/user", headers=headers)
    body = await (await broker.get("/api/token", headers=headers)).json()
    expires = datetime.fromisoformat(body["expiresOn"].replace("Z", "+00:00"))
    assert timedelta(minutes=115) < expires - datetime.now(UTC) <= timedelta(minutes=121)
    assert acs.check_token(body["token"])["valid"]
    assert claims(body["token"])["acsScope"] == "voip"


async def test_delete_user_removes_the_identity_at_acs_and_the_mapping(broker, tokens, acs):
    headers = tokens.headers()
    identity = (await (await broker.post("/api/user", headers=headers)).json())["acsUserIdentity"]
    resp = await broker.delete("/api/user", headers=headers)
    assert resp.status == 204
    assert identity not in acs.identities()
    assert (await broker.get("/api/user", headers=headers)).status == 404
    again = await broker.delete("/api/user", headers=headers)
    assert again.status == 204
    assert len(acs.requests(operation="delete_user")) == 1


async def test_delete_user_succeeds_when_acs_no_longer_knows_the_identity(broker, tokens, acs):
    headers = tokens.headers()
    await broker.post("/api/user", headers=headers)
    acs.reset(identities=True)
    resp = await broker.delete("/api/user", headers=headers)
    assert resp.status == 204
    [call] = acs.requests(operation="delete_user")
    assert call["status"] == 404
    assert (await broker.get("/api/user", headers=headers)).status == 404


async def test_a_token_for_an_identity_acs_lost_is_404_and_the_mapping_is_dropped(broker, tokens, acs):
    headers = tokens.headers()
    await broker.post("/api/user", headers=headers)
    acs.reset(identities=True)
    resp = await broker.get("/api/token", headers=headers)
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    assert (await broker.get("/api/user", headers=headers)).status == 404


async def test_identities_survive_a_broker_restart_on_sqlite(aiohttp_client, acs_settings, tokens, acs, tmp_path):
    settings = acs_settings(store_url=f"sqlite:///{tmp_path / 'state.db'}")
    headers = tokens.headers()
    first = await aiohttp_client(create_app(settings))
    identity = (await (await first.post("/api/user", headers=headers)).json())["acsUserIdentity"]
    await first.close()
    second = await aiohttp_client(create_app(settings))
    resp = await second.get("/api/user", headers=headers)
    assert resp.status == 200 and (await resp.json())["acsUserIdentity"] == identity
    again = await second.post("/api/user", headers=headers)
    assert again.status == 200
    assert len(acs.requests(operation="create_user")) == 1


async def test_identity_routes_require_a_valid_bearer_token(broker, acs):
    for method in ("GET", "POST", "DELETE"):
        resp = await broker.request(method, "/api/user")
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await broker.get("/api/token", headers={"Authorization": "Bearer not.a.token"})
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert acs.requests() == []
