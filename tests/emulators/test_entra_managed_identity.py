"""azure-identity's aio ManagedIdentityCredential, unchanged, against the Entra emulator's
App Service-style managed-identity endpoint (`GET /msi/token`, IDENTITY_ENDPOINT + IDENTITY_HEADER)."""

from __future__ import annotations

import json
import ssl

import aiohttp
import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import ManagedIdentityCredential

from emulators.entra import demo
from tests.fixtures.entra_emulator import point_managed_identity_at

ACS_SCOPE = "https://communication.azure.com//.default"
QUERY = {"api-version": "2019-08-01", "resource": "https://communication.azure.com"}


@pytest.fixture(name="msi_env")
def _msi_env(entra, monkeypatch):
    point_managed_identity_at(entra, monkeypatch)
    return entra


def verified(entra, token: str, audience: str) -> dict:
    """The claims, after checking the signature against the emulator's published JWKS."""
    jwks = entra.session.get(f"{entra.url}/{demo.TENANT_ID}/discovery/keys", timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    [key] = [k for k in jwks["keys"] if k["kid"] == kid]
    return jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=audience)


def msi_get(entra, headers: dict | None = None, **query) -> requests.Response:
    return entra.session.get(f"{entra.url}{demo.MANAGED_IDENTITY_PATH}", params={**QUERY, **query},
                             headers=headers if headers is not None else
                             {"X-IDENTITY-HEADER": demo.MANAGED_IDENTITY_HEADER}, timeout=10)


async def test_a_system_assigned_identity_gets_an_app_only_v1_token_for_acs(msi_env):
    entra = msi_env
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=entra.ca_bundle))) as session:
        transport = AioHttpTransport(session=session, session_owner=False)
        async with ManagedIdentityCredential(transport=transport, retry_total=0) as credential:
            token = await credential.get_token(ACS_SCOPE)
            again = await credential.get_token(ACS_SCOPE)
    claims = verified(entra, token.token, "https://communication.azure.com/")
    assert claims["appid"] == demo.MANAGED_IDENTITY_CLIENT_ID and claims["idtyp"] == "app"
    assert claims["ver"] == "1.0" and claims["iss"] == f"https://sts.windows.net/{demo.TENANT_ID}/"
    assert claims["oid"] == claims["sub"] and claims["roles"] == [] and "scp" not in claims
    assert claims["appidacr"] == "2" and "Microsoft.Web/sites" in claims["xms_mirid"]
    assert token.expires_on == claims["exp"] and again.token == token.token
    [call] = entra.requests(path="/msi/token")   # the second token came from the credential's cache
    assert call["method"] == "GET" and call["status"] == 200
    assert call["query"] == {"api-version": "2019-08-01", "resource": "https://communication.azure.com/"}
    assert demo.MANAGED_IDENTITY_HEADER not in str(entra.requests())


async def test_a_user_assigned_identity_is_named_by_its_client_id_and_carries_its_roles(msi_env):
    entra = msi_env
    credential = ManagedIdentityCredential(client_id=demo.USER_ASSIGNED_IDENTITY_CLIENT_ID,
                                           connection_verify=entra.ca_bundle, retry_total=0)
    async with credential:
        token = await credential.get_token(f"{demo.BROKER_APP_ID_URI}/.default")
    claims = verified(entra, token.token, demo.BROKER_APP_ID_URI)
    assert claims["appid"] == demo.USER_ASSIGNED_IDENTITY_CLIENT_ID
    assert claims["roles"] == [demo.BROKER_APP_ROLE]
    assert "userAssignedIdentities/broker-user-assigned-identity" in claims["xms_mirid"]
    [call] = entra.requests(path="/msi/token")
    assert call["query"]["client_id"] == demo.USER_ASSIGNED_IDENTITY_CLIENT_ID


def test_the_demo_constants_match_the_seed():
    seed = json.loads(demo.SEED_PATH.read_text())
    kinds = {a["client_id"]: a.get("managed_identity") for a in seed["apps"]}
    assert kinds[demo.MANAGED_IDENTITY_CLIENT_ID] == "system"
    assert kinds[demo.USER_ASSIGNED_IDENTITY_CLIENT_ID] == "user"
    assert seed["managed_identity_header"] == demo.MANAGED_IDENTITY_HEADER


def test_the_answer_has_app_services_fields_and_the_principal_id_selects_too(entra):
    resp = msi_get(entra)
    body = resp.json()
    assert resp.status_code == 200 and set(body) == {"access_token", "expires_on", "resource", "token_type",
                                                     "client_id"}
    assert body["expires_on"].isdigit() and body["token_type"] == "Bearer"
    assert (body["resource"], body["client_id"]) == (QUERY["resource"], demo.MANAGED_IDENTITY_CLIENT_ID)
    user_oid = jwt.decode(msi_get(entra, client_id=demo.USER_ASSIGNED_IDENTITY_CLIENT_ID).json()["access_token"],
                          options={"verify_signature": False})["oid"]
    by_principal = msi_get(entra, principal_id=user_oid).json()
    assert by_principal["client_id"] == demo.USER_ASSIGNED_IDENTITY_CLIENT_ID


@pytest.mark.parametrize("headers,query,status", [
    ({}, {}, 400),
    ({"X-IDENTITY-HEADER": "not-the-header"}, {}, 401),
    (None, {"api-version": "2017-09-01"}, 400),
    (None, {"resource": ""}, 400),
    (None, {"resource": "https://nowhere.example"}, 400),
    (None, {"client_id": "00000000-0000-0000-0000-000000000000"}, 400),
    (None, {"client_id": demo.BROKER_CLIENT_ID}, 400),   # an app registration is no managed identity
    (None, {"client_id": demo.USER_ASSIGNED_IDENTITY_CLIENT_ID, "principal_id": "x"}, 400),
])
def test_bad_requests_get_app_services_json_errors(entra, headers, query, status):
    resp = msi_get(entra, headers, **query)
    body = resp.json()
    assert resp.status_code == status and body["statusCode"] == status and body["message"]
    assert "access_token" not in body
    assert entra.requests(path="/msi/token")[-1]["status"] == status


async def test_a_wrong_identity_header_is_refused_to_the_credential(msi_env, monkeypatch):
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
    async with ManagedIdentityCredential(connection_verify=msi_env.ca_bundle, retry_total=0) as credential:
        with pytest.raises(ClientAuthenticationError) as caught:
            await credential.get_token(ACS_SCOPE)
    assert caught.value.status_code == 401


async def test_faults_are_injected_on_the_managed_identity_route(msi_env):
    msi_env.inject_fault(route="/msi/token", status=503, retry_after=2)
    async with ManagedIdentityCredential(connection_verify=msi_env.ca_bundle, retry_total=0) as credential:
        with pytest.raises(ClientAuthenticationError) as caught:
            await credential.get_token(ACS_SCOPE)
        assert caught.value.status_code == 503
        token = await credential.get_token(ACS_SCOPE)   # one fault only
    assert jwt.decode(token.token, options={"verify_signature": False})["aud"] == "https://communication.azure.com/"
    assert [c["fault"] for c in msi_env.requests(path="/msi/token")] == [True, False]

