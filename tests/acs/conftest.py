"""The broker with `[acs]`, against the real Entra and ACS emulators over HTTPS.

`acs_settings(**acs_keys)` builds Settings from TOML exactly as an operator writes them;
`broker` is the app through `aiohttp_client`; `tokens` mints the demo user's bearer token
for the broker and Teams tokens for ACS from the Entra emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from emulators.entra import demo
from service.app import create_app
from service.settings import Settings, load_settings
from tests.support.store_keys import STORE_KEY_LINE

SPA = demo.CLIENT_ID                      # the app that acquires Teams tokens for users
TEAMS_RESOURCE = demo.ACS_APP_ID_URI
TEAMS_SCOPES = ["Teams.ManageCalls", "Teams.ManageChats"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def settings_toml(entra, acs, *, store_url: str = "memory://", entra_extra: dict | None = None,
                  **acs_keys: Any) -> str:
    acs_values: dict[str, Any] = {"endpoint": acs.url, "access_key": acs.access_key,
                                  "allowed_teams_client_apps": [SPA], "timeout": 5}
    acs_values.update(acs_keys)
    acs_values = {k: v for k, v in acs_values.items() if v is not None}
    entra_values: dict[str, Any] = {"authority": entra.url, "tenant_id": demo.TENANT_ID,
                                    "client_id": demo.BROKER_CLIENT_ID, "timeout": 5}
    entra_values.update(entra_extra or {})
    lines = ["[tls]", f"ca_bundle = {_toml_value(entra.ca_bundle)}", "", "[entra]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in entra_values.items()]
    lines += ["", "[acs]"] + [f"{k} = {_toml_value(v)}" for k, v in acs_values.items()]
    lines += ["", "[store]", f"url = {_toml_value(store_url)}", STORE_KEY_LINE, "", "[issuer]", 'keys_dir = "keys"']
    return "\n".join(lines) + "\n"


@pytest.fixture(name="acs_settings")
def _acs_settings(entra, acs, tmp_path) -> Callable[..., Settings]:
    def make(**kw: Any) -> Settings:
        return load_settings(settings_toml(entra, acs, **kw), {}, base_dir=tmp_path)
    return make


@pytest.fixture(name="broker_for")
def _broker_for(aiohttp_client, acs_settings):
    async def make(settings: Settings | None = None, **kw: Any):
        return await aiohttp_client(create_app(settings or acs_settings(**kw), overrides={"dev": True}))
    return make


@pytest.fixture(name="broker")
async def _broker(broker_for):
    return await broker_for()


@dataclass
class Tokens:
    entra: Any

    def bearer(self, **kw: Any) -> str:
        kw.setdefault("resource", demo.BROKER_CLIENT_ID)
        kw.setdefault("client_id", SPA)
        kw.setdefault("scopes", ["user_impersonation"])
        return self.entra.mint(**kw)

    def teams(self, **kw: Any) -> str:
        kw.setdefault("resource", TEAMS_RESOURCE)
        kw.setdefault("client_id", SPA)
        kw.setdefault("scopes", TEAMS_SCOPES)
        return self.entra.mint(**kw)

    def headers(self, *, bearer: str | None = None, teams: str | None = None, **extra: str) -> dict:
        headers = {"Authorization": f"Bearer {bearer or self.bearer()}", **extra}
        if teams is not None:
            headers["teams-user-aad-token"] = teams
        return headers


@pytest.fixture(name="tokens")
def _tokens(entra) -> Tokens:
    return Tokens(entra)


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})
