"""Adversarial review of /oauth2/token, /oauth2/introspect, /oauth2/revoke and the metadata.

Each test is an attack an identity engineer would try against an RFC 8693 broker (upscoping,
lifetime laundering, cross-client use, audience injection, replay races, forged delegation
chains, guessed handles, client-authentication tricks) and asserts that it fails the way
CONTRACT §3 says. Partner tokens are signed with the partner's real HMAC secret; our own
tokens come from the broker; Entra tokens from the Entra emulator over HTTPS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from urllib.parse import quote_plus

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from structlog.testing import capture_logs

from emulators.entra import demo
from service.app import create_app
from service.grants.linking import Accounts
from service.issuing.keyring import rotate_keys
from service.storage.memory import MemoryStore
from service.typedefs import KEYRING, STORE
from tests.http.token_support import (
    ACCESS_TOKEN,
    BROKER_AUD,
    PARTNER_ISS,
    PARTNER_SECRET,
    PUBLIC_URL,
    TOKEN_EXCHANGE,
    exchange_form,
    make_settings,
    partner_token,
)
from tests.validation.forge import b64, segment, sign

SECRETS = {"portal": "portal:secret with % and + padded", "dashboard": "dashboard-secret", "reports": "reports-secret-0123456789abcdefg",
           "mallory": "mallory-secret-0123456789abcdefg", "inspector": "inspector-secret-0123456789abcde", "vault": "vault-secret-0123456789abcdefghi"}

EC_PARTNER_ISS = "https://ec.partner.example"
EC_PARTNER_KEY = ec.generate_private_key(ec.SECP256R1())
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

SECURITY_TOML = f"""
[server]
public_url = "{PUBLIC_URL}"

[issuer]
keys_dir = "keys"
access_token_ttl = 900
refresh_token_ttl = 86400

[store]
url = "{{store}}"

[[trusted_issuers]]
name = "partner"
issuer = "{PARTNER_ISS}"
secret = "{PARTNER_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
replay_check = true
scope_map = {{{{ "partner.read" = ["read"], "partner.all" = ["read", "write"] }}}}

[[trusted_issuers]]
name = "ec-partner"
issuer = "{EC_PARTNER_ISS}"
certificate = "ec-partner.pem"
audiences = ["{BROKER_AUD}"]
algorithms = ["ES256"]
replay_check = true

[[clients]]
client_id = "portal"
client_secret = "{SECRETS['portal']}"
allowed_issuers = ["partner", "ec-partner", "self"]
allowed_audiences = ["dashboard", "reports"]
allowed_scopes = {{portal_scopes}}
refresh_tokens = true

[[clients]]
client_id = "dashboard"
client_secret = "sha256:{hashlib.sha256(SECRETS['dashboard'].encode()).hexdigest()}"
allowed_issuers = ["self"]
allowed_audiences = ["reports"]
allowed_scopes = ["read", "write"]
refresh_tokens = true

[[clients]]
client_id = "reports"
client_secret = "{SECRETS['reports']}"
allowed_issuers = ["self"]
allowed_audiences = ["archive"]
allowed_scopes = ["read", "write"]

[[clients]]
client_id = "mallory"
client_secret = "{SECRETS['mallory']}"
allowed_issuers = ["partner", "self"]
allowed_audiences = ["dashboard", "reports", "archive"]
allowed_scopes = ["read", "write", "admin"]
refresh_tokens = true

[[clients]]
client_id = "inspector"
client_secret = "{SECRETS['inspector']}"
grant_types = []

