"""Several allowed tenants against an Entra emulator that serves key documents like Entra does.

The emulator's tenant-specific v2 key documents carry the tenant's concrete issuer on every
key, so a broker that validated a partner tenant's token with the home tenant's documents
would refuse it (401). With several tenants allowed the broker reads the tenant-independent
documents (`organizations` v2, `common` v1); with only the home tenant it keeps the home
tenant's documents; and a tenant that is not allowed gets 403 whatever its key document.
"""

from __future__ import annotations

import pytest

from emulators.entra import demo
from service.validation.entra_metadata import EntraMetadata
from service.validation.jwks import JwksCache
from tests.validation.conftest import BROKER, SPA, entra_settings

BOTH = (demo.TENANT_ID, demo.PARTNER_TENANT_ID)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_token(entra, user: str, tenant: str, version: int = 2) -> str:
    return entra.mint(resource=BROKER if version == 2 else demo.BROKER_APP_ID_URI, user=user, tenant=tenant,
                      client_id=SPA, scopes=["user_impersonation"], version=version)


def fetched(entra, fragment: str) -> list[str]:
    return [r["path"] for r in entra.requests(path=fragment)]


@pytest.mark.parametrize("version", [2, 1])
async def test_a_second_allowed_tenants_token_is_accepted(broker_for, entra, version):
    broker = await broker_for(allowed_tenants=BOTH)
    resp = await broker.get("/api/me", headers=bearer(user_token(entra, "carol", demo.PARTNER_TENANT_ID, version)))
    body = await resp.json()
    assert resp.status == 200, body
    assert (body["tid"], body["oid"], body["token_version"]) == (demo.PARTNER_TENANT_ID, demo.CAROL_OID,
                                                                f"{version}.0")
    home = await broker.get("/api/me", headers=bearer(user_token(entra, "alice", demo.TENANT_ID, version)))
    assert home.status == 200 and (await home.json())["tid"] == demo.TENANT_ID


async def test_several_tenants_read_the_tenant_independent_documents(broker_for, entra):
    broker = await broker_for(allowed_tenants=BOTH)
    for version in (2, 1):
        resp = await broker.get("/api/me", headers=bearer(user_token(entra, "carol", demo.PARTNER_TENANT_ID, version)))
        assert resp.status == 200
    assert fetched(entra, "/organizations/v2.0/.well-known/openid-configuration")
    assert fetched(entra, "/organizations/discovery/v2.0/keys")
    assert fetched(entra, "/common/.well-known/openid-configuration")
    assert not fetched(entra, f"/{demo.TENANT_ID}/")          # no tenant-specific document at all


async def test_the_home_tenant_alone_keeps_the_tenant_specific_documents(broker_for, entra):
    broker = await broker_for(allowed_tenants=(demo.TENANT_ID,))
    resp = await broker.get("/api/me", headers=bearer(user_token(entra, "alice", demo.TENANT_ID)))
    assert resp.status == 200
    assert fetched(entra, f"/{demo.TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert fetched(entra, f"/{demo.TENANT_ID}/discovery/v2.0/keys")
    assert not fetched(entra, "/organizations/") and not fetched(entra, "/common/")


async def test_a_tenant_that_is_not_allowed_gets_403_although_its_key_issuer_differs(broker_for, entra):
    """Home tenant only: the home key document names the home issuer, the partner's token names
    the partner's. The tenant is refused first: 403 access_denied, not 401 invalid_token."""
    broker = await broker_for(allowed_tenants=(demo.TENANT_ID,))
    resp = await broker.get("/api/me", headers=bearer(user_token(entra, "carol", demo.PARTNER_TENANT_ID)))
    assert resp.status == 403
    assert (await resp.json())["error"] == "access_denied"
    assert 'error="invalid_token"' not in resp.headers.get("WWW-Authenticate", "")


@pytest.mark.parametrize("version", [2, 1])
async def test_a_third_tenant_is_refused_with_403_when_several_are_allowed(broker_for, entra, version):
    broker = await broker_for(allowed_tenants=BOTH)
    resp = await broker.get("/api/me", headers=bearer(user_token(entra, "dave", demo.OTHER_TENANT_ID, version)))
    assert resp.status == 403
    assert (await resp.json())["error"] == "access_denied"


async def test_an_issuer_naming_another_tenant_than_tid_is_refused(broker_for, entra):
    broker = await broker_for(allowed_tenants=BOTH)
    forged = entra.mint(resource=BROKER, user="carol", tenant=demo.PARTNER_TENANT_ID, client_id=SPA,
                        claims={"iss": f"{entra.url}/{demo.TENANT_ID}/v2.0"})
    resp = await broker.get("/api/me", headers=bearer(forged))
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_a_tid_that_is_not_a_guid_is_refused(broker_for, entra):
    broker = await broker_for(allowed_tenants=BOTH)
    token = entra.mint(resource=BROKER, user="carol", tenant=demo.PARTNER_TENANT_ID, client_id=SPA,
                       claims={"tid": demo.PARTNER_TENANT_DOMAIN,
                               "iss": f"{entra.url}/{demo.PARTNER_TENANT_DOMAIN}/v2.0"})
    resp = await broker.get("/api/me", headers=bearer(token))
    assert resp.status == 401


async def test_the_key_issuer_rule_is_identitymodels(entra, session):
    """A key's `issuer` with `tid` substituted must be the token's `iss`, or that tenant's v2
    issuer (a v1 token checked with a v2 key): a home tenant's concrete key issuer never
    vouches for a partner's token."""
    metadata = EntraMetadata(entra_settings(entra, allowed_tenants=BOTH), JwksCache(session, timeout=5))
    partner_v2 = f"{entra.url}/{demo.PARTNER_TENANT_ID}/v2.0"
    partner_v1 = f"https://sts.windows.net/{demo.PARTNER_TENANT_ID}/"
    template = f"{entra.url}/{{tenantid}}/v2.0"
    home_concrete = f"{entra.url}/{demo.TENANT_ID}/v2.0"
    assert await metadata.key_issuer_agrees(template, demo.PARTNER_TENANT_ID, partner_v2)
    assert await metadata.key_issuer_agrees(template, demo.PARTNER_TENANT_ID, partner_v1)
    assert await metadata.key_issuer_agrees(partner_v2, demo.PARTNER_TENANT_ID, partner_v2)
    assert not await metadata.key_issuer_agrees(home_concrete, demo.PARTNER_TENANT_ID, partner_v2)
    assert not await metadata.key_issuer_agrees(home_concrete, demo.PARTNER_TENANT_ID, partner_v1)
