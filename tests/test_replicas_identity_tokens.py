"""Two real `tokenbroker serve` processes on one Redis (127.0.0.1:6379, db 11, a prefix of this
module's own) share the ACS identity token cache of `GET /api/token`:

- a token issued at A is served by B with 0 new ACS calls (ACS emulator request log);
- 20 concurrent first requests of one user over both replicas: exactly 1 ACS `get_token`;
- the Redis entry is sealed: no token in clear under the prefix;
- `DELETE /api/user` at B removes the entry from Redis, and A (which holds the token in its
  own process) never serves it again.

Every test starts from a fresh ACS identity (DELETE then POST /api/user), so a new cache key.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from emulators.entra import demo
from tests.acs.conftest import SPA, settings_toml
from tests.support.replicas import REDIS, call, outside_ciphertext, redis_prefix, serve_replicas
from tests.support.serve_process import ServeProcess


@pytest.fixture(name="prefix", scope="module")
def _prefix():
    with redis_prefix("tokenbroker-identity-tokens") as prefix:
        yield prefix


@pytest.fixture(name="duo", scope="module")
def _duo(entra_emulator, acs_emulator, tmp_path_factory, prefix):
    config = tmp_path_factory.mktemp("identity-replicas") / "broker.toml"
    config.write_text('[server]\npublic_url = "http://broker.test"\n'
                      + settings_toml(entra_emulator, acs_emulator, store_url=f"{REDIS}?prefix={prefix}"))
    with serve_replicas(config, 2) as servers:
        yield servers


@pytest.fixture(name="acs")
def _acs(acs_emulator):
    acs_emulator.reset()
    return acs_emulator


def headers_for(entra, user: str) -> dict[str, str]:
    token = entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=SPA, user=user, scopes=["user_impersonation"])
    return {"Authorization": f"Bearer {token}"}


def fresh_identity(server: ServeProcess, headers: dict[str, str]) -> str:
    assert call(server.url, "/api/user", headers, method="DELETE")[0] == 204
    status, body = call(server.url, "/api/user", headers)
    assert status == 201, body
    return body["acsUserIdentity"]


def token_at(server: ServeProcess, headers: dict[str, str]) -> dict:
    status, body = call(server.url, "/api/token", headers, method="GET")
    assert status == 201, body
    return body


def get_token_calls(acs) -> int:
    return len(acs.requests(operation="get_token"))


def identity_entries(prefix: str) -> list[tuple[str, bytes]]:
    client = redis.Redis.from_url(REDIS)
    try:
        names = list(client.scan_iter(match=prefix + "xc:acs_identity:*", count=500))
        return [(name.decode(), client.get(name) or b"") for name in names]
    finally:
        client.close()


def test_an_identity_token_issued_at_a_is_served_by_b_without_acs(duo, entra_emulator, acs):
    a, b = duo
    headers = headers_for(entra_emulator, demo.ALICE_UPN)
    identity = fresh_identity(a, headers)
    first = token_at(a, headers)
    assert first["user"]["communicationUserId"] == identity and get_token_calls(acs) == 1
    assert token_at(b, headers) == first and token_at(b, headers) == first
    assert get_token_calls(acs) == 1                                    # 0 new ACS calls at B


def test_twenty_concurrent_first_requests_over_two_replicas_make_one_acs_call(duo, entra_emulator, acs):
    headers = headers_for(entra_emulator, demo.BOB_UPN)
    fresh_identity(duo[1], headers)
    acs.inject_fault("get_token", delay=0.5)                            # all 20 arrive meanwhile
    with ThreadPoolExecutor(20) as pool:
        bodies = list(pool.map(lambda i: token_at(duo[i % 2], headers), range(20)))
    assert len({body["token"] for body in bodies}) == 1
    assert get_token_calls(acs) == 1


def test_no_redis_value_holds_an_identity_token_in_clear(duo, entra_emulator, acs, prefix):
    headers = headers_for(entra_emulator, demo.ALICE_UPN)
    fresh_identity(duo[0], headers)
    issued = token_at(duo[0], headers)
    entries = identity_entries(prefix)
    assert entries
    for name, value in entries:
        assert issued["token"].encode() not in value and b"eyJ" not in outside_ciphertext(value), name
        sealed = json.loads(value)
        assert set(sealed) == {"v", "kid", "n", "c"} and len(base64.b64decode(sealed["c"])) > 16


def test_a_token_of_an_identity_deleted_at_b_is_never_served_again_by_a(duo, entra_emulator, acs, prefix):
    a, b = duo
    headers = headers_for(entra_emulator, demo.ALICE_UPN)
    old = fresh_identity(a, headers)
    revoked = token_at(a, headers)
    assert token_at(b, headers) == revoked                              # both hold it in-process
    before = {name for name, _ in identity_entries(prefix)}
    assert call(b.url, "/api/user", headers, method="DELETE")[0] == 204
    after = {name for name, _ in identity_entries(prefix)}
    assert len(before - after) == 1                                     # its entry left Redis
    for replica in (a, b):
        status, body = call(replica.url, "/api/token", headers, method="GET")
        assert (status, body["error"]) == (404, "not_found"), body
    new = call(a.url, "/api/user", headers)[1]["acsUserIdentity"]
    fresh = token_at(b, headers)
    assert new != old and fresh["token"] != revoked["token"] and token_at(a, headers) == fresh
    assert get_token_calls(acs) == 2
