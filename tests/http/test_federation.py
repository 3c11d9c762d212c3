"""Service-principal federation through POST /oauth2/token: a CI workload's external token,
exchanged by a broker client, becomes a token of the federated client (sub = client_id)."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest
from structlog.testing import capture_logs

from service.app import create_app
from service.errors import ConfigurationError
from service.settings import load_settings
from tests.http.token_support import PUBLIC_URL, basic, exchange_form

CI_ISS = "https://ci.example"
CI_SECRET = "ci-hmac-secret-of-at-least-32-bytes-long!"
BROKER_AUD = "https://broker.example"
FED_AUD = "tokenbroker-federation"
WORKLOAD = "repo:acme/app:ref:refs/heads/main"

TOML = f"""
[server]
public_url = "{PUBLIC_URL}"

[issuer]
keys_dir = "keys"

[store]
url = "memory://"

[[trusted_issuers]]
name = "ci"
issuer = "{CI_ISS}"
secret = "{CI_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]

[[clients]]
client_id = "gateway"
client_secret = "gateway-secret-0123456789abcdefg"
allowed_issuers = ["ci"]
allowed_audiences = ["build-agent", "dashboard"]
allowed_scopes = ["read", "write", "deploy"]
refresh_tokens = true

[[clients]]
client_id = "portal"
client_secret = "portal-secret-0123456789abcdefgh"
allowed_issuers = ["ci"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]

[[clients]]
client_id = "build-agent"
client_secret = "build-agent-secret-0123456789abc"
grant_types = []
allowed_scopes = ["read", "deploy"]
federated_identities = [{{ issuer = "ci", subject = "{WORKLOAD}", audience = "{FED_AUD}" }}]
"""


def ci_token(*, sub: str = WORKLOAD, aud=(BROKER_AUD, FED_AUD), scope: str = "read write deploy") -> str:
    now = int(time.time())
    return jwt.encode({"iss": CI_ISS, "sub": sub, "aud": list(aud), "scope": scope, "iat": now,
                       "exp": now + 600, "jti": secrets.token_hex(8)}, CI_SECRET, algorithm="HS256")


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(load_settings(TOML, {}, base_dir=tmp_path)))


SECRET_OF = {"gateway": "gateway-secret-0123456789abcdefg", "portal": "portal-secret-0123456789abcdefgh",
             "build-agent": "build-agent-secret-0123456789abc"}


async def exchange(client, token: str, *, as_client: str = "gateway", **kw):
    resp = await client.post("/oauth2/token", data=exchange_form(token, **kw),
                             headers=basic(as_client, SECRET_OF[as_client]))
    return resp.status, await resp.json()


async def verify(client, token: str, audience: str) -> dict:
    """Verify against the broker's published JWKS, as the federated client's resource server would."""
    resp = await client.get("/oauth2/jwks")
    keys = jwt.PyJWKSet.from_dict(await resp.json())
    return jwt.decode(token, keys[jwt.get_unverified_header(token)["kid"]].key, algorithms=["ES256"],
                      audience=audience, issuer=PUBLIC_URL)


def token_events(logs) -> list[dict]:
    return [e for e in logs if e.get("event") == "token_exchange"]


async def test_a_federated_workload_gets_a_token_of_the_federated_client(client):
    with capture_logs() as logs:
        status, body = await exchange(client, ci_token(), audience="build-agent")
    assert status == 200, body
    claims = await verify(client, body["access_token"], "build-agent")
    assert claims["sub"] == "build-agent" and claims["client_id"] == "build-agent"
    assert claims["aud"] == "build-agent"
    assert claims["scope"] == "read deploy"     # subject ∩ gateway's ∩ build-agent's allowed_scopes
    assert not {"tid", "oid", "name", "email"} & set(claims)
    assert "refresh_token" not in body           # even though gateway has refresh_tokens = true
    event = token_events(logs)[-1]
    assert event["decision"] == "allow" and event["federated_client"] == "build-agent"


async def test_a_requested_scope_beyond_the_federated_client_is_invalid_scope(client):
    status, body = await exchange(client, ci_token(), audience="build-agent", scope="read write")
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_a_federated_subject_without_the_required_audience_is_refused(client):
    with capture_logs() as logs:
        status, body = await exchange(client, ci_token(aud=(BROKER_AUD,)), audience="build-agent")
    assert (status, body["error"]) == (400, "invalid_request")
    assert token_events(logs)[-1]["reason"] == "federation_audience"


async def test_an_unknown_subject_takes_the_normal_user_flow(client):
    status, body = await exchange(client, ci_token(sub="repo:acme/other:ref:refs/heads/main"),
                                  audience="build-agent")
    assert status == 200, body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "gateway" and claims["sub"] != "build-agent"
    assert claims["aud"] == "build-agent" and "refresh_token" in body


async def test_a_federated_subject_asking_for_another_audience_is_an_ordinary_subject(client):
    status, body = await exchange(client, ci_token(), audience="dashboard")
    assert status == 200, body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "gateway" and claims["sub"] != "build-agent"


async def test_a_client_not_allowed_to_target_the_federated_client_gets_invalid_target(client):
    status, body = await exchange(client, ci_token(), as_client="portal", audience="build-agent")
    assert (status, body["error"]) == (400, "invalid_target")


def test_an_identity_claimed_by_two_clients_is_refused_at_load_naming_the_key(tmp_path):
    twin = f"""
[[clients]]
client_id = "impostor"
client_secret = "impostor-secret-0123456789abcdef"
federated_identities = [{{ issuer = "ci", subject = "{WORKLOAD}", audience = "other" }}]
"""
    with pytest.raises(ConfigurationError) as err:
        load_settings(TOML + twin, {}, base_dir=tmp_path)
    assert any(p.startswith("clients[impostor].federated_identities[0].subject:") and "build-agent" in p
               for p in err.value.problems), err.value.problems
