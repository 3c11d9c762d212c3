"""`[acs] managed_identity = true`: the broker authenticates to ACS with azure-identity's
ManagedIdentityCredential, here against the Entra emulator's App Service-style endpoint
(IDENTITY_ENDPOINT + IDENTITY_HEADER set in the environment, as App Service would)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from emulators.entra import demo
from tests.fixtures.entra_emulator import point_managed_identity_at

from .conftest import claims


@pytest.fixture(name="msi_env")
def _msi_env(entra, monkeypatch):
    point_managed_identity_at(entra, monkeypatch)
    return monkeypatch


async def _teams(broker, tokens):
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams()))
    return resp, await resp.json()


async def test_a_system_assigned_identity_authenticates_the_broker_to_acs(broker_for, tokens, acs, entra,
                                                                         msi_env):
    broker = await broker_for(access_key=None, managed_identity=True)
    resp, body = await _teams(broker, tokens)
    assert resp.status == 201, body
    assert claims(body["token"])["skypeid"]
    user = await broker.post("/api/user", headers=tokens.headers())
    assert user.status == 201, await user.json()
    calls = acs.requests()
    assert [c["auth"] for c in calls] == ["bearer", "bearer"] and {c["status"] for c in calls} == {200, 201}
    [mi] = entra.requests(path="/msi/token")    # one token, cached by the credential for both calls
    assert mi["status"] == 200 and mi["query"]["resource"] == "https://communication.azure.com/"
    assert "client_id" not in mi["query"]
    assert entra.requests(grant_type="client_credentials") == []


async def test_a_user_assigned_identity_is_asked_for_by_its_client_id(broker_for, tokens, acs, entra, msi_env):
    broker = await broker_for(access_key=None, managed_identity=True,
                              managed_identity_client_id=demo.USER_ASSIGNED_IDENTITY_CLIENT_ID)
    user = await broker.post("/api/user", headers=tokens.headers())
    assert user.status == 201, await user.json()
    assert [c["auth"] for c in acs.requests()] == ["bearer"]
    [mi] = entra.requests(path="/msi/token")
    assert mi["query"]["client_id"] == demo.USER_ASSIGNED_IDENTITY_CLIENT_ID


async def test_the_managed_identity_needs_no_entra_credential(broker_for, tokens, acs, entra, msi_env):
    broker = await broker_for(access_key=None, managed_identity=True,
                              entra_extra={"client_secret": "never-used-secret"})
    user = await broker.post("/api/user", headers=tokens.headers())
    assert user.status == 201, await user.json()
    assert entra.requests(grant_type="client_credentials") == []
    assert len(entra.requests(path="/msi/token")) == 1


async def test_a_wrong_identity_header_is_502_credentials_refused(broker_for, tokens, acs, entra, msi_env):
    msi_env.setenv("IDENTITY_HEADER", "not-the-identity-header")
    broker = await broker_for(access_key=None, managed_identity=True)
    with capture_logs() as logs:
        resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (502, "bad_gateway")
    [refused] = [e for e in logs if e["event"] == "acs.credentials_refused"]
    assert refused["auth"] == "managed_identity" and refused["status"] == 401
    assert "not-the-identity-header" not in str(logs)
    assert acs.requests() == []
    assert [c["status"] for c in entra.requests(path="/msi/token")] == [401]   # not retried


async def test_an_identity_endpoint_that_is_not_one_is_502_and_explained(broker_for, tokens, acs, entra, msi_env):
    msi_env.setenv("IDENTITY_ENDPOINT", f"{entra.url}/no/such/endpoint")   # answers text/plain 404
    broker = await broker_for(access_key=None, managed_identity=True)
    with capture_logs() as logs:
        resp = await broker.post("/api/user", headers=tokens.headers())
        body = await resp.json()
    assert (resp.status, body["error"]) == (502, "bad_gateway")
    [unavailable] = [e for e in logs if e["event"] == "acs.managed_identity_unavailable"]
    assert unavailable["identity"] == "system-assigned" and unavailable["problem"]
    [refused] = [e for e in logs if e["event"] == "acs.credentials_refused"]
    assert refused["auth"] == "managed_identity"
    assert acs.requests() == []


async def test_an_unreachable_identity_endpoint_is_503(broker_for, tokens, acs, msi_env):
    msi_env.setenv("IDENTITY_ENDPOINT", "https://127.0.0.1:9/msi/token")
    broker = await broker_for(access_key=None, managed_identity=True, timeout=1)
    with capture_logs() as logs:
        resp, body = await _teams(broker, tokens)
    assert (resp.status, body["error"]) == (503, "temporarily_unavailable")
    assert any(e["event"] == "acs.managed_identity_unreachable" for e in logs)
    assert acs.requests() == []


async def test_an_identity_endpoint_answering_503_is_503_with_retry_after(broker_for, tokens, acs, entra, msi_env):
    entra.inject_fault(route="/msi/token", status=503, retry_after=7, count=50)
    broker = await broker_for(access_key=None, managed_identity=True, timeout=1)
    resp = await broker.post("/api/user", headers=tokens.headers())
    body = await resp.json()
    assert (resp.status, body["error"]) == (503, "temporarily_unavailable")
    assert resp.headers["Retry-After"] == "7"
    assert acs.requests() == []

