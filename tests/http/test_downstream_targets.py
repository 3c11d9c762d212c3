"""`audience=acs:teams` and `audience=obo:<name>` at /oauth2/token, against the real Entra and ACS
emulators over HTTPS: the ACS and OBO exchanges through the token endpoint, their refusals
(none reaching the downstream when a local check fails), and their audit events."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from structlog.testing import capture_logs

from emulators.entra import demo
from emulators.entra.obo import mfa_claims_challenge
from service.app import create_app
from service.settings import load_settings
from tests.http.token_support import ACCESS_TOKEN, PARTNER_ISS, PARTNER_SECRET, basic, exchange_form
from tests.obo.conftest import JWT_BEARER, decode_verified, obo_calls, portal_token
from tests.support.serve_process import PARTNER_ISSUER_TOML

SPA = demo.CLIENT_ID
TEAMS_SCOPES = ["Teams.ManageCalls", "Teams.ManageChats"]
SECRETS = {"teams-app": "teams-app-secret-0123456789abcde", "dash-only": "dash-only-secret-0123456789abcde", "partner-app": "partner-secret-0123456789abcdefg",
           "ghost-app": "ghost-secret-0123456789abcdefghi", "no-entra": "no-entra-secret-0123456789abcdef"}


def broker_toml(entra, acs, keys_dir, entra_extra: str = "") -> str:
    return f"""
[server]
public_url = "http://broker.test"

[tls]
ca_bundle = {json.dumps(entra.ca_bundle)}

[entra]
authority = {json.dumps(entra.url)}
tenant_id = "{demo.TENANT_ID}"
client_id = "{demo.BROKER_CLIENT_ID}"
client_secret = {json.dumps(demo.BROKER_SECRET)}
allowed_tenants = ["{demo.TENANT_ID}", "{demo.PARTNER_TENANT_ID}"]
timeout = 5
{entra_extra}

[acs]
endpoint = {json.dumps(acs.url)}
access_key = {json.dumps(acs.access_key)}
allowed_teams_client_apps = ["{SPA}"]
timeout = 5

[obo.workspace]
scopes = [{json.dumps(demo.WORKSPACE_SCOPE)}]

[issuer]
keys_dir = {json.dumps(str(keys_dir))}

{PARTNER_ISSUER_TOML.strip()}

[[clients]]
client_id = "teams-app"
client_secret = "teams-app-secret-0123456789abcde"
allowed_issuers = ["entra"]
allowed_audiences = ["acs:teams", "obo:workspace", "dashboard"]
allowed_scopes = ["read"]
refresh_tokens = true

[[clients]]
client_id = "dash-only"
client_secret = "dash-only-secret-0123456789abcde"
allowed_issuers = ["entra"]
allowed_audiences = ["dashboard"]

[[clients]]
client_id = "no-entra"
client_secret = "no-entra-secret-0123456789abcdef"
allowed_issuers = ["partner"]
allowed_audiences = ["acs:teams"]

[[clients]]
client_id = "partner-app"
client_secret = "partner-secret-0123456789abcdefg"
allowed_issuers = ["partner", "entra"]
allowed_audiences = ["obo:workspace"]

