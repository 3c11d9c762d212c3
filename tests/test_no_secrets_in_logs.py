"""Never log a token, secret or key.

All log output (our JSON lines at DEBUG for every logger, third-party ones included, plus
anything printed to stdout/stderr) is captured while real flows run through the whole broker
against the Entra and ACS emulators: /api/*, On-Behalf-Of, the token endpoint with refresh,
introspection, revocation, private_key_jwt and downstream targets, successes and refusals.
Then none of the configured secrets, and none of the tokens presented or issued (whole, nor
their payload or signature segment), may appear anywhere in it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
import structlog

from emulators.entra import demo
from service.logs import configure_logging
from tests.http.token_support import basic
from tests.obo.conftest import JWT_BEARER
from tests.support.client_keys import ClientKeys
from tests.support.full_broker import (
    PARTNER_SECRET,
    PORTAL_SECRET,
    REFRESH_TOKEN,
    bearer,
    exchange_form,
    partner_token,
    start,
    teams,
)

TOKEN_KEYS = ("access_token", "refresh_token", "token", "id_token")
THIRD_PARTY = ("azure", "aiohttp.access", "aiohttp.client", "aiohttp.server", "asyncio")


@pytest.fixture(name="log_output")
def _log_output(capsys) -> Iterator[io.StringIO]:
    """Every log line of the test as our JSON renderer writes it; logging restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config(),
             {name: logging.getLogger(name).level for name in THIRD_PARTY})
    stream = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=stream)
    for name in THIRD_PARTY:                   # stricter than production: nothing filtered out
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        handlers, level, config, levels = saved
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)
        for name, lvl in levels.items():
            logging.getLogger(name).setLevel(lvl)
    printed = capsys.readouterr()
    stream.write(printed.out + printed.err)


class Secrets:
    """What must never be logged: configured secrets and every token seen in the test."""

    def __init__(self, acs) -> None:
        self.values: dict[str, str] = {}
        for name, value in {"portal client secret": PORTAL_SECRET, "broker secret": demo.BROKER_SECRET,
                            "partner HMAC secret": PARTNER_SECRET, "ACS access key": acs.access_key,
                            "ACS connection string": acs.connection_string,
                            "portal Basic credentials": basic("portal", PORTAL_SECRET)["Authorization"][6:]
                            }.items():
            self.add(name, value)

    def add(self, name: str, value: str) -> str:
        """Remember a secret or token (JWTs also by payload and signature segment); returns it."""
        variants = {value, quote(value, safe=""), quote_plus(value)}
        parts = value.split(".")
        if len(parts) == 3:
            variants.update(p for p in parts[1:] if len(p) >= 16)
        for variant in variants:
            self.values[variant] = name
        return value

    def from_body(self, what: str, body: dict) -> dict:
        for key in TOKEN_KEYS:
            if isinstance(body.get(key), str):
                self.add(f"{what} {key}", body[key])
        return body

    def assert_not_logged(self, log_output: io.StringIO, *expected_events: str) -> None:
        output = log_output.getvalue()
        assert set(expected_events) <= events(output), "the flows were logged"
        self.assert_not_in(output)

    def assert_not_in(self, output: str) -> None:
        lines = output.splitlines()
        assert len(lines) > 20, "the log was captured"
        for value, name in self.values.items():
            leaked = [_event(line) for line in lines if value in line]
            assert not leaked, f"the {name} appears in the log: {leaked[:5]}"


def _event(line: str) -> str:
    try:
        return json.loads(line).get("event", "?")
    except ValueError:
        return line[:60] + "..."  # not ours; the secret itself is not repeated beyond this prefix


@pytest.fixture(name="started")
async def _started(aiohttp_client, entra, acs, tmp_path):
    return await start(aiohttp_client, entra, acs, tmp_path)


@pytest.fixture(name="broker")
def _broker(started):
    return started[0]


@pytest.fixture(name="signer_keys")
def _signer_keys(started) -> ClientKeys:
    return started[1]


@pytest.fixture(name="secrets")
def _secrets(acs, tmp_path, started) -> Secrets:
    found = Secrets(acs)
    key_files = list((tmp_path / "keys").glob("*.json"))     # our signing keys (created on start)
    assert key_files
    for path in key_files:
        pem = json.loads(path.read_text())["private_key_pem"]
        for line in pem.splitlines():
            if not line.startswith("-----"):
                found.add(f"signing key {path.stem}", line)
    return found