[[clients]]
client_id = "vault"
client_secret = "{SECRETS['vault']}"
allowed_issuers = ["partner", "self"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
token_format = "opaque"
"""


def security_settings(tmp_path, extra: str = "", *, store: str = "memory://",
                      portal_scopes: str = '["read", "write"]', public_url: str = PUBLIC_URL):
    (tmp_path / "ec-partner.pem").write_bytes(EC_PARTNER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    base = SECURITY_TOML.format(store=store, portal_scopes=portal_scopes)
    return make_settings(tmp_path, extra, base=base.replace(f'public_url = "{PUBLIC_URL}"',
                                                            f'public_url = "{public_url}"'))


def basic(client_id: str, secret: str | None = None) -> dict[str, str]:
    secret = SECRETS[client_id] if secret is None else secret
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def post(client, path: str, form, *, auth: str = "portal"):
    return await client.post(path, data=form, headers=basic(auth))


async def ok(resp) -> dict:
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def refused(resp, status: int, error: str) -> dict:
    body = await resp.json()
    assert (resp.status, body.get("error")) == (status, error), body
    assert set(body) <= {"error", "error_description", "error_uri"}
    return body


def refresh_form(token: str, **extra: str) -> list[tuple[str, str]]:
    return [("grant_type", "refresh_token"), ("refresh_token", token), *extra.items()]


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(security_settings(tmp_path)))


# --- lifetime laundering ----------------------------------------------------------------------

async def test_a_chain_of_three_exchanges_and_refreshes_never_outlives_the_original_subject(client):
    subject = partner_token(lifetime=120)
    subject_exp = claims_of(subject)["exp"]
    first = await ok(await post(client, "/oauth2/token", exchange_form(subject, audience="dashboard")))
    second = await ok(await post(client, "/oauth2/token", exchange_form(first["access_token"], audience="reports"),
                                 auth="dashboard"))
    third = await ok(await post(client, "/oauth2/token", exchange_form(second["access_token"], audience="archive"),
                                auth="reports"))
    refreshed = await ok(await post(client, "/oauth2/token", refresh_form(first["refresh_token"])))
    re_refreshed = await ok(await post(client, "/oauth2/token", refresh_form(second["refresh_token"]),
                                       auth="dashboard"))
    for body in (first, second, third, refreshed, re_refreshed):
        assert claims_of(body["access_token"])["exp"] <= subject_exp
        assert body["expires_in"] <= 120
    assert claims_of(third["access_token"])["sub"] == claims_of(first["access_token"])["sub"]


# --- upscoping --------------------------------------------------------------------------------

async def test_refresh_never_widens_scope_or_audience(client):
    body = await ok(await post(client, "/oauth2/token",
                               exchange_form(partner_token(scope="partner.read"), audience="dashboard")))
    assert claims_of(body["access_token"])["scope"] == "read"
    await refused(await post(client, "/oauth2/token", refresh_form(body["refresh_token"], scope="read write")),
                  400, "invalid_scope")
    # audience/resource sent with a refresh are ignored: the family's audience is what it is
    again = await ok(await post(client, "/oauth2/token",
                                refresh_form(body["refresh_token"], audience="reports", resource="reports")))
    claims = claims_of(again["access_token"])
    assert claims["aud"] == "dashboard" and claims["scope"] == "read"


async def test_a_refresh_after_the_client_lost_a_scope_no_longer_issues_that_scope(aiohttp_client, tmp_path):
    """An operator removes `write` from portal: existing refresh families must not keep minting it."""
    store = f"sqlite:///{tmp_path}/state.db"
    before = await aiohttp_client(create_app(security_settings(tmp_path, store=store)))
    body = await ok(await post(before, "/oauth2/token", exchange_form(partner_token(scope="partner.all"))))
    assert claims_of(body["access_token"])["scope"] == "read write"
    await before.close()
    after = await aiohttp_client(create_app(security_settings(tmp_path, store=store, portal_scopes='["read"]')))
    again = await ok(await post(after, "/oauth2/token", refresh_form(body["refresh_token"])))
    assert claims_of(again["access_token"])["scope"] == "read"
    assert again["scope"] == "read"
    await refused(await post(after, "/oauth2/token", refresh_form(again["refresh_token"], scope="write")),
                  400, "invalid_scope")


async def test_exchanging_our_own_token_never_gains_a_scope_it_lacks(client):
    narrow = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(scope="partner.read"))))
    # dashboard may grant read and write, but the subject only holds read
    await refused(await post(client, "/oauth2/token", exchange_form(narrow["access_token"], audience="reports",
                                                                    scope="write"), auth="dashboard"),
                  400, "invalid_scope")
    wide = await ok(await post(client, "/oauth2/token", exchange_form(narrow["access_token"], audience="reports"),
                               auth="dashboard"))
    assert claims_of(wide["access_token"])["scope"] == "read"


async def test_scope_map_grants_only_what_it_maps_even_to_a_client_allowed_more(client):
    """mallory may grant admin, and the partner token says admin, but the partner's scope_map
    has no entry for it: with a scope_map, unmapped scopes grant nothing."""
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(scope="admin partner.read")),
                               auth="mallory"))
    assert claims_of(body["access_token"])["scope"] == "read"
    for scope in ("admin", "write", "read admin"):
        await refused(await post(client, "/oauth2/token", exchange_form(partner_token(scope="admin partner.read"),
                                                                        scope=scope), auth="mallory"),
                      400, "invalid_scope")


# --- cross-client use -------------------------------------------------------------------------

async def test_another_client_can_neither_refresh_introspect_revoke_nor_exchange_a_token(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    access, refresh = body["access_token"], body["refresh_token"]
    await refused(await post(client, "/oauth2/token", refresh_form(refresh), auth="mallory"), 400, "invalid_grant")
    for token in (access, refresh):
        seen = await ok(await post(client, "/oauth2/introspect", {"token": token}, auth="mallory"))
        assert seen == {"active": False}
        assert (await post(client, "/oauth2/revoke", {"token": token}, auth="mallory")).status == 200
    # mallory is allowed `self` and every audience, yet the token names neither her nor anything of hers
    await refused(await post(client, "/oauth2/token", exchange_form(access, audience="archive"), auth="mallory"),
                  400, "invalid_request")
    # and everything still works for its owner
    assert (await ok(await post(client, "/oauth2/introspect", {"token": access})))["active"] is True
    await ok(await post(client, "/oauth2/token", refresh_form(refresh)))


async def test_an_introspection_only_client_cannot_use_the_token_endpoint(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    await refused(await post(client, "/oauth2/token", refresh_form(body["refresh_token"]), auth="inspector"),
                  400, "unauthorized_client")
    await refused(await post(client, "/oauth2/token", exchange_form(body["access_token"]), auth="inspector"),
                  400, "unauthorized_client")
    assert await ok(await post(client, "/oauth2/introspect", {"token": body["access_token"]},
                               auth="inspector")) == {"active": False}


# --- audience injection -----------------------------------------------------------------------

@pytest.mark.parametrize("targets", [
    pytest.param([("audience", "dashboard reports archive")], id="space-joined"),
    pytest.param([("audience", "dashboard,archive")], id="comma-joined"),
    pytest.param([("audience", '["dashboard","archive"]')], id="json-array"),
    pytest.param([("audience", "dashboard"), ("resource", "archive")], id="resource-smuggles-a-target"),
    pytest.param([("audience", "Dashboard")], id="case-variant"),
    pytest.param([("audience", "dashboard "), ], id="trailing-space"),
    pytest.param([("audience[]", "dashboard")], id="php-array-name"),
])
async def test_audience_injection_is_invalid_target_or_invalid_request(client, targets):
    form = exchange_form(partner_token(), audience=None) + targets
    resp = await post(client, "/oauth2/token", form)
    body = await resp.json()
    assert resp.status == 400 and body["error"] in ("invalid_target", "invalid_request"), body


async def test_several_targets_all_land_in_aud_and_each_named_client_may_use_the_token(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience=None)
                               + [("audience", "dashboard"), ("resource", "reports"), ("audience", "dashboard")]))
    assert claims_of(body["access_token"])["aud"] == ["dashboard", "reports"]
    for who, target in (("dashboard", "reports"), ("reports", "archive")):
        await ok(await post(client, "/oauth2/token", exchange_form(body["access_token"], audience=target), auth=who))


# --- replay of single-use partner tokens --------------------------------------------------------

@pytest.fixture(name="store_url", params=["memory", "sqlite", "redis"])
async def _store_url(request, tmp_path):
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
    else:
        prefix = f"secreview-{secrets.token_hex(4)}:"
        yield f"redis://127.0.0.1:6379/13?prefix={prefix}"
        r = redis.Redis(host="127.0.0.1", port=6379, db=13)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        r.close()


async def test_fifty_concurrent_exchanges_of_one_single_use_token_issue_exactly_one(aiohttp_client, tmp_path,
                                                                                    store_url):
    # 49 replays are 49 failures: the brute-force throttle (tests/http/test_throttle.py) is off here
    settings = security_settings(tmp_path, "[throttle]\nmax_failures = 0\n", store=store_url)
    client = await aiohttp_client(create_app(settings))
    token = partner_token()
    responses = await asyncio.gather(*(post(client, "/oauth2/token", exchange_form(token)) for _ in range(50)))
    bodies = [(r.status, await r.json()) for r in responses]
    assert sorted(s for s, _ in bodies) == [200] + [400] * 49
    assert {b["error"] for s, b in bodies if s == 400} == {"invalid_request"}


async def test_a_replayed_single_use_token_stays_refused_for_another_client(client):
    token = partner_token()
    await ok(await post(client, "/oauth2/token", exchange_form(token)))
    await refused(await post(client, "/oauth2/token", exchange_form(token), auth="mallory"), 400, "invalid_request")


def high_s_twin(token: str) -> str:
    """The same ES256 token with its signature (r, s) rewritten as (r, n - s): also valid."""
    h, p, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    return f"{h}.{p}.{b64(r + (P256_ORDER - s).to_bytes(32, 'big'))}"


@pytest.mark.parametrize("twin_first", [False, True])
async def test_the_malleable_twin_of_a_single_use_es256_token_is_a_replay(client, twin_first):
    """ECDSA signatures are malleable, so a second valid encoding of one token exists: replay
    protection keys on the `jti`, never on the token string or its hash."""
    now = int(time.time())
    token = sign({"alg": "ES256", "typ": "JWT"}, {"iss": EC_PARTNER_ISS, "sub": "ec-user", "aud": BROKER_AUD,
                                                 "iat": now, "exp": now + 300, "jti": f"ec-{twin_first}"},
                 alg="ES256", key=EC_PARTNER_KEY)
    twin = high_s_twin(token)
    assert twin != token
    first, second = (twin, token) if twin_first else (token, twin)
    await ok(await post(client, "/oauth2/token", exchange_form(first)))
    await refused(await post(client, "/oauth2/token", exchange_form(second)), 400, "invalid_request")


async def test_a_replayed_actor_token_does_not_use_up_the_single_use_subject_token(client):
    actor = partner_token(sub="agent-1")
    await ok(await post(client, "/oauth2/token", exchange_form(actor)))                 # the actor's jti is used
    subject = partner_token(sub="user-1")
    await refused(await post(client, "/oauth2/token", delegated(subject, actor)), 400, "invalid_request")
    body = await ok(await post(client, "/oauth2/token", delegated(subject, partner_token(sub="agent-1"))))
    assert claims_of(body["access_token"])["act"]["sub"]
    await refused(await post(client, "/oauth2/token", delegated(subject, partner_token(sub="agent-1"))),
                  400, "invalid_request")                                              # now it is used up


# --- refresh-token reuse race -------------------------------------------------------------------

class LockstepRefreshStore(MemoryStore):
    """The real memory store, scheduled the way two replicas on Redis interleave when one refresh
    token arrives twice at once: both requests have read the live token before either consumes
    it, and the one that consumes it records it as used only after the other tried as well."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived = self._took = 0
        self._all_arrived, self._all_took = asyncio.Event(), asyncio.Event()

    async def take(self, key: str):
        if not key.startswith("refresh:"):
            return await super().take(key)
        self._arrived += 1
        if self._arrived == 2:
            self._all_arrived.set()
        await asyncio.wait_for(self._all_arrived.wait(), 10)
        found = await super().take(key)
        self._took += 1
        if self._took == 2:
            self._all_took.set()
        return found

    async def put(self, key: str, value: dict, *, ttl: float | None = None) -> None:
        if key.startswith("refresh_used:"):
            await asyncio.wait_for(self._all_took.wait(), 10)
        await super().put(key, value, ttl=ttl)


async def test_two_concurrent_refreshes_with_one_token_issue_at_most_one_and_revoke_the_family(
        aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(security_settings(tmp_path), overrides={"store": LockstepRefreshStore()}))
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token())))
    first, second = await asyncio.gather(*(post(client, "/oauth2/token", refresh_form(body["refresh_token"]))
                                           for _ in range(2)))
    answers = sorted([(first.status, await first.json()), (second.status, await second.json())],
                     key=lambda a: a[0])
    assert [s for s, _ in answers] == [200, 400] and answers[1][1]["error"] == "invalid_grant"
    # the race is a reuse: the winner's successor is dead too (RFC 9700 §4.14.2)
    successor = answers[0][1]["refresh_token"]
    await refused(await post(client, "/oauth2/token", refresh_form(successor)), 400, "invalid_grant")


