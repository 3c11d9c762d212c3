"""Fault injection, request log and reset of the ACS emulator's control plane."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from tests.fixtures.acs_emulator import sync_client


async def test_an_injected_503_reaches_the_client_with_its_code_and_retry_after(acs, acs_client):
    acs.inject_fault("create_user", status=503, code="ServiceUnavailable", retry_after=7)
    with pytest.raises(HttpResponseError) as err:
        await acs_client("create_user")
    assert err.value.status_code == 503
    assert err.value.error.code == "ServiceUnavailable"
    assert err.value.response.headers["Retry-After"] == "7"
    assert (await acs_client("create_user")).raw_id.startswith("8:acs:")  # one call only
    assert [(e["status"], e["fault"]) for e in acs.requests(operation="create_user")] == [(503, True), (201, False)]


async def test_a_fault_applies_to_the_next_n_matching_calls_only(acs, acs_client):
    user = await acs_client("create_user")
    acs.inject_fault("get_token", status=500, code="InternalError", count=2)
    for _ in range(2):
        with pytest.raises(HttpResponseError) as err:
            await acs_client("get_token", user, ["chat"])
        assert err.value.error.code == "InternalError"
    await acs_client("revoke_tokens", user)  # another operation is untouched
    assert (await acs_client("get_token", user, ["chat"])).token
    assert [e["status"] for e in acs.requests(operation="get_token")] == [500, 500, 200]


async def test_a_path_pattern_fault_matches_by_path(acs, acs_client):
    user = await acs_client("create_user")
    acs.inject_fault(path=r"/:revokeAccessTokens$", status=429, code="TooManyRequests")
    with pytest.raises(HttpResponseError) as err:
        await acs_client("revoke_tokens", user)
    assert (err.value.status_code, err.value.error.code) == (429, "TooManyRequests")


def test_a_delay_fault_outlasts_a_short_client_read_timeout(acs):
    acs.inject_fault("create_user", delay=3)
    client = sync_client(acs, read_timeout=0.5)
    with pytest.raises(ServiceResponseError):
        client.create_user()
    [entry] = acs.requests(operation="create_user")
    assert entry["fault"] is True and entry["delay"] == 3


async def test_a_delay_only_fault_still_completes_the_call(acs, acs_client):
    acs.inject_fault("create_user_and_token", delay=0.2)
    user, token = await acs_client("create_user_and_token", ["voip"], token_expires_in=dt.timedelta(hours=1))
    assert token.token and user.raw_id
    [entry] = acs.requests(operation="create_user_and_token")
    assert (entry["status"], entry["fault"], entry["delay"]) == (201, True, 0.2)


def test_the_request_log_records_operation_auth_and_request_id_but_never_a_token(acs):
    client = sync_client(acs)
    user, token = client.create_user_and_token(["chat"])
    client.get_token(user, ["chat"])
    log = acs.requests()
    assert [e["operation"] for e in log] == ["create_user_and_token", "get_token"]
    assert all(e["auth"] == "hmac" and e["client_request_id"] for e in log)
    assert token.token not in str(log) and acs.access_key not in str(log)
    assert acs.requests(operation="get_token", status=200)[0]["path"].startswith("/identities/8:acs:")


def test_reset_clears_faults_and_log_and_keeps_identities_unless_asked(acs):
    client = sync_client(acs)
    user = client.create_user()
    acs.inject_fault("delete_user", status=503)
    acs.reset()
    assert acs.requests() == [] and acs.control("GET", "faults")[1] == {"faults": []}
    assert user.raw_id in acs.identities()
    client.delete_user(user)  # the fault is gone
    acs.reset(identities=True)
    assert acs.identities() == []


@pytest.mark.parametrize("fault", [{"operation": "make_coffee", "status": 503}, {"status": 200},
                                   {"operation": "get_token"}, {"status": 503, "count": 0},
                                   {"status": 503, "path": "("}, {"status": 503, "colour": "red"}])
def test_an_invalid_fault_is_refused_with_400(acs, fault):
    status, body = acs.control("POST", "faults", fault)
    assert status == 400 and body["error"]["code"] == "BadControlRequest"
    assert acs.control("GET", "faults")[1] == {"faults": []}
