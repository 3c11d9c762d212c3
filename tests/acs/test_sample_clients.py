"""The broker as a drop-in for both ACS Authentication Server samples' React clients.

Both samples (Azure-Samples/communication-services-authentication-hero-nodejs and -csharp) ship
the same MinimalClient (`src/acsAuthApiCaller.js`, `TestCallContent.jsx`,
`TestCallTeamsUserContent.jsx`). From the browser at http://localhost:3000 it calls the server
cross-origin, so every call is preceded by a CORS preflight:

- "Join Default Call": `POST /api/user` (only `Authorization: Bearer <token for
  api://<client id>/access_as_user>`, no body; the answer is read with `response.json()`), then
  `GET /api/token` (same header), reading `token` and `user.id`;
- "Join as a Teams user": `GET /api/token/teams` with `Authorization` and
  `teams-user-aad-token: <token for the Teams.ManageCalls/ManageChats scopes>`, reading `token`;
  sent on mount, on the click and by the credential's `tokenRefresher`.

The SPA and the API are one app registration, so both tokens' `azp`/`appid` is the API's
client id. This replays those requests with the configuration docs/acs.md recommends.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from emulators.entra import demo
from service.app import create_app
from service.settings import load_settings
from tests.acs.conftest import TEAMS_RESOURCE, TEAMS_SCOPES, settings_toml

ORIGIN = "http://localhost:3000"
APP = demo.BROKER_CLIENT_ID          # one registration for the SPA and the API, as in the samples


@pytest.fixture(name="sample_broker")
async def _sample_broker(aiohttp_client, entra, acs, tmp_path):
    toml = settings_toml(entra, acs, allowed_teams_client_apps=[APP],
                         entra_extra={"required_scopes": ["access_as_user"]})
    toml += f'\n[cors]\nallowed_origins = ["{ORIGIN}"]\n'
    settings = load_settings(toml, {}, base_dir=tmp_path)
    return await aiohttp_client(create_app(settings, overrides={"dev": True}))


def spa_token(entra, user: str = demo.ALICE_UPN) -> str:
    """What `acquireTokenSilent(loginRequest)` returns: scope api://<client id>/access_as_user."""
    return entra.mint(resource=APP, client_id=APP, user=user, scopes=["access_as_user"])


def teams_token(entra, user: str = demo.ALICE_UPN) -> str:
    """What `acquireTokenSilent(teamsUserRequest)` returns."""
    return entra.mint(resource=TEAMS_RESOURCE, client_id=APP, user=user, scopes=TEAMS_SCOPES)


async def preflight(client, path: str, method: str, headers: str) -> None:
    resp = await client.options(path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": method,
                                                "Access-Control-Request-Headers": headers})
    assert resp.status in (200, 204), await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert method in resp.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {h.strip() for h in headers.split(",")} <= allowed


async def fetch(client, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """`fetch(url, {method, headers}).then(r => r.json())` from the SPA's origin."""
    resp = await client.request(method, path, headers={"Origin": ORIGIN, **headers})
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN      # else the browser hides the body
    return resp.status, await resp.json()


async def join_default_call(client, entra) -> dict:
    bearer = {"Authorization": f"Bearer {spa_token(entra)}"}
    await preflight(client, "/api/user", "POST", "authorization")
    status, created = await fetch(client, "POST", "/api/user", bearer)
    assert status in (200, 201) and created["acsUserIdentity"].startswith("8:acs:")
    await preflight(client, "/api/token", "GET", "authorization")
    status, message = await fetch(client, "GET", "/api/token", bearer)
    assert status == 201, message
    return {"created": created, "message": message}


async def test_join_default_call_reads_token_and_user_id(sample_broker, entra, acs):
    first = await join_default_call(sample_broker, entra)
    message, identity = first["message"], first["created"]["acsUserIdentity"]
    assert message["user"]["id"] == identity                       # what both React clients read
    assert message["user"]["communicationUserId"] == identity      # the Node server's shape
    assert message["user"]["rawId"] == identity                    # the C# server's shape
    check = acs.check_token(message["token"])
    assert check["valid"] and check["skypeid"] == identity.removeprefix("8:")
    assert jwt.decode(message["token"], options={"verify_signature": False})["exp"] > 0   # the credential parses it
    again = await join_default_call(sample_broker, entra)           # a second click: the same user
    assert again["created"]["acsUserIdentity"] == identity and again["message"]["user"]["id"] == identity


async def test_join_as_a_teams_user_on_mount_click_and_refresh(sample_broker, entra, acs):
    headers = {"Authorization": f"Bearer {spa_token(entra)}", "teams-user-aad-token": teams_token(entra)}
    tokens = []
    for _ in ("mount", "click", "tokenRefresher"):
        await preflight(sample_broker, "/api/token/teams", "GET", "authorization,teams-user-aad-token")
        status, message = await fetch(sample_broker, "GET", "/api/token/teams", headers)
        assert status == 201, message
        assert acs.check_token(message["token"])["skypeid"] == f"orgid:{demo.ALICE_OID}"
        tokens.append(message["token"])
    calls = acs.requests(operation="get_token_for_teams_user")
    assert calls and all(c["app_id"] == APP for c in calls)        # the one registration's id


async def test_what_differs_on_purpose_is_rfc_6750_instead_of_500(sample_broker, entra, acs):
    """The samples answer 500 for a missing or malformed token; the broker says what is wrong."""
    status, body = await fetch(sample_broker, "GET", "/api/token", {})
    assert (status, body["error"]) == (401, "invalid_request")       # the samples: 500
    resp = await sample_broker.get("/api/token", headers={"Origin": ORIGIN, "Authorization": "Bearer x.y.z"})
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    other_scope = entra.mint(resource=APP, client_id=APP, user=demo.ALICE_UPN, scopes=["user_impersonation"])
    resp = await sample_broker.get("/api/token", headers={"Authorization": f"Bearer {other_scope}"})
    assert resp.status == 403 and 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    assert (await sample_broker.get("/api/token", headers={
        "Authorization": f"Bearer {spa_token(entra, demo.BOB_UPN)}"})).status == 404     # no ACS user yet
