"""On-Behalf-Of with real msal and azure-identity (aio): success, caching, consent, MFA, bad assertions."""

from __future__ import annotations

import json
import re

import jwt
import msal
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import OnBehalfOfCredential

from emulators.entra import demo


def _broker(entra, tenant: str | None = None) -> msal.ConfidentialClientApplication:
    """A fresh msal app per call: msal replays HTTP 400 answers from memory for 60 s."""
    return msal.ConfidentialClientApplication(demo.BROKER_CLIENT_ID, client_credential=demo.BROKER_SECRET,
                                              authority=entra.authority(tenant), instance_discovery=False,
                                              http_client=entra.http())


def _user_token(entra, user: str = "alice", **kw) -> str:
    return entra.mint(resource=demo.BROKER_CLIENT_ID, user=user, client_id=demo.CLIENT_ID, **kw)


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_msal_obo_then_acquire_token_silent_makes_no_new_request(entra):
    app = _broker(entra)
    result = app.acquire_token_on_behalf_of(_user_token(entra), [demo.WORKSPACE_SCOPE])
    assert "access_token" in result, result
    claims = _claims(result["access_token"])
    assert claims["aud"] == demo.WORKSPACE_CLIENT_ID and claims["scp"] == "user_impersonation"
    assert claims["oid"] == demo.ALICE_OID and claims["tid"] == demo.TENANT_ID
    assert claims["azp"] == demo.BROKER_CLIENT_ID and claims["ver"] == "2.0"
    assert result["scope"] == demo.WORKSPACE_SCOPE and "refresh_token" in result
    sent = entra.requests(requested_token_use="on_behalf_of")
    assert len(sent) == 1 and sent[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    before = len(entra.requests())
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{demo.ALICE_OID}.{demo.TENANT_ID}"
    silent = app.acquire_token_silent([demo.WORKSPACE_SCOPE], account=account)
    assert silent["access_token"] == result["access_token"]
    assert len(entra.requests()) == before


def test_obo_for_teams_scopes_gives_a_v1_token_for_the_acs_resource(entra):
    result = _broker(entra).acquire_token_on_behalf_of(_user_token(entra, "bob"), list(demo.ACS_TEAMS_SCOPES))
    claims = _claims(result["access_token"])
    assert claims["ver"] == "1.0" and claims["aud"] == demo.ACS_APP_ID_URI
    assert claims["iss"] == f"https://sts.windows.net/{demo.TENANT_ID}/"
    assert claims["appid"] == demo.BROKER_CLIENT_ID and claims["upn"] == demo.BOB_UPN
    assert set(claims["scp"].split()) == {"Teams.ManageCalls", "Teams.ManageChats"}


def test_obo_issues_in_the_tenant_of_the_url(entra):
    assertion = _user_token(entra, "carol", tenant=demo.PARTNER_TENANT_ID)
    entra.add_consent(tenant=demo.PARTNER_TENANT_ID, user=demo.CAROL_OID, client_id=demo.BROKER_CLIENT_ID,
                      resource=demo.WORKSPACE_CLIENT_ID)
    result = _broker(entra, demo.PARTNER_TENANT_ID).acquire_token_on_behalf_of(assertion, [demo.WORKSPACE_SCOPE])
    assert _claims(result["access_token"])["tid"] == demo.PARTNER_TENANT_ID, result


def test_bob_has_no_consent_for_the_workspace_and_gets_consent_required(entra):
    result = _broker(entra).acquire_token_on_behalf_of(_user_token(entra, "bob"), [demo.WORKSPACE_SCOPE])
    assert result["error"] == "invalid_grant" and result["error_codes"] == [65001]
    assert result["suberror"] == "consent_required"
    assert result["error_description"].startswith("AADSTS65001:")
    assert result["error_uri"].endswith("code=65001")


def test_admin_consent_through_the_control_plane_fixes_bob(entra):
    entra.add_consent(client_id=demo.BROKER_CLIENT_ID, resource=demo.WORKSPACE_CLIENT_ID,
                      scopes=["user_impersonation"])
    result = _broker(entra).acquire_token_on_behalf_of(_user_token(entra, "bob"), [demo.WORKSPACE_SCOPE])
    assert _claims(result["access_token"])["oid"] == demo.BOB_OID, result


def test_mfa_flag_gives_interaction_required_with_a_claims_challenge(entra):
    entra.set_mfa(resource=demo.WORKSPACE_CLIENT_ID)
    result = _broker(entra).acquire_token_on_behalf_of(_user_token(entra), [demo.WORKSPACE_SCOPE])
    assert result["error"] == "interaction_required" and result["error_codes"] == [50079]
    challenge = json.loads(result["claims"])
    assert challenge["access_token"]["polids"]["essential"] is True
    mfa_done = _broker(entra).acquire_token_on_behalf_of(_user_token(entra, claims={"amr": ["pwd", "mfa"]}),
                                                         [demo.WORKSPACE_SCOPE])
    assert "access_token" in mfa_done, mfa_done


def test_an_expired_assertion_is_aadsts500133(entra):
    result = _broker(entra).acquire_token_on_behalf_of(_user_token(entra, lifetime=-600), [demo.WORKSPACE_SCOPE])
    assert result["error"] == "invalid_grant" and result["error_codes"] == [500133]


def test_an_assertion_for_another_audience_is_aadsts50013(entra):
    other = entra.mint(resource=demo.WORKSPACE_CLIENT_ID, user="alice", client_id=demo.CLIENT_ID)
    result = _broker(entra).acquire_token_on_behalf_of(other, [demo.WORKSPACE_SCOPE])
    assert result["error"] == "invalid_grant" and result["error_codes"] == [50013]


def test_an_app_only_assertion_is_refused(entra):
    app_only = entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=demo.DAEMON_CLIENT_ID, app_only=True)
    result = _broker(entra).acquire_token_on_behalf_of(app_only, [demo.WORKSPACE_SCOPE])
    assert result["error_codes"] == [50013]


