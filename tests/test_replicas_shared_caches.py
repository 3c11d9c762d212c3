"""Three real `tokenbroker serve` processes on one Redis (127.0.0.1:6379, db 11, a prefix of this
module's own) in front of the Entra ID and ACS emulators: the expensive exchanges are made once
for all replicas.

- an OBO token acquired at A is served by B and C: 0 new Entra requests (emulator request log);
- the same for the Teams exchange (ACS request log);
- 20 concurrent first exchanges of one user over the three replicas: exactly 1 downstream call;
- no Redis value under the prefix contains a token in clear;
- kill -9 of one replica under load: the others keep answering, nothing durable is lost.

The three processes live for the module (the kill comes last). Request counts are deltas of the
session emulators' logs, which are reset once when the module starts.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from emulators.entra import demo
from tests.acs.conftest import SPA, TEAMS_RESOURCE, TEAMS_SCOPES, settings_toml
from tests.obo.conftest import JWT_BEARER, portal_token
from tests.support.replicas import REDIS, call, outside_ciphertext, redis_prefix, serve_replicas
from tests.support.serve_process import WAIT, ServeProcess

TEAMS = "get_token_for_teams_user"


@pytest.fixture(name="prefix", scope="module")
def _prefix():
    with redis_prefix("tokenbroker-shared-caches") as prefix:
        yield prefix


@pytest.fixture(name="trio", scope="module")
def _trio(entra_emulator, acs_emulator, tmp_path_factory, prefix):
    entra_emulator.reset()
    acs_emulator.reset()
    folder = tmp_path_factory.mktemp("replicas")
    config = folder / "broker.toml"
    config.write_text('[server]\npublic_url = "http://broker.test"\n'
                      + settings_toml(entra_emulator, acs_emulator, store_url=f"{REDIS}?prefix={prefix}",
                                      entra_extra={"client_secret": demo.BROKER_SECRET})
                      + f'\n[obo.workspace]\nscopes = ["{demo.WORKSPACE_SCOPE}"]\n')
    with serve_replicas(config, 3) as servers:
        yield servers


def obo_at(server: ServeProcess, bearer: str) -> tuple[int, dict]:
    return call(server.url, "/api/token/obo/workspace", {"Authorization": f"Bearer {bearer}"})


def teams_at(server: ServeProcess, bearer: str, teams: str) -> tuple[int, dict]:
    return call(server.url, "/api/token/teams", {"Authorization": f"Bearer {bearer}",
                                                 "teams-user-aad-token": teams})


def entra_obo_calls(entra) -> int:
    return len(entra.requests(grant_type=JWT_BEARER))


def bearer(entra, user: str = demo.ALICE_UPN) -> str:
    return entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=SPA, user=user, scopes=["user_impersonation"])


def test_an_obo_token_acquired_at_a_is_served_by_b_and_c_without_entra(trio, entra_emulator):
    a, b, c = trio
    token = portal_token(entra_emulator)
    before = entra_obo_calls(entra_emulator)
    status, first = obo_at(a, token)
    assert status == 200, first
    assert entra_obo_calls(entra_emulator) == before + 1
    for replica in (b, c):
        status, body = obo_at(replica, token)
        assert status == 200 and body["access_token"] == first["access_token"], body
    assert entra_obo_calls(entra_emulator) == before + 1                  # 0 new Entra requests


def test_a_teams_exchange_made_at_a_is_served_by_b_and_c_without_acs(trio, entra_emulator, acs_emulator):
    a, b, c = trio
    user_bearer = bearer(entra_emulator)
    teams = entra_emulator.mint(resource=TEAMS_RESOURCE, client_id=SPA, user=demo.ALICE_UPN, scopes=TEAMS_SCOPES)
    before = len(acs_emulator.requests(operation=TEAMS))
    status, first = teams_at(a, user_bearer, teams)
    assert status == 201, first
    for replica in (b, c):
        status, body = teams_at(replica, user_bearer, teams)
        assert status == 201 and body == first, body
    assert len(acs_emulator.requests(operation=TEAMS)) == before + 1


def test_twenty_concurrent_first_exchanges_over_three_replicas_make_one_entra_call(trio, entra_emulator):
    token = portal_token(entra_emulator)                                  # a fresh token: a new key
    before = entra_obo_calls(entra_emulator)
    entra_emulator.inject_fault(grant_type=JWT_BEARER, delay=0.5, count=1)   # all 20 arrive meanwhile
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: obo_at(trio[i % 3], token), range(20)))
    assert [status for status, _ in results] == [200] * 20, results
    assert len({body["access_token"] for _, body in results}) == 1
    assert entra_obo_calls(entra_emulator) == before + 1


def test_no_redis_value_holds_a_token_in_clear(trio, entra_emulator, prefix):
    token = portal_token(entra_emulator)
    status, issued = obo_at(trio[0], token)
    assert status == 200
    client = redis.Redis.from_url(REDIS)
    try:
        names = list(client.scan_iter(match=prefix + "*", count=500))
        values = [client.get(name) or b"" for name in names]
    finally:
        client.close()
    assert any(name.decode().startswith(prefix + "xc:obo:") for name in names)
    assert any(name.decode().startswith(prefix + "xc:acs_teams:") for name in names)
    for name, value in zip(names, values, strict=True):
        for secret in (issued["access_token"], token):
            assert secret.encode() not in value and secret.encode() not in name
        assert b"eyJ" not in outside_ciphertext(value), name           # no JWT outside the ciphertext
        if name.decode().startswith(prefix + "xc:"):
            sealed = json.loads(value)
            assert set(sealed) == {"v", "kid", "n", "c"} and len(base64.b64decode(sealed["c"])) > 16


def test_kill_9_of_one_replica_under_load_leaves_the_others_answering(trio, entra_emulator, acs_emulator):
    a, b, c = trio
    user = demo.BOB_UPN
    headers = {"Authorization": f"Bearer {bearer(entra_emulator, user)}"}
    status, made = call(c.url, "/api/user", headers)                      # durable state, made at C
    assert status in (200, 201), made
    token = portal_token(entra_emulator)
    assert obo_at(c, token)[0] == 200
    before = entra_obo_calls(entra_emulator)

    def load(i: int) -> tuple[str, int]:
        server = (a, b, c)[i % 3]
        if i == 30:
            os.killpg(c.proc.pid, signal.SIGKILL)                         # kill -9, mid-load
        try:
            return server.url, obo_at(server, token)[0]
        except (urllib.error.URLError, ConnectionError, OSError):
            return server.url, 0
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(load, range(90)))
    assert c.proc.wait(timeout=WAIT) == -signal.SIGKILL
    survivors = [status for url, status in results if url in (a.url, b.url)]
    assert survivors == [200] * 60                                        # every request to A and B
    assert entra_obo_calls(entra_emulator) == before                      # all from the shared cache
    for replica in (a, b):
        status, body = call(replica.url, "/api/user", headers, method="GET")
        assert status == 200 and body == {"acsUserIdentity": made["acsUserIdentity"]}
        assert call(replica.url, "/readyz", {}, method="GET")[0] == 200