[[clients]]
client_id = "ghost-app"
client_secret = "ghost-secret-0123456789abcdefghi"
allowed_issuers = ["entra"]
allowed_audiences = ["obo:ghost"]
"""


@pytest.fixture(name="broker")
async def _broker(aiohttp_client, entra, acs, tmp_path):
    settings = load_settings(broker_toml(entra, acs, tmp_path / "keys"), {}, base_dir=tmp_path)
    return await aiohttp_client(create_app(settings))


def teams_token(entra, **kw) -> str:
    kw.setdefault("resource", demo.ACS_APP_ID_URI)
    kw.setdefault("client_id", SPA)
    kw.setdefault("scopes", TEAMS_SCOPES)
    return entra.mint(**kw)


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def exchange(broker, token: str, audience="acs:teams", *, client: str = "teams-app", **extra):
    resp = await broker.post("/oauth2/token", data=exchange_form(token, audience=audience, **extra),
                             headers=basic(client, SECRETS[client]))
    return resp, await resp.json()


def audit_of(logs: list[dict]) -> dict:
    [event] = [e for e in logs if e["event"] == "token_exchange"]
    return event


def acs_calls(acs) -> list[dict]:
    return acs.requests(operation="get_token_for_teams_user")


# --- acs:teams ------------------------------------------------------------------------------

async def test_a_teams_token_is_exchanged_for_an_acs_token_with_token_type_n_a(broker, entra, acs):
    teams = teams_token(entra, user=demo.ALICE_UPN)
    with capture_logs() as logs:
        resp, body = await exchange(broker, teams)
    assert resp.status == 200, body
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "N_A"
    assert "refresh_token" not in body and "scope" not in body      # the client has refresh_tokens = true
    assert 0 < body["expires_in"] <= unverified(teams)["exp"] - int(time.time()) + 1
    check = acs.check_token(body["access_token"])
    assert check["valid"] and check["skypeid"] == f"orgid:{demo.ALICE_OID}"
    [call] = acs_calls(acs)
    assert (call["app_id"], call["oid"]) == (SPA, demo.ALICE_OID)
    event = audit_of(logs)
    assert (event["decision"], event["rule"], event["issuer"], event["audience"]) == (
        "allow", "allow", "entra", ["acs:teams"])
    assert event["downstream"] == "acs" and event["downstream_correlation_id"]
    assert event["jti"] == unverified(body["access_token"])["jti"]     # correlates with the ACS token
    assert event["downstream_request_id"] == resp.headers["X-Request-Id"] == call["client_request_id"]
    assert body["access_token"] not in json.dumps(logs, default=str) and teams not in json.dumps(logs, default=str)


async def test_a_repeated_teams_exchange_comes_from_the_shared_acs_cache(broker, entra, acs):
    teams = teams_token(entra)
    first = (await exchange(broker, teams))[1]
    with capture_logs() as logs:
        resp, second = await exchange(broker, teams)
    assert resp.status == 200, second
    assert second["access_token"] == first["access_token"]
    assert len(acs_calls(acs)) == 1
    assert audit_of(logs)["downstream_cached"] is True
    api = await broker.get("/api/token/teams", headers={          # the /api route shares the cache
        "Authorization": f"Bearer {portal_token(entra)}", "teams-user-aad-token": teams})
    assert api.status == 201 and (await api.json())["token"] == first["access_token"]
    assert len(acs_calls(acs)) == 1


@pytest.mark.parametrize(("case", "mint"), [
    ("one Teams scope missing", {"scopes": ["Teams.ManageCalls"]}),
    ("an app not allowed to acquire Teams tokens", {"client_id": demo.PUBLIC_CLIENT_ID}),
    ("a token for the broker, not for ACS", {"resource": demo.BROKER_CLIENT_ID, "scopes": ["user_impersonation"]}),
    ("an expired token", {"lifetime": -600}),
    ("a tenant that is not allowed", {"claims": {"tid": "00000000-0000-0000-0000-000000000001"}}),
])
async def test_a_refused_teams_token_is_invalid_request_and_never_reaches_acs(broker, entra, acs, case, mint):
    token = teams_token(entra, **mint)
    with capture_logs() as logs:
        resp, body = await exchange(broker, token)
    assert (resp.status, body["error"]) == (400, "invalid_request"), (case, body)
    assert acs.requests() == []
    assert audit_of(logs)["decision"] == "deny"


async def test_a_forged_teams_token_signature_is_refused_before_acs(broker, entra, acs):
    head, payload, sig = teams_token(entra).split(".")
    forged = f"{head}.{payload}.{sig[::-1]}"
    resp, body = await exchange(broker, forged)
    assert (resp.status, body["error"]) == (400, "invalid_request"), body
    assert acs.requests() == []


async def test_a_teams_token_acs_refuses_is_invalid_request(broker, entra, acs):
    acs.inject_fault("get_token_for_teams_user", status=401, code="InvalidAccessToken")
    resp, body = await exchange(broker, teams_token(entra))
    assert (resp.status, body["error"]) == (400, "invalid_request"), body


async def test_acs_unavailable_is_a_503_with_retry_after(broker, entra, acs):
    acs.inject_fault("get_token_for_teams_user", status=429, code="TooManyRequests", retry_after=30, count=5)
    resp, body = await exchange(broker, teams_token(entra))
    assert (resp.status, body["error"]) == (503, "temporarily_unavailable"), body
    assert resp.headers["Retry-After"] == "30"


# --- policy of downstream targets -------------------------------------------------------------

@pytest.mark.parametrize(("client", "audience", "extra", "status", "error", "rule"), [
    ("dash-only", "acs:teams", {}, 400, "invalid_target", "audience"),
    ("teams-app", ["acs:teams", "dashboard"], {}, 400, "invalid_target", "audience.downstream_mixed"),
    ("teams-app", ["obo:workspace", "acs:teams"], {}, 400, "invalid_target", "audience.downstream_mixed"),
    ("teams-app", "acs:teams", {"scope": "read"}, 400, "invalid_scope", "scope.downstream"),
    ("teams-app", "obo:workspace", {"scope": "read"}, 400, "invalid_scope", "scope.downstream"),
    ("ghost-app", "obo:ghost", {}, 400, "invalid_target", "audience.downstream_unavailable"),
    ("no-entra", "acs:teams", {}, 400, "invalid_request", "issuer"),
])
async def test_downstream_targets_are_denied_by_policy_before_any_call(broker, entra, acs, client, audience,
                                                                         extra, status, error, rule):
    with capture_logs() as logs:
        resp, body = await exchange(broker, teams_token(entra), audience, client=client, **extra)
    assert (resp.status, body["error"]) == (status, error), body
    assert audit_of(logs)["rule"] == rule
    assert acs.requests() == [] and obo_calls(entra) == []


async def test_a_partner_token_cannot_reach_an_entra_downstream(broker, entra):
    now = int(time.time())
    partner = jwt.encode({"iss": PARTNER_ISS, "sub": "p1", "aud": "https://broker.example", "iat": now,
                          "exp": now + 300}, PARTNER_SECRET, algorithm="HS256")
    with capture_logs() as logs:
        resp, body = await exchange(broker, partner, "obo:workspace", client="partner-app")
    assert (resp.status, body["error"]) == (400, "invalid_request"), body
    assert audit_of(logs)["rule"] == "issuer.downstream"
    assert obo_calls(entra) == []


async def test_delegation_into_a_downstream_target_is_refused(broker, entra, acs):
    resp, body = await exchange(broker, teams_token(entra), actor_token=portal_token(entra),
                                actor_token_type=ACCESS_TOKEN)
    assert (resp.status, body["error"]) == (400, "invalid_request"), body
    assert acs.requests() == []


async def test_a_jwt_cannot_be_requested_from_a_downstream(broker, entra, acs):
    resp, body = await exchange(broker, teams_token(entra),
                                requested_token_type="urn:ietf:params:oauth:token-type:jwt")
    assert (resp.status, body["error"]) == (400, "invalid_request"), body


async def test_the_metadata_advertises_the_configured_downstream_targets(broker):
    doc = await (await broker.get("/.well-known/oauth-authorization-server")).json()
    assert doc["tokenbroker_downstream_targets"] == ["acs:teams", "obo:workspace"]


async def test_ordinary_audiences_still_get_our_own_tokens(broker, entra):
    resp, body = await exchange(broker, portal_token(entra), "dashboard")
    assert resp.status == 200, body
    assert body["token_type"] == "Bearer" and unverified(body["access_token"])["aud"] == "dashboard"


# --- obo:<name> -------------------------------------------------------------------------------

async def test_an_entra_token_is_exchanged_on_behalf_of_the_user_for_the_workspace(broker, entra):
    assertion = portal_token(entra, user=demo.ALICE_UPN)
    with capture_logs() as logs:
        resp, body = await exchange(broker, assertion, "obo:workspace")
    assert resp.status == 200, body
    assert (body["token_type"], body["issued_token_type"]) == ("Bearer", ACCESS_TOKEN)
    assert body["scope"] == demo.WORKSPACE_SCOPE
    assert "refresh_token" not in body
    claims = decode_verified(entra, body["access_token"], demo.TENANT_ID, demo.WORKSPACE_CLIENT_ID)
    assert (claims["oid"], claims["tid"]) == (demo.ALICE_OID, demo.TENANT_ID)
    assert 0 < body["expires_in"] <= claims["exp"] - int(time.time()) + 1
    event = audit_of(logs)
    assert (event["rule"], event["downstream"], event["audience"]) == ("allow", "entra_obo", ["obo:workspace"])
    assert event["jti"] == claims["uti"]
    [call] = obo_calls(entra)
    assert call["headers"]["client-request-id"] == event["downstream_request_id"] == resp.headers["X-Request-Id"]


async def test_a_repeated_obo_exchange_makes_no_new_entra_call(broker, entra):
    assertion = portal_token(entra)
    first = (await exchange(broker, assertion, "obo:workspace"))[1]
    resp, second = await exchange(broker, assertion, "obo:workspace")
    assert resp.status == 200 and second["access_token"] == first["access_token"]
    assert len(obo_calls(entra)) == 1


async def test_a_teams_token_is_not_an_obo_assertion(broker, entra):
    resp, body = await exchange(broker, teams_token(entra), "obo:workspace")
    assert (resp.status, body["error"]) == (400, "invalid_request"), body
    assert obo_calls(entra) == []


async def test_missing_consent_is_invalid_grant_with_entras_suberror(broker, entra):
    with capture_logs() as logs:
        resp, body = await exchange(broker, portal_token(entra, user=demo.BOB_UPN), "obo:workspace")
    assert (resp.status, body["error"], body["suberror"]) == (400, "invalid_grant", "consent_required"), body
    assert "WWW-Authenticate" not in resp.headers
    event = audit_of(logs)
    assert (event["decision"], event["reason"], event["aadsts"]) == ("deny", "consent_required", 65001)
    assert event["downstream_correlation_id"]


async def test_mfa_required_is_interaction_required_with_entras_claims(broker, entra):
    entra.set_mfa(resource=demo.WORKSPACE_CLIENT_ID)
    resp, body = await exchange(broker, portal_token(entra), "obo:workspace")
    assert (resp.status, body["error"]) == (400, "interaction_required"), body
    assert body["claims"] == mfa_claims_challenge()
    assert "WWW-Authenticate" not in resp.headers


async def test_an_assertion_entra_rejects_is_invalid_request(broker, entra):
    entra.inject_fault(grant_type=JWT_BEARER, aadsts=50013)
    resp, body = await exchange(broker, portal_token(entra), "obo:workspace")
    assert (resp.status, body["error"]) == (400, "invalid_request"), body


async def test_entra_unavailable_is_a_503_with_retry_after(broker, entra):
    entra.inject_fault(grant_type=JWT_BEARER, status=429, retry_after=30, count=10)
    resp, body = await exchange(broker, portal_token(entra), "obo:workspace")
    assert (resp.status, body["error"]) == (503, "temporarily_unavailable"), body
    assert resp.headers["Retry-After"] == "30"



# --- account linking applies to the Entra user of a downstream target ---------------------------

@pytest.mark.parametrize("audience", ["acs:teams", "obo:workspace"])
async def test_an_unlinked_user_under_require_linked_is_refused_before_the_downstream(
        aiohttp_client, entra, acs, tmp_path, audience):
    settings = load_settings(broker_toml(entra, acs, tmp_path / "keys", 'linking = "require_linked"'), {},
                             base_dir=tmp_path)
    broker = await aiohttp_client(create_app(settings))
    token = teams_token(entra) if audience == "acs:teams" else portal_token(entra)
    with capture_logs() as logs:
        resp, body = await exchange(broker, token, audience)
    assert (resp.status, body["error"]) == (400, "invalid_request"), body
    assert audit_of(logs)["reason"] == "account_not_linked"
    assert acs.requests() == [] and obo_calls(entra) == []


async def test_a_jit_linked_user_gets_the_downstream_token(aiohttp_client, entra, acs, tmp_path):
    settings = load_settings(broker_toml(entra, acs, tmp_path / "keys", 'linking = "jit"'), {},
                             base_dir=tmp_path)
    broker = await aiohttp_client(create_app(settings))
    with capture_logs() as logs:
        resp, body = await exchange(broker, teams_token(entra), "acs:teams")
    assert resp.status == 200, body
    [linked] = [e for e in logs if e["event"] == "account.linked"]
    assert (linked["issuer"], linked["method"]) == ("entra", "jit")
