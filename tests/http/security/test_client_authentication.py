"""Client authentication: every bad Basic credential is invalid_client; encoded secrets work.

Part of the adversarial review of the token endpoint (tests/support/security_broker.py holds the broker).
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote_plus

import pytest

from tests.http.token_support import (
    exchange_form,
    partner_token,
)
from tests.support.security_broker import SECRETS, ok, post, refused

# --- client authentication ----------------------------------------------------------------------

def raw_basic(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


@pytest.mark.parametrize("header", [
    pytest.param(raw_basic(f"portal:{SECRETS['portal']}"), id="unencoded-secret-with-percent"),
    pytest.param(raw_basic(f"portal:{quote_plus(SECRETS['portal'])}x"), id="secret-plus-one-char"),
    pytest.param(raw_basic(f"portal:{quote_plus(SECRETS['portal'])[:-1]}"), id="secret-minus-one-char"),
    pytest.param(raw_basic("portal"), id="no-colon"),
    pytest.param(raw_basic(":" + quote_plus(SECRETS['portal'])), id="no-client-id"),
    pytest.param(raw_basic("nobody:" + quote_plus(SECRETS['portal'])), id="unknown-client"),
    pytest.param(raw_basic("dashboard:sha256:" + hashlib.sha256(b"dashboard-secret").hexdigest()),
                 id="the-hash-as-the-secret"),
    pytest.param(raw_basic("dashboard:" + hashlib.sha256(b"dashboard-secret").hexdigest()),
                 id="the-hex-digest-as-the-secret"),
    pytest.param({"Authorization": "Bearer " + "x" * 40}, id="bearer-scheme"),
])
async def test_every_bad_basic_credential_is_invalid_client(client, header):
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()), headers=header)
    await refused(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_colons_percent_and_plus_in_a_secret_work_when_form_encoded(client):
    assert SECRETS["portal"].count(":") and "%" in SECRETS["portal"] and "+" in SECRETS["portal"]
    await ok(await post(client, "/oauth2/token", exchange_form(partner_token())))
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()) + [
        ("client_id", "portal"), ("client_secret", SECRETS["portal"])])
    await ok(resp)


async def test_a_sha256_secret_accepts_only_the_plain_secret(client):
    await ok(await post(client, "/oauth2/introspect", {"token": "x"}, auth="dashboard"))
    resp = await client.post("/oauth2/introspect", data={"token": "x", "client_id": "dashboard",
                                                         "client_secret": "Dashboard-secret"})
    await refused(resp, 401, "invalid_client")
