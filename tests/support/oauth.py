"""Small helpers the endpoint tests share: a Basic header, an RFC 6749 §5.2 refusal, a 200 body,
and the `[tls]` + `[entra]` TOML block that points the broker at the Entra emulator.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote_plus

from emulators.entra import demo


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: form-encode id and secret, then Basic-encode."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def refused(resp: Any, status: int, error: str, *, exact: bool = False) -> dict:
    """Assert an RFC 6749 §5.2 refusal; `exact` also wants both fields and `Cache-Control: no-store`."""
    body = await resp.json()
    assert (resp.status, body.get("error")) == (status, error), body
    if exact:
        assert set(body) == {"error", "error_description"}
        assert resp.headers["Cache-Control"] == "no-store"
    else:
        assert set(body) <= {"error", "error_description", "error_uri"}
    return body


async def ok(resp: Any) -> dict:
    body = await resp.json()
    assert resp.status == 200, body
    return body


def entra_block(emu: Any, *, client_id: str = demo.BROKER_CLIENT_ID, tenant_id: str | None = None,
                **keys: str) -> str:
    """`[tls]` trusting the emulator's CA and `[entra]` at the emulator; `keys` are extra TOML
    lines of [entra], given as ready TOML values (`allow_app_only="true"`)."""
    lines = [f'authority = "{emu.url}"', f'tenant_id = "{tenant_id or emu.tenant_id}"',
             f'client_id = "{client_id}"', "timeout = 5", *(f"{k} = {v}" for k, v in keys.items())]
    return f'\n[tls]\nca_bundle = "{emu.ca_bundle}"\n\n[entra]\n' + "\n".join(lines) + "\n"