# --- revocation ---------------------------------------------------------------------------------

async def test_a_revoked_access_token_is_dead_everywhere(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    assert (await post(client, "/oauth2/revoke", {"token": body["access_token"]})).status == 200
    assert await ok(await post(client, "/oauth2/introspect", {"token": body["access_token"]})) == {"active": False}
    await refused(await post(client, "/oauth2/token", exchange_form(body["access_token"], audience="reports"),
                             auth="dashboard"), 400, "invalid_request")
    # ...also as an actor token
    form = exchange_form(partner_token(sub="someone-else"), audience="dashboard") + [
        ("actor_token", body["access_token"]), ("actor_token_type", ACCESS_TOKEN)]
    await refused(await post(client, "/oauth2/token", form), 400, "invalid_request")


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


# --- opaque handles and garbage -----------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "A" * 43, "A" * 42, "A" * 44, "_" * 43, "refresh", "Bearer x", "." * 2,
])
async def test_guessed_or_truncated_handles_and_garbage_are_worthless(client, token):
    assert await ok(await post(client, "/oauth2/introspect", {"token": token})) == {"active": False}
    assert (await post(client, "/oauth2/revoke", {"token": token})).status == 200
    await refused(await post(client, "/oauth2/token", exchange_form(token)), 400, "invalid_request")
    await refused(await post(client, "/oauth2/token", refresh_form(token)), 400, "invalid_grant")


