"""`[entra] app_signing_keys`: a registration with claims mapping signs with its own keys,
published only at `<jwks_uri>?appid=<client id>` (the emulator does it like Entra)."""

from __future__ import annotations

import jwt

from emulators.entra import demo
from tests.validation.conftest import BROKER, SPA

BOTH = (demo.TENANT_ID, demo.PARTNER_TENANT_ID)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_mapped_token(entra, **kw) -> tuple[str, str]:
    """(token for the broker's API signed with its app key, that key's kid)."""
    kid = entra.control("POST", f"apps/{BROKER}/claims-mapping", {"enabled": True})["kid"]
    token = entra.mint(resource=BROKER, user="alice", client_id=SPA, scopes=["user_impersonation"], **kw)
    assert jwt.get_unverified_header(token)["kid"] == kid
    return token, kid


async def test_without_the_setting_an_app_key_is_unknown(broker_for, entra):
    token, _ = claims_mapped_token(entra)
    broker = await broker_for(allowed_tenants=BOTH)
    resp = await broker.get("/api/me", headers=bearer(token))
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_with_the_setting_the_key_document_is_fetched_with_appid(broker_for, entra):
    token, _ = claims_mapped_token(entra)
    broker = await broker_for(allowed_tenants=BOTH, app_signing_keys=True)
    resp = await broker.get("/api/me", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    [fetch] = [r for r in entra.requests(path="/discovery/v2.0/keys") if r["query"].get("appid")]
    assert fetch["query"]["appid"] == BROKER


async def test_app_keys_work_with_the_home_tenant_documents_and_v1_tokens(broker_for, entra):
    broker = await broker_for(allowed_tenants=(demo.TENANT_ID,), app_signing_keys=True)
    token, _ = claims_mapped_token(entra)
    assert (await broker.get("/api/me", headers=bearer(token))).status == 200
    v1 = entra.mint(resource=demo.BROKER_APP_ID_URI, user="alice", client_id=SPA,
                    scopes=["user_impersonation"], version=1)
    resp = await broker.get("/api/me", headers=bearer(v1))
    assert resp.status == 200 and (await resp.json())["token_version"] == "1.0"


async def test_a_token_signed_with_the_global_keys_is_not_an_app_key_token(broker_for, entra):
    """With app signing keys the broker's own tokens are checked against the app's document only."""
    plain = entra.mint(resource=BROKER, user="alice", client_id=SPA, scopes=["user_impersonation"])
    entra.control("POST", f"apps/{BROKER}/claims-mapping", {"enabled": True})
    broker = await broker_for(allowed_tenants=BOTH, app_signing_keys=True)
    assert (await broker.get("/api/me", headers=bearer(plain))).status == 401