def test_a_forged_assertion_is_refused(entra):
    good = _user_token(entra)
    header, payload, _sig = good.split(".")
    forged = f"{header}.{payload}.{'A' * 342}"
    result = _broker(entra).acquire_token_on_behalf_of(forged, [demo.WORKSPACE_SCOPE])
    assert result["error"] == "invalid_grant" and result["error_codes"] == [50013]


async def test_aio_on_behalf_of_credential_caches_per_assertion(entra):
    assertion = _user_token(entra)
    async with OnBehalfOfCredential(demo.TENANT_ID, demo.BROKER_CLIENT_ID, client_secret=demo.BROKER_SECRET,
                                    user_assertion=assertion, authority=entra.url,
                                    connection_verify=entra.ca_bundle, retry_total=0) as cred:
        first = await cred.get_token(demo.WORKSPACE_SCOPE)
        second = await cred.get_token(demo.WORKSPACE_SCOPE)
    assert first.token == second.token
    claims = _claims(first.token)
    assert claims["aud"] == demo.WORKSPACE_CLIENT_ID and claims["oid"] == demo.ALICE_OID
    assert len(entra.requests(requested_token_use="on_behalf_of")) == 1


async def test_aio_on_behalf_of_credential_raises_on_consent_required(entra):
    async with OnBehalfOfCredential(demo.TENANT_ID, demo.BROKER_CLIENT_ID, client_secret=demo.BROKER_SECRET,
                                    user_assertion=_user_token(entra, "bob"), authority=entra.url,
                                    connection_verify=entra.ca_bundle, retry_total=0) as cred:
        with pytest.raises(ClientAuthenticationError) as info:
            await cred.get_token(demo.WORKSPACE_SCOPE)
    assert "AADSTS65001" in str(info.value)
    assert info.value.response.status_code == 400


def test_sync_azure_identity_on_behalf_of_credential_caches_through_msal(entra):
    from azure.identity import OnBehalfOfCredential as SyncOnBehalfOfCredential

    cred = SyncOnBehalfOfCredential(demo.TENANT_ID, demo.BROKER_CLIENT_ID, client_secret=demo.BROKER_SECRET,
                                    user_assertion=_user_token(entra), authority=entra.url,
                                    disable_instance_discovery=True, connection_verify=entra.ca_bundle,
                                    retry_total=0)
    first = cred.get_token(demo.WORKSPACE_SCOPE)
    second = cred.get_token(demo.WORKSPACE_SCOPE)
    assert first.token == second.token and _claims(first.token)["oid"] == demo.ALICE_OID
    assert len(entra.requests(requested_token_use="on_behalf_of")) == 1


def test_an_expired_obo_access_token_is_renewed_with_the_obo_refresh_token(entra):
    app = _broker(entra)
    first = app.acquire_token_on_behalf_of(_user_token(entra), [demo.WORKSPACE_SCOPE])
    for at in app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN):
        at["expires_on"] = "0"
    again = app.acquire_token_silent([demo.WORKSPACE_SCOPE], account=app.get_accounts()[0])
    assert again and again["access_token"] != first["access_token"]
    refreshes = entra.requests(grant_type="refresh_token")
    assert len(refreshes) == 1 and refreshes[0]["client_id"] == demo.BROKER_CLIENT_ID


def test_a_per_user_mfa_flag_is_answered_by_a_step_up_sign_in_with_claims(entra):
    entra.set_mfa(user="alice")
    challenge = _broker(entra).acquire_token_on_behalf_of(_user_token(entra), [demo.WORKSPACE_SCOPE])
    assert challenge["error"] == "interaction_required"
    # the client signs the user in again, passing the claims challenge on
    client = msal.ConfidentialClientApplication(demo.CLIENT_ID, client_credential=demo.CLIENT_SECRET,
                                                authority=entra.authority(), instance_discovery=False,
                                                http_client=entra.http())
    flow = client.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri="http://localhost:5000/auth/callback",
                                          login_hint="alice", claims_challenge=challenge["claims"],
                                          response_mode="form_post")
    page = entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    stepped_up = client.acquire_token_by_auth_code_flow(flow, fields)
    assert "mfa" in _claims(stepped_up["access_token"])["amr"]
    bob = _broker(entra).acquire_token_on_behalf_of(_user_token(entra, "bob"), list(demo.ACS_TEAMS_SCOPES))
    assert "access_token" in bob, bob   # the flag was Alice's only
    result = _broker(entra).acquire_token_on_behalf_of(stepped_up["access_token"], [demo.WORKSPACE_SCOPE])
    assert "mfa" in _claims(result["access_token"])["amr"], result


def test_the_v1_token_endpoint_takes_a_resource_parameter(entra):
    resp = entra.http().post(f"{entra.url}/{demo.TENANT_ID}/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": demo.DAEMON_CLIENT_ID, "client_secret": demo.DAEMON_SECRET,
        "resource": demo.BROKER_APP_ID_URI})
    assert resp.status_code == 200, resp.text
    assert _claims(resp.json()["access_token"])["roles"] == [demo.BROKER_APP_ROLE]
