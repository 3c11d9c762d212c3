"""The emulator's control plane: minting, fault injection, request log, reset, clock, seed."""

from __future__ import annotations

import json

import jwt
import msal
import pytest
import requests

from emulators.entra import demo

BROKER_DEFAULT = f"{demo.BROKER_APP_ID_URI}/.default"


def _daemon(entra) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(demo.DAEMON_CLIENT_ID, client_credential=demo.DAEMON_SECRET,
                                              authority=entra.authority(), instance_discovery=False,
                                              http_client=entra.http())


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _token_post(entra, **form) -> requests.Response:
    return entra.http().post(f"{entra.url}/{demo.TENANT_ID}/oauth2/v2.0/token", data=form, timeout=10)


def test_mint_accepts_claim_overrides_and_a_null_removes_a_claim(entra):
    token = entra.mint(resource=demo.BROKER_APP_ID_URI, user=demo.BOB_UPN, scopes=["user_impersonation"],
                       claims={"wids": ["62e90394-69f5-4237-9190-012177145e10"], "name": None}, lifetime=900)
    claims = _claims(token)
    assert claims["wids"] == ["62e90394-69f5-4237-9190-012177145e10"] and "name" not in claims
    assert claims["oid"] == demo.BOB_OID and claims["exp"] - claims["iat"] == 900
    v1 = _claims(entra.mint(resource=demo.BROKER_APP_ID_URI, user="alice", version=1))
    assert v1["ver"] == "1.0" and v1["aud"] == demo.BROKER_APP_ID_URI and v1["appid"]
    app_only = _claims(entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=demo.DAEMON_CLIENT_ID, app_only=True))
    assert app_only["roles"] == [demo.BROKER_APP_ROLE] and "scp" not in app_only


