"""Entra subject tokens the broker must not accept (wrong audience, Graph tokens, app-only).

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import base64
import json

import pytest
from structlog.testing import capture_logs

from emulators.entra import demo
from service.app import create_app
from tests.http.token_support import (
    exchange_form,
)
from tests.support.oauth import entra_block
from tests.support.security_broker import basic, claims_of, ok, refused, security_settings
from tests.validation.forge import sign

# --- Entra subject tokens -----------------------------------------------------------------------

def entra_toml(emu) -> str:
    return entra_block(emu, allow_app_only="true") + """
[[clients]]
client_id = "spa-backend"
client_secret = "spa-backend-secret-0123456789abc"
allowed_issuers = ["entra"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["user_impersonation", "admin"]
refresh_tokens = true
"""


@pytest.fixture(name="entra_client")
async def _entra_client(aiohttp_client, tmp_path, entra):
    settings = security_settings(tmp_path, entra_toml(entra))
    return await aiohttp_client(create_app(settings))


def mint_entra(emu, **kw) -> str:
    kw.setdefault("resource", demo.BROKER_CLIENT_ID)
    kw.setdefault("client_id", demo.PUBLIC_CLIENT_ID)
    kw.setdefault("scopes", ["user_impersonation"])
    return emu.mint(**kw)


async def spa(client, token: str, **extra):
    return await client.post("/oauth2/token", data=exchange_form(token, **extra),
                             headers=basic("spa-backend", "spa-backend-secret-0123456789abc"))


async def refused_for(client, token: str, reason: str) -> None:
    """400 invalid_request, and the audit event names the reason (the response never does)."""
    with capture_logs() as logs:
        body = await refused(await spa(client, token), 400, "invalid_request")
    assert body["error_description"] == "The subject token is not acceptable."
    assert [e["reason"] for e in logs if e.get("audit")] == [reason]


@pytest.mark.parametrize(("kw", "reason"), [
    pytest.param({"user": demo.CAROL_UPN, "tenant": demo.PARTNER_TENANT_ID}, "subject_tenant",
                 id="tenant-not-allowed"),
    pytest.param({"claims": {"scp": None}}, "subject_token_type", id="id-token-shape-no-scp-no-roles"),
    pytest.param({"claims": {"nonce": "n-1"}}, "subject_token_type", id="id-token-nonce-claim"),
    pytest.param({"resource": "https://graph.microsoft.com"}, "subject_audience", id="graph-audience"),
    pytest.param({"claims": {"exp": "9999999999"}}, "subject_claims", id="string-exp"),
    pytest.param({"claims": {"exp": None}}, "subject_claims", id="no-exp"),
])
async def test_entra_tokens_the_broker_must_not_accept_are_invalid_request(entra_client, entra, kw, reason):
    await refused_for(entra_client, mint_entra(entra, **kw), reason)


async def test_a_graph_token_with_a_nonce_header_is_refused_as_a_graph_token(entra_client, entra):
    header, payload = _parts(mint_entra(entra))
    forged = sign({**header, "nonce": "graph-nonce"}, payload, alg="RS256", key=None)
    await refused_for(entra_client, forged, "subject_token_type")


async def test_an_app_only_entra_token_yields_no_scope_and_cannot_ask_for_one(entra_client, entra):
    token = mint_entra(entra, app_only=True, client_id=demo.DAEMON_CLIENT_ID, roles=["Admin.All"])
    await refused(await spa(entra_client, token, scope="admin"), 400, "invalid_scope")
    body = await ok(await spa(entra_client, mint_entra(entra, app_only=True, client_id=demo.DAEMON_CLIENT_ID,
                                                       roles=["Admin.All"])))
    assert "scope" not in claims_of(body["access_token"])


def _parts(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p)))
