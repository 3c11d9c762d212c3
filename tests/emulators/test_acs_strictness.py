"""The ACS emulator answers like the service where the broker could be misled: an empty Teams
token is 401 InvalidAccessToken, ValidationError names its `target`, every answer carries
`MS-CV`, and api-versions are accepted per route. The real azure-communication-identity clients
(sync and aio) keep working against it (tests/emulators/test_acs_*.py)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from emulators.entra import demo
from tests.fixtures.acs_emulator import sync_client


def close(client) -> None:
    client._identity_service_client.close()


def test_an_empty_teams_token_is_401_invalid_access_token(acs):
    client = sync_client(acs)
    try:
        with pytest.raises(ClientAuthenticationError) as err:
            client.get_token_for_teams_user("", demo.CLIENT_ID, demo.ALICE_OID)
    finally:
        close(client)
    assert err.value.status_code == 401 and err.value.error.code == "InvalidAccessToken"
    [entry] = acs.requests(operation="get_token_for_teams_user")
    assert entry["status"] == 401


async def test_validation_errors_name_their_target(acs, acs_client):
    user = await acs_client("create_user")
    with pytest.raises(HttpResponseError) as err:
        await acs_client("get_token", user, ["admin"])
    assert (err.value.error.code, err.value.error.target) == ("ValidationError", "scopes")


def test_a_teams_exchange_without_user_id_names_the_field(acs, entra_emulator):
    token = entra_emulator.mint(resource=demo.ACS_APP_ID_URI, scopes=["Teams.ManageCalls", "Teams.ManageChats"])
    client = sync_client(acs)
    try:
        with pytest.raises(HttpResponseError) as err:
            client.get_token_for_teams_user(token, demo.CLIENT_ID, "")
    finally:
        close(client)
    assert (err.value.status_code, err.value.error.code, err.value.error.target) == (400, "ValidationError",
                                                                                       "UserId")


def test_every_answer_carries_an_ms_cv_correlation_vector_and_echoes_the_request_id(acs):
    seen: list[str] = []
    client = sync_client(acs)
    try:
        user = client.create_user(raw_response_hook=lambda r: seen.append(r.http_response.headers["MS-CV"]))
        with pytest.raises(HttpResponseError):
            client.get_token(user, ["admin"],
                             raw_response_hook=lambda r: seen.append(r.http_response.headers["MS-CV"]))
    finally:
        close(client)
    assert len(seen) == 2 and len(set(seen)) == 2 and all(cv.endswith(".0") for cv in seen)
    assert [e["ms_cv"] for e in acs.requests()] == seen
    client = sync_client(acs)
    try:
        echoed: list[str] = []
        client.create_user(headers={"x-ms-client-request-id": "cr-7"},
                           raw_response_hook=lambda r: echoed.append(r.http_response.headers["x-ms-client-request-id"]))
    finally:
        close(client)
    assert echoed == ["cr-7"]


def test_api_versions_are_accepted_per_route(acs, entra_emulator):
    token = entra_emulator.mint(resource=demo.ACS_APP_ID_URI, user="alice", client_id=demo.CLIENT_ID,
                                scopes=["Teams.ManageCalls", "Teams.ManageChats"])
    old = sync_client(acs, api_version="2021-03-07")            # before the Teams exchange existed
    preview = sync_client(acs, api_version="2021-10-31-preview")  # the Teams exchange's preview only
    try:
        assert old.create_user().properties["id"]
        with pytest.raises(HttpResponseError) as err:
            old.get_token_for_teams_user(token, demo.CLIENT_ID, demo.ALICE_OID)
        assert (err.value.status_code, err.value.error.code) == (400, "UnsupportedApiVersion")
        assert preview.get_token_for_teams_user(token, demo.CLIENT_ID, demo.ALICE_OID).token
        with pytest.raises(HttpResponseError) as err:
            preview.create_user()
        assert (err.value.status_code, err.value.error.code) == (400, "UnsupportedApiVersion")
    finally:
        close(old)
        close(preview)