def test_mint_without_a_resource_or_with_an_unknown_one_is_a_4xx(entra):
    no_resource = entra.session.post(f"{entra.url}/_emulator/token", json={"user": "alice"}, timeout=10)
    assert no_resource.status_code == 400 and no_resource.json()["error"] == "invalid_request"
    unknown = entra.session.post(f"{entra.url}/_emulator/token", json={"resource": "api://nope"}, timeout=10)
    assert unknown.status_code == 404
    garbage = entra.session.post(f"{entra.url}/_emulator/token", data="{", timeout=10,
                                 headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400


def test_an_injected_aadsts_fault_hits_the_next_matching_call_only(entra):
    entra.inject_fault(grant_type="client_credentials", aadsts=50079, count=1)
    first = _daemon(entra).acquire_token_for_client([BROKER_DEFAULT])
    assert first["error"] == "interaction_required" and first["error_codes"] == [50079]
    second = _daemon(entra).acquire_token_for_client([BROKER_DEFAULT])
    assert "access_token" in second, second
    log = entra.requests(grant_type="client_credentials")
    assert [e["fault"] for e in log] == [True, False] and [e["status"] for e in log] == [400, 200]


def test_an_injected_503_carries_retry_after(entra):
    entra.inject_fault(route="/oauth2/v2.0/token", status=503, retry_after=7, count=2)
    for _ in range(2):
        resp = _token_post(entra, grant_type="client_credentials", client_id=demo.DAEMON_CLIENT_ID,
                           client_secret=demo.DAEMON_SECRET, scope=BROKER_DEFAULT)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "7"
        assert resp.json()["error"] == "temporarily_unavailable"
    ok = _token_post(entra, grant_type="client_credentials", client_id=demo.DAEMON_CLIENT_ID,
                     client_secret=demo.DAEMON_SECRET, scope=BROKER_DEFAULT)
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"


def test_a_delay_only_fault_still_answers_normally(entra):
    entra.inject_fault(route="/discovery/v2.0/keys", delay=0.2)
    resp = entra.http().get(f"{entra.url}/{demo.TENANT_ID}/discovery/v2.0/keys", timeout=10)
    assert resp.status_code == 200 and resp.json()["keys"]
    assert entra.requests(path="/discovery/v2.0/keys")[-1]["fault"] is True


def test_the_request_log_records_headers_and_never_secrets(entra):
    _daemon(entra).acquire_token_for_client([BROKER_DEFAULT])
    entry = entra.requests(grant_type="client_credentials", client_id=demo.DAEMON_CLIENT_ID)[-1]
    assert entry["method"] == "POST" and entry["path"] == f"/{demo.TENANT_ID}/oauth2/v2.0/token"
    assert entry["headers"]["x-client-sku"] == "MSAL.Python" and entry["headers"]["client-request-id"]
    assert demo.DAEMON_SECRET not in json.dumps(entra.requests())


def test_reset_clears_faults_log_and_control_plane_consents(entra):
    entra.inject_fault(route="/token", status=500, count=5)
    entra.add_consent(client_id=demo.BROKER_CLIENT_ID, resource=demo.WORKSPACE_CLIENT_ID)
    assert any(c["user"] is None for c in entra.state()["consents"])
    entra.reset()
    assert entra.control("GET", "faults")["faults"] == [] and entra.requests() == []
    assert not any(c["user"] is None for c in entra.state()["consents"])


def test_shifting_the_clock_expires_assertions(entra):
    assertion = entra.mint(resource=demo.BROKER_CLIENT_ID, user="alice", client_id=demo.CLIENT_ID, lifetime=600)
    entra.shift_clock(900)
    app = msal.ConfidentialClientApplication(demo.BROKER_CLIENT_ID, client_credential=demo.BROKER_SECRET,
                                             authority=entra.authority(), instance_discovery=False,
                                             http_client=entra.http())
    result = app.acquire_token_on_behalf_of(assertion, [demo.WORKSPACE_SCOPE])
    assert result["error_codes"] == [500133]


@pytest.mark.parametrize("form,code", [
    ({"grant_type": "password", "client_id": demo.DAEMON_CLIENT_ID}, 70003),
    ({"grant_type": "client_credentials", "client_id": "00000000-0000-0000-0000-000000000001",
      "client_secret": "x", "scope": BROKER_DEFAULT}, 700016),
    ({"grant_type": "client_credentials", "client_id": demo.DAEMON_CLIENT_ID, "scope": BROKER_DEFAULT}, 7000218),
    ({"grant_type": "client_credentials", "client_id": demo.DAEMON_CLIENT_ID, "client_secret": demo.DAEMON_SECRET,
      "scope": "api://unknown-resource/.default"}, 500011),
    ({"grant_type": "authorization_code", "client_id": demo.CLIENT_ID, "client_secret": demo.CLIENT_SECRET,
      "code": "nope"}, 70000),
])
def test_bad_token_requests_get_aadsts_errors(entra, form, code):
    resp = _token_post(entra, **form)
    assert resp.status_code in (400, 401)
    assert resp.json()["error_codes"] == [code]


def test_an_unknown_tenant_on_the_token_endpoint_is_90002(entra):
    resp = entra.http().post(f"{entra.url}/nowhere.example/oauth2/v2.0/token", data={"grant_type": "x"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error_codes"] == [90002]


def test_the_demo_constants_match_the_demo_seed(entra):
    seed = json.loads(demo.SEED_PATH.read_text())
    apps = {a["client_id"]: a for a in seed["apps"]}
    assert demo.BROKER_SECRET in apps[demo.BROKER_CLIENT_ID]["secrets"]
    assert apps[demo.BROKER_CLIENT_ID]["app_id_uri"] == demo.BROKER_APP_ID_URI
    assert demo.CLIENT_SECRET in apps[demo.CLIENT_ID]["secrets"]
    assert tuple(apps[demo.CLIENT_ID]["redirect_uris"]) == demo.CLIENT_REDIRECT_URIS
    assert demo.DAEMON_SECRET in apps[demo.DAEMON_CLIENT_ID]["secrets"]
    assert apps[demo.ACS_APP_ID]["app_id_uri"] == demo.ACS_APP_ID_URI
    assert apps[demo.WORKSPACE_CLIENT_ID]["admin_consent_only"] is True
    users = {u["oid"]: u for u in seed["users"]}
    assert users[demo.ALICE_OID]["upn"] == demo.ALICE_UPN and users[demo.BOB_OID]["upn"] == demo.BOB_UPN
    assert users[demo.CAROL_OID]["tenant"] == demo.PARTNER_TENANT_ID
    assert entra.tenant_id == demo.TENANT_ID


@pytest.mark.parametrize("method,route,body", [
    ("POST", "faults", {"status": "not-a-number"}),
    ("POST", "faults", ["not an object"]),
    ("POST", "token", {"resource": demo.BROKER_CLIENT_ID, "lifetime": "soon"}),
    ("POST", "consents", {"client_id": demo.CLIENT_ID, "resource": demo.BROKER_CLIENT_ID, "scopes": 5}),
    ("POST", "mfa", {}),
    ("DELETE", "keys/unknown-kid", None),
])
def test_bad_control_plane_input_is_a_json_4xx(entra, method, route, body):
    resp = entra.session.request(method, f"{entra.url}/_emulator/{route}", json=body, timeout=10)
    assert 400 <= resp.status_code < 500
    assert resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize("query", [
    {},
    {"client_id": demo.CLIENT_ID, "response_type": "code", "redirect_uri": "http://localhost:1/auth/callback",
     "scope": "openid", "code_challenge": "x", "code_challenge_method": "S512"},
    {"client_id": demo.CLIENT_ID, "response_type": "token", "redirect_uri": "http://localhost:1/auth/callback",
     "scope": "openid"},
])
def test_bad_authorize_requests_are_4xx_or_an_error_redirect(entra, query):
    resp = entra.http().get(f"{entra.url}/{demo.TENANT_ID}/oauth2/v2.0/authorize", params=query, timeout=10,
                            allow_redirects=False)
    if resp.status_code == 302:
        assert "error=" in resp.headers["Location"]
    else:
        assert resp.status_code == 400


def test_a_non_form_token_request_is_a_json_400(entra):
    resp = entra.http().post(f"{entra.url}/{demo.TENANT_ID}/oauth2/v2.0/token", json={"grant_type": "x"},
                             timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
