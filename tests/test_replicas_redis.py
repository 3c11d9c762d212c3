"""Several broker replicas behind a load balancer, sharing one Redis and one keys_dir.

Two replicas are two `create_app(settings)` instances (or two real `tokenbroker serve`
processes) on the same `redis://127.0.0.1:6379/11?prefix=<unique>` store and keys_dir. Whatever
one replica decides (rotation, revocation, replay, ACS identity, account) the other honours.
A Redis outage is a clear exit 1 at startup and a `store` failure in /readyz afterwards.
Each test deletes its own prefix; the throwaway `redis-server` is always killed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt
import pytest

from emulators.entra import demo
from service.app import create_app
from service.grants.linking import Accounts
from service.settings import load_settings
from service.typedefs import STORE
from tests.acs.conftest import Tokens, settings_toml
from tests.http.token_support import BASE_TOML, basic, exchange_form, partner_token
from tests.support.serve_process import WAIT, RedisServer, ServeProcess, delete_prefix

REDIS = "redis://127.0.0.1:6379/11"
BROKER_AUD = "https://broker.example"
IDP_SECRET = "replica-idp-hmac-secret-of-at-least-32-bytes!"
EXTRA = f"""
[[trusted_issuers]]
name = "once"
issuer = "https://once.example"
secret = "{IDP_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
replay_check = true

[[trusted_issuers]]
name = "social"
issuer = "https://social.example"
secret = "{IDP_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
linking = "jit"

[[clients]]
client_id = "edge"
client_secret = "edge-secret-0123456789abcdefghij"
allowed_issuers = ["once", "social"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]

