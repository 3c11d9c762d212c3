"""Account linking through POST /oauth2/token: jit, require_linked (links made with the real
`tokenbroker accounts` command on the same SQLite file), link_by_attribute, and Entra subjects
from the Entra emulator keyed on (tid, oid)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
from structlog.testing import capture_logs

from emulators.entra import demo
from service.app import create_app
from service.grants.linking import Accounts
from service.settings import load_settings_file
from service.typedefs import STORE
from tests.http.token_support import basic, exchange_form
from tests.support.oauth import entra_block

SECRET = "idp-hmac-secret-of-at-least-32-bytes-long!"
BROKER_AUD = "https://broker.example"
ROOT = Path(__file__).resolve().parents[2]


def idp(name: str, linking: str, lookup: str = "[]") -> str:
    return f"""
[[trusted_issuers]]
name = "{name}"
issuer = "https://{name}.example"
secret = "{SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
linking = "{linking}"
lookup_attributes = {lookup}
"""


TOML = f"""
[server]
public_url = "http://broker.test"

[issuer]
keys_dir = "keys"

[store]
url = "sqlite:///state.db"
{idp("social", "jit")}{idp("workforce", "require_linked")}{idp("partner", "link_by_attribute", '["email", "employee_id"]')}
[[clients]]
client_id = "portal"
client_secret = "portal-secret-0123456789abcdefgh"
allowed_issuers = ["social", "workforce", "partner", "self"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
refresh_tokens = true
"""


def idp_token(issuer: str, sub: str, **claims) -> str:
    now = int(time.time())
    body = {"iss": f"https://{issuer}.example", "sub": sub, "aud": BROKER_AUD, "scope": "read", "iat": now,
            "exp": now + 600, "jti": secrets.token_hex(8), **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


def write_config(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(toml)
    return path


@pytest.fixture(name="config")
def _config(tmp_path) -> Path:
    return write_config(tmp_path, TOML)


@pytest.fixture(name="client")
async def _client(aiohttp_client, config):
    return await aiohttp_client(create_app(load_settings_file(config, {})))


async def exchange(client, token: str, **kw):
    resp = await client.post("/oauth2/token", data=exchange_form(token, **kw), headers=basic("portal", "portal-secret-0123456789abcdefgh"))
    return resp.status, await resp.json()


def claims_of(body: dict) -> dict:
    return jwt.decode(body["access_token"], options={"verify_signature": False})


async def accounts_cli(config: Path, *args: str) -> tuple[int, list[dict]]:
    """The real `tokenbroker accounts` command in a child process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "accounts", "--config", str(config), *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def test_jit_creates_an_account_once_and_reuses_it(client):
    with capture_logs() as logs:
        s1, first = await exchange(client, idp_token("social", "fb-1", name="Jay", email="jay@x.example",
                                                     email_verified=True))
        s2, second = await exchange(client, idp_token("social", "fb-1", name="Someone Else"))
    assert (s1, s2) == (200, 200), (first, second)
    a, b = claims_of(first), claims_of(second)
    assert a["sub"] == b["sub"] and uuid.UUID(a["sub"]).version == 4
    assert b["name"] == "Jay" and b["email"] == "jay@x.example"     # the account's attributes win
    accounts = await Accounts(client.app[STORE]).list()
    assert [acc.id for acc in accounts] == [a["sub"]] and accounts[0].links == (("social", "fb-1"),)
    audits = [(e["event"], e.get("method")) for e in logs if e.get("event", "").startswith("account.")]
    assert audits == [("account.created", "jit"), ("account.linked", "jit")]


async def test_require_linked_refuses_until_the_accounts_command_links_the_user(client, config):
    status, body = await exchange(client, idp_token("workforce", "emp-7"))
    assert (status, body["error"]) == (400, "invalid_request")

    rc, out = await accounts_cli(config, "create", "--attr", "name=Wendy", "--attr", "email=wendy@corp.example")
    assert rc == 0
    account_id = out[0]["id"]
    rc, out = await accounts_cli(config, "link", account_id, "--issuer", "workforce", "--subject", "emp-7")
    assert rc == 0 and out[0]["links"] == [{"issuer": "workforce", "subject": "emp-7"}]

    status, body = await exchange(client, idp_token("workforce", "emp-7", name="W. from the IdP"))
    assert status == 200, body
    claims = claims_of(body)
    assert claims["sub"] == account_id and claims["name"] == "Wendy" and claims["email"] == "wendy@corp.example"

    rc, _ = await accounts_cli(config, "unlink", "--issuer", "workforce", "--subject", "emp-7")
    assert rc == 0
    status, body = await exchange(client, idp_token("workforce", "emp-7"))
    assert (status, body["error"]) == (400, "invalid_request")


async def test_link_by_attribute_uses_the_verified_primary_then_the_secondary(client):
    accounts = Accounts(client.app[STORE])
    pat = await accounts.create({"email": "pat@partner.example", "name": "Pat"})
    eve = await accounts.create({"employee_id": "E-7", "name": "Eve"})
    with capture_logs() as logs:
        s1, by_email = await exchange(client, idp_token("partner", "p-1", email="PAT@partner.example",
                                                        email_verified=True))
        s2, by_number = await exchange(client, idp_token("partner", "p-2", employee_id="E-7"))
    assert (s1, s2) == (200, 200)
    assert claims_of(by_email)["sub"] == pat.id and claims_of(by_email)["name"] == "Pat"
    assert claims_of(by_number)["sub"] == eve.id
    linked = [(e["account"], e["attribute"]) for e in logs if e.get("event") == "account.linked"]
    assert linked == [(pat.id, "email"), (eve.id, "employee_id")]


async def test_link_by_attribute_ignores_an_unverified_email(client):
    ceo = await Accounts(client.app[STORE]).create({"email": "ceo@partner.example"})
    status, body = await exchange(client, idp_token("partner", "mallory", email="ceo@partner.example"))
    assert status == 200, body                       # goes on as mallory (mandate_linked is off) ...
    assert claims_of(body)["sub"] != ceo.id          # ... never as the account holding that email
    assert await Accounts(client.app[STORE]).linked("partner", "mallory") is None


async def test_our_own_tokens_and_refreshes_keep_the_account(client):
    status, body = await exchange(client, idp_token("social", "g-9", name="Gus"))
    assert status == 200
    account = claims_of(body)["sub"]
    status, again = await exchange(client, body["access_token"], subject_token_type=(
        "urn:ietf:params:oauth:token-type:access_token"))
    assert status == 200, again
    assert claims_of(again)["sub"] == account and claims_of(again)["name"] == "Gus"
    resp = await client.post("/oauth2/token", data={"grant_type": "refresh_token",
                                                    "refresh_token": body["refresh_token"]},
                             headers=basic("portal", "portal-secret-0123456789abcdefgh"))
    assert resp.status == 200
    refreshed = claims_of(await resp.json())
    assert refreshed["sub"] == account and refreshed["name"] == "Gus"


# --- Entra subjects (the Entra emulator) -------------------------------------------------

def entra_toml(emu, linking: str, lookup: str = "[]") -> str:
    return f"""
[server]
public_url = "http://broker.test"

[issuer]
keys_dir = "keys"

[store]
url = "sqlite:///state.db"

{entra_block(emu, scope_map='{ user_impersonation = ["read"] }', linking=f'"{linking}"', lookup_attributes=lookup)}
[[clients]]
client_id = "portal"
client_secret = "portal-secret-0123456789abcdefgh"
allowed_issuers = ["entra"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
"""


def alice_or_bob(emu, upn: str) -> str:
    return emu.mint(resource=demo.BROKER_CLIENT_ID, client_id=demo.PUBLIC_CLIENT_ID, scopes=["user_impersonation"],
                    user=upn, claims={"email": "ceo@contoso.example"})


async def test_entra_jit_accounts_are_keyed_on_tid_and_oid(aiohttp_client, tmp_path, entra):
    client = await aiohttp_client(create_app(load_settings_file(write_config(tmp_path, entra_toml(entra, "jit")), {})))
    bodies = [await exchange(client, alice_or_bob(entra, upn))
              for upn in (demo.ALICE_UPN, demo.ALICE_UPN, demo.BOB_UPN)]
    assert [s for s, _ in bodies] == [200, 200, 200], bodies
    alice, alice_again, bob = (claims_of(b) for _, b in bodies)
    assert alice["sub"] == alice_again["sub"] != bob["sub"]
    assert alice["name"] == demo.ALICE_NAME and "email" not in alice    # Entra's email is never trusted
    account = await Accounts(client.app[STORE]).get(alice["sub"])
    assert account.links == (("entra", f"{demo.TENANT_ID}/{demo.ALICE_OID}"),)
    assert account.attributes["oid"] == demo.ALICE_OID and "email" not in account.attributes


async def test_entra_link_by_attribute_finds_preprovisioned_accounts_by_oid_only(aiohttp_client, tmp_path, entra):
    config = write_config(tmp_path, entra_toml(entra, "link_by_attribute", '["oid"]'))
    client = await aiohttp_client(create_app(load_settings_file(config, {})))
    rc, out = await accounts_cli(config, "create", "--attr", f"oid={demo.ALICE_OID}", "--attr", "name=Alice A.")
    assert rc == 0
    await Accounts(client.app[STORE]).create({"email": "ceo@contoso.example"})   # must never match Bob
    status, body = await exchange(client, alice_or_bob(entra, demo.ALICE_UPN))
    assert status == 200, body
    assert claims_of(body)["sub"] == out[0]["id"] and claims_of(body)["name"] == "Alice A."
    status, body = await exchange(client, alice_or_bob(entra, demo.BOB_UPN))
    assert (status, body["error"]) == (400, "invalid_request")
