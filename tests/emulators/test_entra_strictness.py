"""The Entra emulator is as strict as login.microsoftonline.com where the broker could be misled:
key documents per tenant, service principals per tenant, OBO in the URL's tenant, app-specific
keys, a stable kid, varying lifetimes, request-id headers. The real msal and azure-identity
clients keep working (tests/emulators/test_entra_*.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import jwt
import msal
import requests

from emulators.entra import demo

TEMPLATE = "{url}/{{tenantid}}/v2.0"


def get(entra, path: str, **headers: str) -> requests.Response:
    return entra.http().get(f"{entra.url}{path}", headers=headers, timeout=10)


def issuers(entra, path: str) -> set:
    resp = get(entra, path)
    assert resp.status_code == 200, resp.text
    return {k.get("issuer") for k in resp.json()["keys"]}


def test_a_tenants_v2_key_document_names_its_concrete_issuer(entra):
    for tid in (demo.TENANT_ID, demo.PARTNER_TENANT_ID):
        assert issuers(entra, f"/{tid}/discovery/v2.0/keys") == {f"{entra.url}/{tid}/v2.0"}


def test_only_the_tenant_independent_documents_carry_the_template(entra):
    for seg in ("organizations", "common"):
        assert issuers(entra, f"/{seg}/discovery/v2.0/keys") == {TEMPLATE.format(url=entra.url)}
        doc = get(entra, f"/{seg}/v2.0/.well-known/openid-configuration").json()
        assert doc["issuer"] == TEMPLATE.format(url=entra.url)
        assert doc["jwks_uri"] == f"{entra.url}/{seg}/discovery/v2.0/keys"


def test_v1_key_documents_carry_no_issuer(entra):
    assert issuers(entra, f"/{demo.TENANT_ID}/discovery/keys") == {None}
    assert issuers(entra, "/common/discovery/keys") == {None}


def test_an_unknown_tenants_key_document_is_aadsts90002(entra):
    resp = get(entra, "/00000000-0000-0000-0000-00000000dead/discovery/v2.0/keys")
    assert resp.status_code == 400 and resp.json()["error_codes"] == [90002]


def test_apps_with_claims_mapping_publish_their_own_key_only_at_appid(entra):
    kid = entra.control("POST", f"apps/{demo.BROKER_CLIENT_ID}/claims-mapping", {"enabled": True})["kid"]
    own = get(entra, f"/{demo.TENANT_ID}/discovery/v2.0/keys?appid={demo.BROKER_CLIENT_ID}").json()["keys"]
    assert [k["kid"] for k in own] == [kid]
    assert own[0]["issuer"] == f"{entra.url}/{demo.TENANT_ID}/v2.0"
    assert kid not in {k["kid"] for k in get(entra, f"/{demo.TENANT_ID}/discovery/v2.0/keys").json()["keys"]}
    other = get(entra, f"/{demo.TENANT_ID}/discovery/v2.0/keys?appid={demo.CLIENT_ID}").json()["keys"]
    assert kid not in {k["kid"] for k in other} and other      # no claims mapping: the global keys
    token = entra.mint(resource=demo.BROKER_CLIENT_ID, user="alice", client_id=demo.CLIENT_ID)
    assert jwt.get_unverified_header(token)["kid"] == kid
    teams = entra.mint(resource=demo.ACS_APP_ID_URI, user="alice", client_id=demo.CLIENT_ID)
    assert jwt.get_unverified_header(teams)["kid"] != kid      # other audiences: global keys


def daemon(entra, tenant: str) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(demo.DAEMON_CLIENT_ID, client_credential=demo.DAEMON_SECRET,
                                              authority=entra.authority(tenant), instance_discovery=False,
                                              http_client=entra.http())


def test_an_app_without_a_service_principal_in_a_tenant_gets_700016(entra):
    scope = [f"{demo.BROKER_APP_ID_URI}/.default"]
    assert "access_token" in daemon(entra, demo.TENANT_ID).acquire_token_for_client(scope)
    refused = daemon(entra, demo.PARTNER_TENANT_ID).acquire_token_for_client(scope)
    assert refused["error"] == "unauthorized_client" and refused["error_codes"] == [700016]
    assert demo.PARTNER_TENANT_ID in refused["error_description"]


def broker_app(entra, tenant: str) -> msal.ConfidentialClientApplication:
    """A fresh msal app per call: msal replays an HTTP 400 answer from memory for 60 s."""
    return msal.ConfidentialClientApplication(
        demo.BROKER_CLIENT_ID, client_credential=demo.BROKER_SECRET, authority=entra.authority(tenant),
        instance_discovery=False, http_client=entra.http())


def test_admin_consent_provisions_the_service_principals(entra):
    carol = entra.mint(resource=demo.BROKER_CLIENT_ID, user="carol", tenant=demo.PARTNER_TENANT_ID,
                       client_id=demo.CLIENT_ID)
    entra.control("DELETE", "service-principals", {"tenant": demo.PARTNER_TENANT_ID,
                                                   "client_id": demo.BROKER_CLIENT_ID})
    obo = lambda: broker_app(entra, demo.PARTNER_TENANT_ID).acquire_token_on_behalf_of(  # noqa: E731
        carol, [demo.WORKSPACE_SCOPE])
    assert obo()["error_codes"] == [700016]
    entra.control("POST", "service-principals", {"tenant": demo.PARTNER_TENANT_ID,
                                                 "client_id": demo.BROKER_CLIENT_ID})
    assert obo()["error_codes"] == [500011]
    entra.add_consent(tenant=demo.PARTNER_TENANT_ID, client_id=demo.BROKER_CLIENT_ID,
                      resource=demo.WORKSPACE_CLIENT_ID)
    sps = {(s["tenant"], s["client_id"]) for s in entra.state()["service_principals"]}
    assert (demo.PARTNER_TENANT_ID, demo.WORKSPACE_CLIENT_ID) in sps
    result = obo()
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["tid"] == demo.PARTNER_TENANT_ID


def test_obo_issues_in_the_urls_tenant_for_a_guest(entra):
    """Carol (Fabrikam) is a guest in Contoso: OBO at Contoso's URL issues a Contoso token."""
    entra.add_consent(tenant=demo.TENANT_ID, client_id=demo.BROKER_CLIENT_ID, resource=demo.WORKSPACE_CLIENT_ID)
    broker = broker_app(entra, demo.TENANT_ID)
    carol = entra.mint(resource=demo.BROKER_CLIENT_ID, user="carol", tenant=demo.PARTNER_TENANT_ID,
                       client_id=demo.CLIENT_ID)
    result = broker.acquire_token_on_behalf_of(carol, [demo.WORKSPACE_SCOPE])
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["tid"] == demo.TENANT_ID
    dave = entra.mint(resource=demo.BROKER_CLIENT_ID, user="dave", tenant=demo.OTHER_TENANT_ID,
                      client_id=demo.CLIENT_ID)
    assert broker.acquire_token_on_behalf_of(dave, [demo.WORKSPACE_SCOPE])["error_codes"] == [50020]


