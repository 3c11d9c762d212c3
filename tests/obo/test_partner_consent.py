"""OBO for a partner tenant's user: the broker app's service principal and consent live per tenant.

The emulator is as strict as Entra: in the partner tenant (Fabrikam) the broker app has a
service principal (Carol consented to the portal, which asks for the broker's API) but the
workspace API has none, so OBO there fails with AADSTS500011; without the broker's service
principal it is 700016; with both but no consent, 65001. Each becomes `403 consent_required`
with the partner's admin-consent URL and an operator log line; admin consent through the
control plane makes the same request work, issued in the partner tenant.
"""

from __future__ import annotations

import jwt
import pytest
from structlog.testing import capture_logs

from emulators.entra import demo
from tests.obo.conftest import obo, obo_calls, portal_token

CONSENT_URL = "{url}/{tid}/adminconsent?client_id=" + demo.BROKER_CLIENT_ID


def carol(entra) -> str:
    return portal_token(entra, user=demo.CAROL_UPN, tenant=demo.PARTNER_TENANT_ID)


def remove_service_principal(entra, client_id: str) -> None:
    entra.control("DELETE", "service-principals", {"tenant": demo.PARTNER_TENANT_ID, "client_id": client_id})


def add_service_principal(entra, client_id: str) -> None:
    entra.control("POST", "service-principals", {"tenant": demo.PARTNER_TENANT_ID, "client_id": client_id})


async def refused_for_consent(broker, entra, aadsts: int) -> dict:
    with capture_logs() as logs:
        resp, body = await obo(broker, carol(entra))
    assert resp.status == 403, body
    assert body["error"] == "consent_required"
    assert body["consent_url"] == CONSENT_URL.format(url=entra.url, tid=demo.PARTNER_TENANT_ID)
    [call] = obo_calls(entra)
    assert call["path"] == f"/{demo.PARTNER_TENANT_ID}/oauth2/v2.0/token" and call["status"] == 400
    [line] = [e for e in logs if e["event"] == "obo.consent_required"]
    assert line["tenant"] == demo.PARTNER_TENANT_ID and line["aadsts"] == aadsts
    assert line["consent_url"] == body["consent_url"]
    assert not [e for e in logs if e["event"] == "obo.credentials_refused"]
    return body


async def test_no_service_principal_of_the_broker_in_the_partner_tenant_is_consent_required(broker, entra):
    remove_service_principal(entra, demo.BROKER_CLIENT_ID)
    await refused_for_consent(broker, entra, 700016)


async def test_no_service_principal_of_the_downstream_api_is_consent_required(broker, entra):
    await refused_for_consent(broker, entra, 500011)


async def test_no_consent_in_the_partner_tenant_is_consent_required(broker, entra):
    add_service_principal(entra, demo.WORKSPACE_CLIENT_ID)
    await refused_for_consent(broker, entra, 65001)


async def test_admin_consent_in_the_partner_tenant_lets_the_same_request_through(broker, entra):
    remove_service_principal(entra, demo.BROKER_CLIENT_ID)
    await refused_for_consent(broker, entra, 700016)
    entra.add_consent(tenant=demo.PARTNER_TENANT_ID, client_id=demo.BROKER_CLIENT_ID,
                      resource=demo.WORKSPACE_CLIENT_ID, scopes=["user_impersonation"])   # admin consent
    resp, body = await obo(broker, carol(entra))
    assert resp.status == 200, body
    issued = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (issued["tid"], issued["oid"]) == (demo.PARTNER_TENANT_ID, demo.CAROL_OID)


@pytest.mark.parametrize("aadsts", [700016])
async def test_the_broker_app_missing_in_its_home_tenant_is_still_the_credentials_alarm(broker, entra, aadsts):
    entra.inject_fault(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", aadsts=aadsts)
    with capture_logs() as logs:
        resp, body = await obo(broker, portal_token(entra))
    assert resp.status == 502, body
    assert "consent_url" not in body
    assert [e for e in logs if e["event"] == "obo.credentials_refused"]


async def test_home_tenant_consent_missing_also_names_the_consent_url(broker, entra):
    resp, body = await obo(broker, portal_token(entra, user=demo.BOB_UPN))   # Bob has no consent
    assert resp.status == 403 and body["error"] == "consent_required"
    assert body["consent_url"] == CONSENT_URL.format(url=entra.url, tid=demo.TENANT_ID)