async def test_a_truncated_or_extended_refresh_token_is_invalid_grant_and_harms_nothing(client):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token())))
    token = body["refresh_token"]
    for variant in (token[:-1], token + "A", token + "=", token.upper()):
        await refused(await post(client, "/oauth2/token", refresh_form(variant)), 400, "invalid_grant")
    await ok(await post(client, "/oauth2/token", refresh_form(token)))


# --- hostile but signed partner tokens ----------------------------------------------------------

@pytest.mark.parametrize("claims", [
    pytest.param({"sub": "\ud800"}, id="lone-surrogate-sub"),
    pytest.param({"jti": "\udfff"}, id="lone-surrogate-jti"),
    pytest.param({"scope": "partner.read \ud83d"}, id="lone-surrogate-scope"),
    pytest.param({"exp": str(int(time.time()) + 600)}, id="string-exp"),
    pytest.param({"exp": None}, id="no-exp"),
    pytest.param({"exp": True}, id="bool-exp"),
    pytest.param({"exp": 10 ** 30}, id="absurd-exp"),
    pytest.param({"aud": [BROKER_AUD[:-1]]}, id="partial-aud"),
    pytest.param({"iss": PARTNER_ISS + "/"}, id="iss-with-slash"),
    pytest.param({"sub": ""}, id="empty-sub"),
    pytest.param({"sub": 42}, id="numeric-sub"),
    pytest.param({"jti": None}, id="no-jti-with-replay-check"),
    pytest.param({"act": "agent"}, id="act-not-an-object"),
    pytest.param({"may_act": ["agent"]}, id="may-act-not-an-object"),
])
async def test_signed_but_hostile_partner_claims_are_invalid_request_never_500(client, claims):
    resp = await post(client, "/oauth2/token", exchange_form(partner_token(**claims)))
    body = await resp.json()
    if claims.get("exp") == 10 ** 30:                   # legal, just long-lived: capped at the client's TTL
        assert resp.status == 200 and body["expires_in"] <= 900, body
        return
    assert (resp.status, body["error"]) == (400, "invalid_request"), body