async def call(broker, secrets: Secrets, method: str, path: str, *, expect: int, **kw) -> dict:
    resp = await broker.request(method, path, **kw)
    body = await resp.json() if resp.content_type == "application/json" else {}
    assert resp.status == expect, (method, path, body)
    return secrets.from_body(f"{method} {path}", body)


def events(output: str) -> set[str]:
    return {json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")}


async def test_the_api_routes_log_no_token(broker, entra, acs, log_output, secrets):
    alice = secrets.add("Alice's bearer", bearer(entra))
    auth = {"Authorization": f"Bearer {alice}"}
    await call(broker, secrets, "GET", "/api/me", expect=200, headers=auth)
    own = secrets.add("Alice's Teams token", teams(entra))
    await call(broker, secrets, "GET", "/api/token/teams", expect=201,
               headers={**auth, "teams-user-aad-token": own})
    bobs = secrets.add("Bob's Teams token", teams(entra, user=demo.BOB_UPN))
    await call(broker, secrets, "POST", "/api/token/teams", expect=400,
               headers={**auth, "teams-user-aad-token": bobs})
    narrow = secrets.add("a Teams token without the scopes", teams(entra, scopes=["Teams.ManageCalls"]))
    await call(broker, secrets, "GET", "/api/token/teams", expect=403,
               headers={**auth, "teams-user-aad-token": narrow})
    acs.inject_fault("get_token_for_teams_user", status=500, count=10)
    fresh = secrets.add("another Teams token", teams(entra))
    failed = await broker.get("/api/token/teams", headers={**auth, "teams-user-aad-token": fresh})
    assert failed.status in (502, 503), await failed.text()
    await call(broker, secrets, "POST", "/api/user", expect=201, headers=auth)
    await call(broker, secrets, "GET", "/api/token", expect=201, headers=auth)
    await call(broker, secrets, "DELETE", "/api/user", expect=204, headers=auth)
    await call(broker, secrets, "GET", "/api/token", expect=404, headers=auth)
    secrets.assert_not_logged(log_output, "acs.teams_exchange", "acs.identity_token", "http.request")


async def test_on_behalf_of_logs_no_token(broker, entra, log_output, secrets):
    alice = secrets.add("Alice's bearer", bearer(entra))
    await call(broker, secrets, "POST", "/api/token/obo/workspace", expect=200,
               headers={"Authorization": f"Bearer {alice}"})
    bob = secrets.add("Bob's bearer", bearer(entra, user=demo.BOB_UPN))
    body = await call(broker, secrets, "POST", "/api/token/obo/workspace", expect=403,
                      headers={"Authorization": f"Bearer {bob}"})
    assert body["error"] == "consent_required"
    entra.set_mfa(resource=demo.WORKSPACE_CLIENT_ID)
    mfa = secrets.add("a bearer needing MFA", bearer(entra))
    body = await call(broker, secrets, "POST", "/api/token/obo/workspace", expect=401,
                      headers={"Authorization": f"Bearer {mfa}"})
    assert body["error"] == "insufficient_claims"
    entra.set_mfa(False, resource=demo.WORKSPACE_CLIENT_ID)
    entra.inject_fault(grant_type=JWT_BEARER, aadsts=50013)
    refused = secrets.add("a bearer Entra refuses", bearer(entra))
    await call(broker, secrets, "POST", "/api/token/obo/workspace", expect=401,
               headers={"Authorization": f"Bearer {refused}"})
    secrets.assert_not_logged(log_output, "obo.exchange")


async def test_the_token_endpoint_logs_no_token_or_secret(broker, entra, log_output, secrets):
    portal = basic("portal", PORTAL_SECRET)

    async def token(data, expect: int, headers: dict | None = portal) -> dict:
        return await call(broker, secrets, "POST", "/oauth2/token", expect=expect, headers=headers, data=data)

    subject = secrets.add("an Entra subject token", bearer(entra))
    issued = await token(exchange_form(subject, scope="read"), 200)
    assert "refresh_token" in issued
    rotate = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    refreshed = await token(rotate, 200)
    await token(rotate, 400)                                   # reuse of a rotated refresh token
    body = await call(broker, secrets, "POST", "/oauth2/introspect", expect=200, headers=portal,
                      data={"token": refreshed["access_token"]})
    assert body["active"] is True
    await call(broker, secrets, "POST", "/oauth2/revoke", expect=200, headers=portal,
               data={"token": refreshed["refresh_token"], "token_type_hint": "refresh_token"})
    await token(exchange_form(refreshed["access_token"]), 200)                       # our own token
    await token(exchange_form(refreshed["refresh_token"], subject_token_type=REFRESH_TOKEN), 400)
    await token(exchange_form(secrets.add("a partner token", partner_token())), 200)
    await token(exchange_form(secrets.add("a forged partner token", partner_token()[:-4] + "AAAA")), 400)
    wrong = secrets.add("a wrong client secret", "wrong-" + PORTAL_SECRET[::-1])
    await token(exchange_form(partner_token()), 401, headers=basic("portal", wrong))
    await token({**exchange_form(partner_token()), "client_id": "portal", "client_secret": wrong}, 401, None)
    unknown = secrets.add("an unknown refresh token", "rt-" + "q" * 40)
    await token({"grant_type": "refresh_token", "refresh_token": unknown}, 400)
    secrets.assert_not_logged(log_output, "token_exchange", "refresh_token.reuse_detected")


async def test_downstream_targets_and_private_key_jwt_log_no_token_or_assertion(broker, entra, signer_keys,
                                                                               log_output, secrets):
    portal = basic("portal", PORTAL_SECRET)
    for audience, subject in (("acs:teams", teams(entra)), ("obo:workspace", bearer(entra))):
        secrets.add(f"a subject token for {audience}", subject)
        await call(broker, secrets, "POST", "/oauth2/token", expect=200, headers=portal,
                   data=exchange_form(subject, audience=audience))
    good = secrets.add("a client assertion", signer_keys.assertion())
    other = secrets.add("an assertion for another audience",
                        signer_keys.assertion(aud="https://elsewhere.example"))
    for assertion, expect in ((good, 200), (good, 401), (other, 401)):           # the second is a replay
        await call(broker, secrets, "POST", "/oauth2/token", expect=expect,
                   data=[*exchange_form(partner_token()).items(), *signer_keys.form(assertion)])
    secrets.assert_not_logged(log_output, "token_exchange")


async def test_refused_bearer_tokens_are_not_logged(broker, entra, log_output, secrets):
    header, payload, signature = bearer(entra).split(".")
    refused = {
        401: [secrets.add("a tampered bearer", f"{header}.{payload}.{signature[::-1]}"),
              secrets.add("an expired bearer", bearer(entra, lifetime=-600)),
              secrets.add("a bearer for another API", entra.mint(resource=demo.WORKSPACE_CLIENT_ID,
                                                                 client_id=demo.CLIENT_ID,
                                                                 scopes=["user_impersonation"])),
              secrets.add("Basic credentials presented as a bearer", basic("portal", PORTAL_SECRET)
                          ["Authorization"][6:])],
        403: [secrets.add("a bearer without the scope", entra.mint(
            resource=demo.BROKER_CLIENT_ID, client_id=demo.CLIENT_ID, scopes=["other"]))],
    }
    for status, tokens in refused.items():
        for token in tokens:
            await call(broker, secrets, "GET", "/api/me", expect=status,
                       headers={"Authorization": f"Bearer {token}"})
    secrets.assert_not_logged(log_output, "auth.refused")


async def test_the_canonical_request_line_names_the_tenant_app_and_client(aiohttp_client, entra, acs, tmp_path,
                                                                           log_output):
    client, _keys = await start(aiohttp_client, entra, acs, tmp_path)
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {bearer(entra)}"})
    assert resp.status == 200
    resp = await client.post("/oauth2/token", data=exchange_form(bearer(entra), audience="dashboard"),
                             headers=basic("portal", PORTAL_SECRET))
    assert resp.status == 200, await resp.text()
    lines = [json.loads(line) for line in log_output.getvalue().splitlines() if line.startswith("{")]
    requests = {line["route"]: line for line in lines if line.get("event") == "http.request"}
    me = requests["/api/me"]
    assert (me["tid"], me["app_id"], me["status"]) == (demo.TENANT_ID, demo.CLIENT_ID, 200)
    assert me["request_id"] and me["duration_ms"] >= 0
    assert requests["/oauth2/token"]["client_id"] == "portal"