[[clients]]
client_id = "vault"
client_secret = "vault-secret-0123456789abcdefghi"
token_format = "opaque"
allowed_issuers = ["partner"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
"""
SECRETS = {"edge": "edge-secret-0123456789abcdefghij", "vault": "vault-secret-0123456789abcdefghi"}


def broker_toml(store_url: str) -> str:
    assert 'url = "memory://"' in BASE_TOML
    return BASE_TOML.replace('url = "memory://"', f"url = {json.dumps(store_url)}") + EXTRA


def auth(client_id: str) -> dict[str, str]:
    return basic(client_id, SECRETS.get(client_id))


def idp_token(issuer: str, sub: str, **claims) -> str:
    now = int(time.time())
    body = {"iss": f"https://{issuer}.example", "sub": sub, "aud": BROKER_AUD, "scope": "read", "iat": now,
            "exp": now + 600, "jti": secrets.token_hex(8), **claims}
    return jwt.encode(body, IDP_SECRET, algorithm="HS256")


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture(name="store_url")
def _store_url():
    """A key prefix of this test's own on the shared Redis, deleted afterwards."""
    prefix = f"tokenbroker-replicas:{uuid.uuid4().hex}:"
    yield f"{REDIS}?prefix={prefix}"
    delete_prefix(REDIS, prefix)


@pytest.fixture(name="replicas")
async def _replicas(aiohttp_client, tmp_path, store_url):
    """Two replicas (A, B): one settings object, so one Redis prefix and one keys_dir."""
    settings = load_settings(broker_toml(store_url), {}, base_dir=tmp_path)
    a = await aiohttp_client(create_app(settings))
    b = await aiohttp_client(create_app(settings))
    return a, b


async def token(client, form, who: str = "portal") -> tuple[int, dict]:
    resp = await client.post("/oauth2/token", data=form, headers=auth(who))
    return resp.status, await resp.json()


async def introspect(client, value: str, who: str = "portal") -> dict:
    resp = await client.post("/oauth2/introspect", data={"token": value}, headers=auth(who))
    assert resp.status == 200
    return await resp.json()


def refresh_form(value: str) -> list[tuple[str, str]]:
    return [("grant_type", "refresh_token"), ("refresh_token", value)]


# --- real processes ------------------------------------------------------------------------

def http_post(url: str, form: list[tuple[str, str]], who: str = "portal") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers=auth(who))
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_two_serve_processes_started_together_share_one_key_and_refresh_families(tmp_path, store_url, servers):
    config = tmp_path / "broker.toml"
    config.write_text(broker_toml(store_url))
    servers.append(a := ServeProcess(config, "--port", "0", started=False))   # both start at once on
    servers.append(b := ServeProcess(config, "--port", "0", started=False))   # an empty keys_dir
    a.wait_started(), b.wait_started()
    status, jwks = a.get("/oauth2/jwks")
    assert status == 200 and len(jwks["keys"]) == 1 and b.get("/oauth2/jwks") == (200, jwks)

    status, first = http_post(f"{a.url}/oauth2/token", exchange_form(partner_token(lifetime=3600)))
    assert status == 200, first
    status, second = http_post(f"{b.url}/oauth2/token", refresh_form(first["refresh_token"]))
    assert status == 200, second                                          # A's token, rotated at B
    assert second["refresh_token"] != first["refresh_token"]
    assert claims_of(second["access_token"])["sub"] == claims_of(first["access_token"])["sub"]
    kid = jwt.get_unverified_header(second["access_token"])["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key                          # B signs with the shared key
    jwt.decode(second["access_token"], key, algorithms=["ES256"], audience="dashboard", issuer="http://broker.test")

    status, reuse = http_post(f"{a.url}/oauth2/token", refresh_form(first["refresh_token"]))
    assert (status, reuse["error"]) == (400, "invalid_grant")            # reuse at A ...
    status, successor = http_post(f"{b.url}/oauth2/token", refresh_form(second["refresh_token"]))
    assert (status, successor["error"]) == (400, "invalid_grant")        # ... revoked the family at B too
    for server in (a, b):
        server.terminate()
        assert server.wait() == 0


def test_serve_with_redis_down_exits_1_with_a_clear_store_message(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text(broker_toml("redis://127.0.0.1:1/0?prefix=nothing-here:"))
    server = ServeProcess(config, "--port", "0", started=False)
    try:
        assert server.wait() == 1
        [failed] = server.lines("server.startup_failed")
        assert "store.url" in failed["detail"] and "127.0.0.1:1" in failed["detail"]
        assert not server.lines("server.started")
        assert not any("Traceback" in line for line in server.raw)
    finally:
        server.stop()


# --- in-process replicas ---------------------------------------------------------------------

async def test_an_access_token_revoked_at_b_is_refused_and_inactive_at_a(replicas):
    a, b = replicas
    status, issued = await token(a, exchange_form(partner_token()))
    assert status == 200, issued
    assert (await introspect(b, issued["access_token"]))["active"] is True
    resp = await b.post("/oauth2/revoke", data={"token": issued["access_token"]}, headers=auth("portal"))
    assert resp.status == 200
    assert await introspect(a, issued["access_token"]) == {"active": False}
    status, body = await token(a, exchange_form(issued["access_token"], audience="reports"), who="dashboard")
    assert (status, body["error"]) == (400, "invalid_request")           # not a `self` subject any more


async def test_an_opaque_handle_issued_at_a_is_active_at_b_until_revoked_at_b(replicas):
    a, b = replicas
    status, issued = await token(a, exchange_form(partner_token(), scope="read"), who="vault")
    assert status == 200, issued
    handle = issued["access_token"]
    assert handle.count(".") != 2                                        # a handle, not a JWT
    info = await introspect(b, handle, "vault")
    assert info["active"] is True and info["client_id"] == "vault" and info["scope"] == "read"
    assert info["aud"] == "dashboard" and info["iss"] == "http://broker.test"
    resp = await b.post("/oauth2/revoke", data={"token": handle}, headers=auth("vault"))
    assert resp.status == 200
    assert await introspect(a, handle, "vault") == {"active": False}


async def test_a_single_use_subject_token_is_accepted_once_across_both_replicas(replicas):
    a, b = replicas
    subject = idp_token("once", "user-9")
    form = exchange_form(subject, subject_token_type="urn:ietf:params:oauth:token-type:jwt")
    results = await asyncio.gather(*(token(replica, form, who="edge") for replica in (a, b) * 4))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * 7, results
    assert {body["error"] for status, body in results if status == 400} == {"invalid_request"}
    status, fresh = await token(b, exchange_form(idp_token("once", "user-9"),
                                                 subject_token_type="urn:ietf:params:oauth:token-type:jwt"),
                                who="edge")
    assert status == 200, fresh                                          # another jti is fine


async def test_jit_linking_racing_on_both_replicas_creates_one_account(replicas):
    a, b = replicas
    forms = [exchange_form(idp_token("social", "fb-42", name="Jay"),
                           subject_token_type="urn:ietf:params:oauth:token-type:jwt") for _ in range(6)]
    results = await asyncio.gather(*(token(replica, form, who="edge")
                                     for replica, form in zip((a, b) * 3, forms, strict=True)))
    assert [status for status, _ in results] == [200] * 6, results
    subs = {claims_of(body["access_token"])["sub"] for _, body in results}
    assert len(subs) == 1
    [account] = await Accounts(a.app[STORE]).list()
    assert account.id in subs and account.links == (("social", "fb-42"),)
    assert [acc.id for acc in await Accounts(b.app[STORE]).list()] == [account.id]


async def test_readyz_names_the_store_while_redis_is_away_and_recovers(aiohttp_client, tmp_path):
    server = RedisServer()
    try:
        settings = load_settings(broker_toml(f"{server.url}?prefix=ready:"), {}, base_dir=tmp_path)
        client = await aiohttp_client(create_app(settings))
        resp = await client.get("/readyz")
        assert resp.status == 200 and (await resp.json())["checks"]["store"] == "ok"
        status, issued = await token(client, exchange_form(partner_token(lifetime=3600)))
        assert status == 200, issued

        server.stop()
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503 and body["failing"] == ["store"] and body["checks"]["keys"] == "ok"
        resp = await client.post("/oauth2/token", data=refresh_form(issued["refresh_token"]),
                                 headers=auth("portal"))
        assert resp.status == 503 and (await resp.json())["error"] == "temporarily_unavailable"

        server = RedisServer(server.port)                                # back (empty: no persistence)
        resp = await client.get("/readyz")
        assert resp.status == 200, await resp.json()
    finally:
        server.stop()


# --- ACS identities (Entra and ACS emulators) ----------------------------------------------

@pytest.fixture(name="acs_replicas")
async def _acs_replicas(aiohttp_client, entra, acs, tmp_path, store_url):
    settings = load_settings(settings_toml(entra, acs, store_url=store_url), {}, base_dir=tmp_path)
    return await aiohttp_client(create_app(settings)), await aiohttp_client(create_app(settings))


async def test_an_acs_identity_created_at_a_is_returned_by_b(acs_replicas, entra, acs):
    a, b = acs_replicas
    headers = Tokens(entra).headers()
    created = await a.post("/api/user", headers=headers)
    body = await created.json()
    assert created.status == 201, body
    read = await b.get("/api/user", headers=headers)
    assert read.status == 200 and await read.json() == body
    again = await b.post("/api/user", headers=headers)
    assert again.status == 200 and await again.json() == body
    assert len(acs.requests(operation="create_user")) == 1


async def test_concurrent_first_posts_at_both_replicas_keep_one_identity(acs_replicas, entra, acs):
    a, b = acs_replicas
    headers = Tokens(entra).headers(bearer=Tokens(entra).bearer(user=demo.BOB_UPN))
    acs.inject_fault("create_user", delay=0.5, count=2)                  # both replicas create at once
    first, second = await asyncio.gather(a.post("/api/user", headers=headers),
                                         b.post("/api/user", headers=headers))
    assert sorted([first.status, second.status]) == [200, 201]
    identity = (await first.json())["acsUserIdentity"]
    assert (await second.json())["acsUserIdentity"] == identity
    for replica in (a, b):
        resp = await replica.get("/api/user", headers=headers)
        assert (await resp.json())["acsUserIdentity"] == identity
    assert len(acs.requests(operation="create_user")) == 2
    [deleted] = acs.requests(operation="delete_user")                    # the loser's extra identity
    assert deleted["status"] == 204
    assert identity in acs.identities()