def raw_hs256(header: dict, payload_json: str, secret: str = PARTNER_SECRET) -> str:
    import hmac as _hmac
    signing_input = f"{segment(header)}.{segment(payload_json)}"
    sig = _hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


async def test_duplicate_claims_in_a_signed_partner_token_are_refused(client):
    now = int(time.time())
    payload = (f'{{"iss":"{PARTNER_ISS}","sub":"user-1","aud":"{BROKER_AUD}","scope":"partner.read",'
               f'"scope":"partner.all","iat":{now},"exp":{now + 600},"jti":"dup-1"}}')
    token = raw_hs256({"alg": "HS256", "typ": "JWT"}, payload)
    await refused(await post(client, "/oauth2/token", exchange_form(token)), 400, "invalid_request")


@pytest.mark.parametrize("header", [
    {"alg": "HS256", "crit": ["exp"]},
    {"alg": "hs256"},
    {"alg": "none"},
    {"alg": "HS512"},
])
async def test_partner_tokens_with_a_hostile_header_are_refused(client, header):
    now = int(time.time())
    payload = json.dumps({"iss": PARTNER_ISS, "sub": "u", "aud": BROKER_AUD, "iat": now, "exp": now + 600,
                          "jti": f"h-{header['alg']}"})
    await refused(await post(client, "/oauth2/token", exchange_form(raw_hs256(header, payload))),
                  400, "invalid_request")


async def test_a_token_signed_by_an_attacker_key_naming_our_issuer_is_refused(client):
    now = int(time.time())
    forged = sign({"alg": "RS256", "typ": "at+jwt", "kid": "attacker"},
                  {"iss": PUBLIC_URL, "sub": "admin", "aud": "dashboard", "client_id": "portal", "scope": "admin",
                   "iat": now, "exp": now + 600, "jti": "forged"}, alg="RS256", key=None)
    await refused(await post(client, "/oauth2/token", exchange_form(forged, audience="reports"), auth="dashboard"),
                  400, "invalid_request")
    assert await ok(await post(client, "/oauth2/introspect", {"token": forged})) == {"active": False}


# --- client authentication ----------------------------------------------------------------------

def raw_basic(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


@pytest.mark.parametrize("header", [
    pytest.param(raw_basic(f"portal:{SECRETS['portal']}"), id="unencoded-secret-with-percent"),
    pytest.param(raw_basic(f"portal:{quote_plus(SECRETS['portal'])}x"), id="secret-plus-one-char"),
    pytest.param(raw_basic(f"portal:{quote_plus(SECRETS['portal'])[:-1]}"), id="secret-minus-one-char"),
    pytest.param(raw_basic("portal"), id="no-colon"),
    pytest.param(raw_basic(":" + quote_plus(SECRETS['portal'])), id="no-client-id"),
    pytest.param(raw_basic("nobody:" + quote_plus(SECRETS['portal'])), id="unknown-client"),
    pytest.param(raw_basic("dashboard:sha256:" + hashlib.sha256(b"dashboard-secret").hexdigest()),
                 id="the-hash-as-the-secret"),
    pytest.param(raw_basic("dashboard:" + hashlib.sha256(b"dashboard-secret").hexdigest()),
                 id="the-hex-digest-as-the-secret"),
    pytest.param({"Authorization": "Bearer " + "x" * 40}, id="bearer-scheme"),
])
async def test_every_bad_basic_credential_is_invalid_client(client, header):
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()), headers=header)
    await refused(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_colons_percent_and_plus_in_a_secret_work_when_form_encoded(client):
    assert SECRETS["portal"].count(":") and "%" in SECRETS["portal"] and "+" in SECRETS["portal"]
    await ok(await post(client, "/oauth2/token", exchange_form(partner_token())))
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()) + [
        ("client_id", "portal"), ("client_secret", SECRETS["portal"])])
    await ok(resp)


async def test_a_sha256_secret_accepts_only_the_plain_secret(client):
    await ok(await post(client, "/oauth2/introspect", {"token": "x"}, auth="dashboard"))
    resp = await client.post("/oauth2/introspect", data={"token": "x", "client_id": "dashboard",
                                                         "client_secret": "Dashboard-secret"})
    await refused(resp, 401, "invalid_client")


# --- metadata -----------------------------------------------------------------------------------

