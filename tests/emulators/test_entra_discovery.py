"""Discovery, JWKS and PyJWT validation of emulator tokens (v1 and v2), key rotation, CLI."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys

import jwt
import requests

from emulators.entra import demo


def _get(entra, path: str) -> dict:
    resp = entra.http().get(f"{entra.url}{path}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _validate(entra, token: str, *, discovery_path: str, audience: str) -> dict:
    doc = _get(entra, discovery_path)
    ctx = ssl.create_default_context(cafile=entra.ca_bundle)
    client = jwt.PyJWKClient(doc["jwks_uri"], cache_keys=False, ssl_context=ctx)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=doc["id_token_signing_alg_values_supported"],
                      audience=audience, issuer=doc["issuer"])


def test_v2_discovery_names_https_endpoints_on_the_tenant(entra):
    doc = _get(entra, f"/{demo.TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert doc["issuer"] == f"{entra.url}/{demo.TENANT_ID}/v2.0"
    assert doc["token_endpoint"] == f"{entra.url}/{demo.TENANT_ID}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"].startswith("https://")
    assert doc["jwks_uri"] == f"{entra.url}/{demo.TENANT_ID}/discovery/v2.0/keys"
    assert set(doc["response_modes_supported"]) == {"query", "fragment", "form_post"}
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]


def test_common_and_domain_discovery_use_the_placeholder_and_the_guid(entra):
    common = _get(entra, "/common/v2.0/.well-known/openid-configuration")
    assert common["issuer"] == f"{entra.url}/{{tenantid}}/v2.0"
    assert common["token_endpoint"] == f"{entra.url}/common/oauth2/v2.0/token"
    by_domain = _get(entra, f"/{demo.TENANT_DOMAIN}/v2.0/.well-known/openid-configuration")
    assert by_domain["issuer"] == f"{entra.url}/{demo.TENANT_ID}/v2.0"
    v1 = _get(entra, f"/{demo.TENANT_ID}/.well-known/openid-configuration")
    assert v1["issuer"] == f"https://sts.windows.net/{demo.TENANT_ID}/"


def test_unknown_tenant_discovery_is_an_aadsts_error(entra):
    resp = entra.http().get(f"{entra.url}/not-a-tenant/v2.0/.well-known/openid-configuration", timeout=10)
    assert resp.status_code == 400
    assert resp.json()["error_codes"] == [90002]


def test_jwks_kid_is_the_x5t_of_the_published_certificate(entra):
    import base64
    import hashlib
    keys = _get(entra, f"/{demo.TENANT_ID}/discovery/v2.0/keys")["keys"]
    assert keys
    for k in keys:
        der = base64.b64decode(k["x5c"][0])
        x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        assert k["kid"] == k["x5t"] == x5t and len(x5t) == 27
        assert k["kty"] == "RSA" and k["use"] == "sig" and k["e"] == "AQAB"
        assert k["issuer"] == f"{entra.url}/{demo.TENANT_ID}/v2.0"   # a tenant's own document


def test_pyjwt_validates_a_v2_token_through_discovery_and_jwks(entra):
    token = entra.mint(resource=demo.BROKER_CLIENT_ID, user="alice", client_id=demo.CLIENT_ID)
    assert jwt.get_unverified_header(token)["typ"] == "JWT"
    claims = _validate(entra, token, discovery_path=f"/{demo.TENANT_ID}/v2.0/.well-known/openid-configuration",
                       audience=demo.BROKER_CLIENT_ID)
    assert claims["ver"] == "2.0" and claims["scp"] == "user_impersonation"
    assert claims["oid"] == demo.ALICE_OID and claims["tid"] == demo.TENANT_ID
    assert claims["azp"] == demo.CLIENT_ID and claims["preferred_username"] == demo.ALICE_UPN
    assert 3600 <= claims["exp"] - claims["iat"] <= 5400     # Entra's 60-90 minutes


def test_pyjwt_validates_a_v1_teams_token_through_v1_discovery(entra):
    token = entra.mint(resource=demo.ACS_APP_ID_URI, user="bob", client_id=demo.CLIENT_ID)
    header = jwt.get_unverified_header(token)
    assert header["x5t"] == header["kid"]
    claims = _validate(entra, token, discovery_path=f"/{demo.TENANT_ID}/.well-known/openid-configuration",
                       audience=demo.ACS_APP_ID_URI)
    assert claims["ver"] == "1.0" and claims["iss"] == f"https://sts.windows.net/{demo.TENANT_ID}/"
    assert claims["scp"] == "Teams.ManageCalls Teams.ManageChats"
    assert claims["appid"] == demo.CLIENT_ID and claims["upn"] == demo.BOB_UPN
    assert claims["unique_name"] == demo.BOB_UPN and "azp" not in claims


def test_rotated_key_signs_new_tokens_and_the_old_one_verifies_until_retired(entra):
    old = entra.mint(resource=demo.BROKER_CLIENT_ID, user="alice")
    old_kid = jwt.get_unverified_header(old)["kid"]
    rotated = entra.rotate_key()
    assert rotated["previous_kid"] == old_kid
    new = entra.mint(resource=demo.BROKER_CLIENT_ID, user="alice")
    assert jwt.get_unverified_header(new)["kid"] == rotated["kid"] != old_kid
    kids = {k["kid"] for k in _get(entra, f"/{demo.TENANT_ID}/discovery/v2.0/keys")["keys"]}
    assert {old_kid, rotated["kid"]} <= kids
    disc = f"/{demo.TENANT_ID}/v2.0/.well-known/openid-configuration"
    assert _validate(entra, old, discovery_path=disc, audience=demo.BROKER_CLIENT_ID)["oid"] == demo.ALICE_OID
    entra.retire_key(old_kid)
    kids = {k["kid"] for k in _get(entra, f"/{demo.TENANT_ID}/discovery/v2.0/keys")["keys"]}
    assert old_kid not in kids and rotated["kid"] in kids
    try:
        _validate(entra, old, discovery_path=disc, audience=demo.BROKER_CLIENT_ID)
        raise AssertionError("a token signed by a retired key still verified")
    except jwt.PyJWKClientError:
        pass


def test_python_m_emulators_entra_prints_server_started_and_serves_discovery(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "emulators", "entra", "--port", "0", "--pki", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "server.started"
        assert line["tenant_id"] == demo.TENANT_ID
        assert line["url"] == f"https://127.0.0.1:{line['port']}" and line["port"] > 0
        assert line["ca_bundle"] == str(tmp_path / "ca.pem")
        s = requests.Session()
        s.trust_env = False
        resp = s.get(f"{line['url']}/{line['tenant_id']}/v2.0/.well-known/openid-configuration",
                     verify=line["ca_bundle"], timeout=10)
        assert resp.json()["issuer"] == f"{line['url']}/{demo.TENANT_ID}/v2.0"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        proc.stdout.close()
