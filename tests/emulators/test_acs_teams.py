"""The Teams user exchange and Entra bearer auth of the ACS emulator, with tokens from the Entra emulator.

The ACS emulator verifies these tokens over HTTPS against the Entra emulator's JWKS, as ACS would.
"""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from tests.fixtures.acs_emulator import aio_client, start_acs, sync_client

TEAMS = "https://auth.msft.communication.azure.com"
TEAMS_SCOPES = ["Teams.ManageCalls", "Teams.ManageChats"]
ACS_RESOURCE = "https://communication.azure.com"


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _teams_token(entra, scopes=TEAMS_SCOPES, resource=TEAMS) -> tuple[str, dict]:
    token = entra.mint(resource=resource, scopes=scopes)
    return token, _claims(token)


def _app(claims: dict) -> str:
    return claims.get("azp") or claims["appid"]


async def test_a_teams_token_is_exchanged_and_expires_with_the_entra_token(acs, acs_client, entra_emulator):
    token, claims = _teams_token(entra_emulator)
    result = await acs_client("get_token_for_teams_user", token, _app(claims), claims["oid"])
    assert dt.datetime.fromisoformat(result.expires_on) == dt.datetime.fromtimestamp(claims["exp"], dt.UTC)
    check = acs.check_token(result.token)
    assert check["valid"] and check["skypeid"] == f"orgid:{claims['oid']}" and check["exp"] == claims["exp"]
    [entry] = acs.requests(operation="get_token_for_teams_user")
    assert (entry["status"], entry["auth"], entry["oid"], entry["app_id"]) == (200, "hmac", claims["oid"],
                                                                                  _app(claims))
    assert token not in str(acs.requests())


async def test_an_app_id_other_than_the_tokens_app_is_a_validation_error_on_app_id(acs, acs_client, entra_emulator):
    token, claims = _teams_token(entra_emulator)
    with pytest.raises(HttpResponseError) as err:
        await acs_client("get_token_for_teams_user", token, "00000000-0000-0000-0000-000000000001", claims["oid"])
    assert (err.value.status_code, err.value.error.code, err.value.error.target) == (400, "ValidationError", "appId")


async def test_a_user_id_other_than_the_tokens_oid_is_a_validation_error_on_user_id(acs, acs_client, entra_emulator):
    token, claims = _teams_token(entra_emulator)
    with pytest.raises(HttpResponseError) as err:
        await acs_client("get_token_for_teams_user", token, _app(claims), "00000000-0000-0000-0000-000000000002")
    assert (err.value.status_code, err.value.error.code, err.value.error.target) == (400, "ValidationError", "userId")


@pytest.mark.parametrize("scopes", [["Teams.ManageCalls"], ["Teams.ManageChats"]])
async def test_a_token_without_both_teams_scopes_is_an_invalid_access_token(acs, acs_client, entra_emulator, scopes):
    token, claims = _teams_token(entra_emulator, scopes=scopes)
    with pytest.raises(HttpResponseError) as err:
        await acs_client("get_token_for_teams_user", token, _app(claims), claims["oid"])
    assert err.value.status_code == 401 and err.value.error.code == "InvalidAccessToken"


async def test_a_token_for_another_audience_is_refused_with_401(acs, acs_client, entra_emulator):
    token, claims = _teams_token(entra_emulator, scopes=["User.Read"], resource="https://graph.microsoft.com")
    with pytest.raises(ClientAuthenticationError) as err:
        await acs_client("get_token_for_teams_user", token, _app(claims), claims["oid"])
    assert err.value.error.code == "InvalidAccessToken"


async def test_a_token_with_a_forged_signature_is_refused_with_401(acs, acs_client, entra_emulator):
    token, claims = _teams_token(entra_emulator)
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-6]}{'AAAAAA' if not sig.endswith('AAAAAA') else 'BBBBBB'}"
    with pytest.raises(ClientAuthenticationError):
        await acs_client("get_token_for_teams_user", forged, _app(claims), claims["oid"])
    with pytest.raises(ClientAuthenticationError):
        await acs_client("get_token_for_teams_user", "not-a-jwt", _app(claims), claims["oid"])


def test_an_expired_teams_token_is_refused(pki, entra_emulator):
    token, claims = _teams_token(entra_emulator)
    late = start_acs(pki, entra_url=entra_emulator.url, clock=lambda: time.time() + 2 * 86400,
                     date_window=3 * 86400)
    try:
        with pytest.raises(ClientAuthenticationError) as err:
            sync_client(late).get_token_for_teams_user(token, _app(claims), claims["oid"])
        assert "expired" in err.value.error.message
    finally:
        late.stop()


class _Credential:
    """A TokenCredential handing out one Entra token (what azure-identity would fetch)."""

    def __init__(self, token: str) -> None:
        self.token, self.scopes = token, ()

    def get_token(self, *scopes, **_kw) -> AccessToken:
        self.scopes = scopes
        return AccessToken(self.token, int(time.time()) + 3600)


class _AsyncCredential(_Credential):
    async def get_token(self, *scopes, **_kw) -> AccessToken:  # type: ignore[override]
        return super().get_token(*scopes)

    async def close(self) -> None:
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        return None


async def test_an_entra_bearer_token_for_acs_authenticates_both_clients(acs, acs_http, entra_emulator):
    token = entra_emulator.mint(resource=ACS_RESOURCE, scopes=[".default"])
    sync_cred, aio_cred = _Credential(token), _AsyncCredential(token)
    assert sync_client(acs, sync_cred).create_user().raw_id.startswith("8:acs:")
    async with aio_client(acs, acs_http, aio_cred) as client:
        user, tok = await client.create_user_and_token(["chat"])
    assert acs.check_token(tok.token)["valid"]
    assert sync_cred.scopes == ("https://communication.azure.com//.default",)
    assert [e["auth"] for e in acs.requests()] == ["bearer", "bearer"]


async def test_a_bearer_token_for_another_audience_is_denied(acs, entra_emulator):
    token = entra_emulator.mint(resource="https://graph.microsoft.com", scopes=["User.Read"])
    with pytest.raises(ClientAuthenticationError) as err:
        sync_client(acs, _Credential(token)).create_user()
    assert err.value.error.code == "Denied"
    assert acs.requests()[0]["status"] == 401


async def test_a_teams_token_for_the_first_party_app_id_audience_is_accepted(acs, acs_client, entra_emulator):
    token, claims = _teams_token(entra_emulator, resource="1fd5118e-2576-4263-8130-9503064c837a")
    assert claims["aud"] == "1fd5118e-2576-4263-8130-9503064c837a"
    result = await acs_client("get_token_for_teams_user", token, _app(claims), claims["oid"])
    assert acs.check_token(result.token)["valid"]


def test_a_token_signed_with_a_freshly_rotated_entra_key_is_accepted(acs, entra_emulator):
    client = sync_client(acs)
    token, claims = _teams_token(entra_emulator)
    client.get_token_for_teams_user(token, _app(claims), claims["oid"])  # the JWKS is now cached
    entra_emulator.rotate_key(activate=True)
    token, claims = _teams_token(entra_emulator)
    assert client.get_token_for_teams_user(token, _app(claims), claims["oid"]).token
    assert [e["status"] for e in acs.requests()] == [200, 200]