async def test_the_metadata_issuer_is_exactly_public_url_and_every_endpoint_lives_under_it(client):
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        doc = await ok(await client.get(path))
        assert doc["issuer"] == PUBLIC_URL
        for key, value in doc.items():
            if key.endswith(("_endpoint", "_uri")):
                assert value.startswith(PUBLIC_URL + "/"), (key, value)
        assert "none" not in doc["token_endpoint_auth_methods_supported"]
        assert doc["grant_types_supported"] == [TOKEN_EXCHANGE, "refresh_token"]
    jwks = await ok(await client.get("/oauth2/jwks"))
    assert jwks["keys"] and all("d" not in k and "p" not in k for k in jwks["keys"])


async def test_metadata_is_path_inserted_and_not_served_at_the_bare_rfc8414_path(aiohttp_client, tmp_path):
    settings = security_settings(tmp_path, public_url=f"{PUBLIC_URL}/tenant-a")
    client = await aiohttp_client(create_app(settings))
    doc = await ok(await client.get("/.well-known/oauth-authorization-server/tenant-a"))
    assert doc["issuer"] == f"{PUBLIC_URL}/tenant-a"
    assert doc["token_endpoint"] == f"{PUBLIC_URL}/tenant-a/oauth2/token"
    assert (await client.get("/.well-known/oauth-authorization-server")).status == 404
    assert (await ok(await client.get("/tenant-a/.well-known/openid-configuration")))["issuer"] == doc["issuer"]


# --- Entra subject tokens -----------------------------------------------------------------------

def entra_toml(emu) -> str:
    return f"""
[tls]
ca_bundle = "{emu.ca_bundle}"

[entra]
authority = "{emu.url}"
tenant_id = "{emu.tenant_id}"
client_id = "{demo.BROKER_CLIENT_ID}"
allow_app_only = true
timeout = 5

[[clients]]
client_id = "spa-backend"
client_secret = "spa-backend-secret-0123456789abc"
allowed_issuers = ["entra"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["user_impersonation", "admin"]
refresh_tokens = true
"""


@pytest.fixture(name="entra_client")
async def _entra_client(aiohttp_client, tmp_path, entra):
    settings = security_settings(tmp_path, entra_toml(entra))
    return await aiohttp_client(create_app(settings))


def mint_entra(emu, **kw) -> str:
    kw.setdefault("resource", demo.BROKER_CLIENT_ID)
    kw.setdefault("client_id", demo.PUBLIC_CLIENT_ID)
    kw.setdefault("scopes", ["user_impersonation"])
    return emu.mint(**kw)


async def spa(client, token: str, **extra):
    return await client.post("/oauth2/token", data=exchange_form(token, **extra),
                             headers=basic("spa-backend", "spa-backend-secret-0123456789abc"))


async def refused_for(client, token: str, reason: str) -> None:
    """400 invalid_request, and the audit event names the reason (the response never does)."""
    with capture_logs() as logs:
        body = await refused(await spa(client, token), 400, "invalid_request")
    assert body["error_description"] == "The subject token is not acceptable."
    assert [e["reason"] for e in logs if e.get("audit")] == [reason]


@pytest.mark.parametrize(("kw", "reason"), [
    pytest.param({"user": demo.CAROL_UPN, "tenant": demo.PARTNER_TENANT_ID}, "subject_tenant",
                 id="tenant-not-allowed"),
    pytest.param({"claims": {"scp": None}}, "subject_token_type", id="id-token-shape-no-scp-no-roles"),
    pytest.param({"claims": {"nonce": "n-1"}}, "subject_token_type", id="id-token-nonce-claim"),
    pytest.param({"resource": "https://graph.microsoft.com"}, "subject_audience", id="graph-audience"),
    pytest.param({"claims": {"exp": "9999999999"}}, "subject_claims", id="string-exp"),
    pytest.param({"claims": {"exp": None}}, "subject_claims", id="no-exp"),
])
async def test_entra_tokens_the_broker_must_not_accept_are_invalid_request(entra_client, entra, kw, reason):
    await refused_for(entra_client, mint_entra(entra, **kw), reason)


async def test_a_graph_token_with_a_nonce_header_is_refused_as_a_graph_token(entra_client, entra):
    header, payload = _parts(mint_entra(entra))
    forged = sign({**header, "nonce": "graph-nonce"}, payload, alg="RS256", key=None)
    await refused_for(entra_client, forged, "subject_token_type")


async def test_an_app_only_entra_token_yields_no_scope_and_cannot_ask_for_one(entra_client, entra):
    token = mint_entra(entra, app_only=True, client_id=demo.DAEMON_CLIENT_ID, roles=["Admin.All"])
    await refused(await spa(entra_client, token, scope="admin"), 400, "invalid_scope")
    body = await ok(await spa(entra_client, mint_entra(entra, app_only=True, client_id=demo.DAEMON_CLIENT_ID,
                                                       roles=["Admin.All"])))
    assert "scope" not in claims_of(body["access_token"])


def _parts(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p)))


# --- lone surrogates from unauthenticated callers -------------------------------------------------