def lifetimes(entra, n: int = 12) -> list[int]:
    out = []
    for _ in range(n):
        claims = jwt.decode(entra.mint(resource=demo.BROKER_CLIENT_ID), options={"verify_signature": False})
        out.append(claims["exp"] - claims["iat"])
    return out


def test_access_token_lifetimes_vary_between_60_and_90_minutes_and_are_seedable(entra):
    entra.control("POST", "config", {"lifetime_seed": 42})
    first = lifetimes(entra)
    assert all(3600 <= s <= 5400 for s in first) and len(set(first)) > 1
    entra.control("POST", "config", {"lifetime_seed": 42})
    assert lifetimes(entra) == first
    entra.control("POST", "config", {"access_token_lifetime": 600})
    assert set(lifetimes(entra, 3)) == {600}


def test_answers_carry_request_ids_like_entra(entra):
    ok = get(entra, f"/{demo.TENANT_ID}/v2.0/.well-known/openid-configuration", **{"client-request-id": "cr-1"})
    assert ok.headers["client-request-id"] == "cr-1" and ok.headers["x-ms-request-id"]
    refused = entra.http().post(f"{entra.url}/{demo.TENANT_ID}/oauth2/v2.0/token", data={"grant_type": "x"},
                                timeout=10)
    assert refused.status_code == 400 and refused.headers["x-ms-request-id"] != ok.headers["x-ms-request-id"]
    assert "client-request-id" not in refused.headers


def start(pki_dir) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-m", "emulators", "entra", "--port", "0", "--pki", str(pki_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc, json.loads(proc.stdout.readline())


def signing_kids(line: dict) -> list[str]:
    s = requests.Session()
    s.trust_env = False
    keys = s.get(f"{line['url']}/{line['tenant_id']}/discovery/v2.0/keys", verify=line["ca_bundle"], timeout=10)
    return [k["kid"] for k in keys.json()["keys"]]


def test_the_kid_is_stable_across_restarts_with_the_same_pki(tmp_path):
    kids = []
    for _ in range(2):
        proc, line = start(tmp_path)
        try:
            kids.append(signing_kids(line))
        finally:
            proc.terminate()
            assert proc.wait(timeout=15) == 0
            proc.stdout.close()
    assert kids[0] == kids[1] and len(kids[0]) == 1