def unsigned(header: dict, payload: dict) -> str:
    return f"{segment(header)}.{segment(payload)}.c2ln"


@pytest.mark.parametrize("where", ["assertion-sub", "subject-iss", "subject-kid", "bearer-kid", "bearer-tid"])
async def test_lone_surrogates_from_anyone_are_a_4xx_never_a_500(client, where):
    now = int(time.time())
    token = {"assertion-sub": unsigned({"alg": "ES256", "kid": "k"}, {"iss": "x", "sub": "\ud800", "aud": PUBLIC_URL}),
             "subject-iss": unsigned({"alg": "HS256"}, {"iss": "\udc00", "sub": "u", "exp": now + 60}),
             "subject-kid": unsigned({"alg": "ES256", "kid": "\ud800", "typ": "at+jwt"},
                                     {"iss": PUBLIC_URL, "sub": "u", "exp": now + 60}),
             "bearer-kid": unsigned({"alg": "RS256", "kid": "\ud800"}, {"ver": "2.0", "tid": "t", "exp": now + 60}),
             "bearer-tid": unsigned({"alg": "RS256", "kid": "k"}, {"ver": "2.0", "tid": "\ud800", "exp": now + 60}),
             }[where]
    if where == "assertion-sub":
        resp = await client.post("/oauth2/token", data=exchange_form(partner_token()) + [
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", token)])
        assert resp.status == 401
    elif where.startswith("bearer"):
        resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401
    else:
        resp = await post(client, "/oauth2/token", exchange_form(token, audience="reports"), auth="dashboard")
        assert resp.status == 400
    assert "error" in await resp.json()


# --- the actor's lifetime ---------------------------------------------------------------------------

def delegated(subject: str, actor: str) -> list[tuple[str, str]]:
    return exchange_form(subject) + [("actor_token", actor), ("actor_token_type", ACCESS_TOKEN)]


async def test_a_delegated_token_never_outlives_its_actor_token(client):
    body = await ok(await post(client, "/oauth2/token", delegated(partner_token(sub="user-1", lifetime=600),
                                                                  partner_token(sub="agent-1", lifetime=45))))
    assert body["expires_in"] <= 45


async def test_an_actor_token_expired_within_the_clock_skew_is_refused(client):
    stale = partner_token(sub="agent-1", iat=int(time.time()) - 300, exp=int(time.time()) - 20)
    with capture_logs() as logs:
        await refused(await post(client, "/oauth2/token", delegated(partner_token(sub="user-1"), stale)),
                      400, "invalid_request")
    assert [e["reason"] for e in logs if e.get("audit")] == ["actor_expired"]


# --- a real opaque handle, altered ------------------------------------------------------------------

async def test_a_real_handle_altered_by_one_character_or_truncated_is_worthless(client):
    handle = (await ok(await post(client, "/oauth2/token", exchange_form(partner_token()), auth="vault")))[
        "access_token"]
    assert (await ok(await post(client, "/oauth2/introspect", {"token": handle}, auth="vault")))["active"]
    flipped = handle[:-1] + ("A" if handle[-1] != "A" else "B")
    for variant in (flipped, handle[:-1], handle + "A", handle.upper() if handle.upper() != handle else flipped):
        assert await ok(await post(client, "/oauth2/introspect", {"token": variant}, auth="vault")) == \
            {"active": False}
        await refused(await post(client, "/oauth2/token", exchange_form(variant), auth="vault"), 400,
                      "invalid_request")
    # the owner can still use the real one; a dashboard-audience client can exchange it, mallory cannot
    await refused(await post(client, "/oauth2/token", exchange_form(handle, audience="archive"), auth="mallory"),
                  400, "invalid_request")
    await ok(await post(client, "/oauth2/token", exchange_form(handle, audience="reports"), auth="dashboard"))


# --- key rotation -------------------------------------------------------------------------------

async def test_a_token_signed_by_a_retired_key_is_dead_before_its_exp(client, tmp_path):
    body = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    old_kid = jwt.get_unverified_header(body["access_token"])["kid"]
    # an operator rotates with no overlap at all (max_token_ttl=0): the old key retires now
    rotate_keys(tmp_path / "keys", "ES256", now=time.time(), activation_delay=0, max_token_ttl=0)
    client.app[KEYRING].reload()
    kids = [k["kid"] for k in (await ok(await client.get("/oauth2/jwks")))["keys"]]
    assert old_kid not in kids and kids
    assert await ok(await post(client, "/oauth2/introspect", {"token": body["access_token"]})) == {"active": False}
    await refused(await post(client, "/oauth2/token", exchange_form(body["access_token"], audience="reports"),
                             auth="dashboard"), 400, "invalid_request")
    fresh = await ok(await post(client, "/oauth2/token", exchange_form(partner_token(), audience="dashboard")))
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] in kids


# --- federation: the issuer is the trusted issuer's NAME, matched after validation -------------------

CI_SECRET = "ci-hmac-secret-of-at-least-32-bytes-long!"
EVIL_SECRET = "evil-hmac-secret-of-at-least-32-bytes-long"
FEDERATION_TOML = f"""
[[trusted_issuers]]
name = "ci"
issuer = "https://ci.example"
secret = "{CI_SECRET}"
audiences = ["tokenbroker-federation"]
algorithms = ["HS256"]
replay_check = true

[[trusted_issuers]]
name = "evil"
issuer = "ci"
secret = "{EVIL_SECRET}"
audiences = ["tokenbroker-federation"]
algorithms = ["HS256"]

[[clients]]
client_id = "deployer"
client_secret = "deployer-secret-0123456789abcdef"
allowed_issuers = ["ci", "evil"]
allowed_audiences = ["build-agent"]
allowed_scopes = ["deploy", "read"]

[[clients]]
client_id = "build-agent"
client_secret = "build-agent-secret-0123456789abc"
allowed_scopes = ["deploy"]
federated_identities = [{{ issuer = "ci", subject = "repo:acme/app", audience = "tokenbroker-federation" }}]
"""


def ci_token(iss: str, secret: str, sub: str = "repo:acme/app") -> str:
    now = int(time.time())
    return jwt.encode({"iss": iss, "sub": sub, "aud": "tokenbroker-federation", "scope": "deploy read",
                       "iat": now, "exp": now + 300, "jti": secrets.token_hex(8)}, secret, algorithm="HS256")


DEPLOYER = {"Authorization": "Basic " + base64.b64encode(b"deployer:deployer-secret-0123456789abcdef").decode()}


async def test_a_request_refused_by_federation_does_not_use_up_a_single_use_token(aiohttp_client, tmp_path):
    """`read` passes the requester's policy but not the federated client's scopes: invalid_scope,
    and the single-use token is still good for a corrected request."""
    client = await aiohttp_client(create_app(security_settings(tmp_path, FEDERATION_TOML)))
    token = ci_token("https://ci.example", CI_SECRET)
    resp = await client.post("/oauth2/token", headers=DEPLOYER,
                             data=exchange_form(token, audience="build-agent", scope="read"))
    await refused(resp, 400, "invalid_scope")
    resp = await client.post("/oauth2/token", headers=DEPLOYER,
                             data=exchange_form(token, audience="build-agent", scope="deploy"))
    assert claims_of((await ok(resp))["access_token"])["sub"] == "build-agent"
    resp = await client.post("/oauth2/token", headers=DEPLOYER,
                             data=exchange_form(token, audience="build-agent", scope="deploy"))
    await refused(resp, 400, "invalid_request")                        # and now it is used up


async def test_a_request_refused_by_account_linking_does_not_use_up_a_single_use_token(aiohttp_client, tmp_path):
    extra = f"""
[[trusted_issuers]]
name = "linked-only"
issuer = "https://linked.example"
secret = "{CI_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
replay_check = true
linking = "require_linked"

[[clients]]
client_id = "linker"
client_secret = "linker-secret-0123456789abcdefgh"
allowed_issuers = ["linked-only"]
allowed_audiences = ["dashboard"]
"""
    client = await aiohttp_client(create_app(security_settings(tmp_path, extra)))
    auth = {"Authorization": "Basic " + base64.b64encode(b"linker:linker-secret-0123456789abcdefgh").decode()}
    now = int(time.time())
    token = jwt.encode({"iss": "https://linked.example", "sub": "ext-9", "aud": BROKER_AUD, "iat": now,
                        "exp": now + 300, "jti": "once-9"}, CI_SECRET, algorithm="HS256")
    await refused(await client.post("/oauth2/token", headers=auth, data=exchange_form(token)), 400,
                  "invalid_request")
    accounts = Accounts(client.app[STORE])
    account = await accounts.create({"name": "Ext Nine"})
    await accounts.link(account.id, "linked-only", "ext-9")
    body = await ok(await client.post("/oauth2/token", headers=auth, data=exchange_form(token)))
    assert claims_of(body["access_token"])["sub"] == account.id


async def test_federation_matches_the_validated_issuer_not_an_iss_that_spells_its_name(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(security_settings(tmp_path, FEDERATION_TOML)))
    deployer = DEPLOYER

    async def exchange(token: str) -> dict:
        resp = await client.post("/oauth2/token", data=exchange_form(token, audience="build-agent"),
                                 headers=deployer)
        return await ok(resp)

    real = claims_of((await exchange(ci_token("https://ci.example", CI_SECRET)))["access_token"])
    assert real["sub"] == real["client_id"] == "build-agent"
    # the "evil" issuer's iss is literally "ci", the NAME of the federated issuer: an ordinary user
    spoof = claims_of((await exchange(ci_token("ci", EVIL_SECRET)))["access_token"])
    assert spoof["sub"] != "build-agent" and spoof["client_id"] == "deployer"
    # and the evil issuer's key cannot sign for https://ci.example
    resp = await client.post("/oauth2/token", headers=deployer,
                             data=exchange_form(ci_token("https://ci.example", EVIL_SECRET), audience="build-agent"))
    await refused(resp, 400, "invalid_request")
