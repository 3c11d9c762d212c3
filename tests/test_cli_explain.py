"""`tokenbroker explain`: the rule that decides a request, as text and JSON, exit codes 0/2, and the
same rule id as the token endpoint's audit event for the same request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from service.app import create_app
from service.cli import main
from service.settings import load_settings_file
from tests.http.token_support import BASE_TOML, exchange_form, partner_token, post_token

ROOT = Path(__file__).resolve().parents[1]
EXTRA = """
[[clients]]
client_id = "teams-app"
client_secret = "teams-secret-0123456789abcdefghi"
allowed_issuers = ["partner"]
allowed_audiences = ["acs:teams", "dashboard"]
"""


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(BASE_TOML + EXTRA)
    return path


def explain(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()                          # drop what the app logged before
    code = main(["explain", "--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def explain_json(capsys, config: Path, *args: str) -> dict:
    code, out, err = explain(capsys, config, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_an_allowed_request_names_the_allow_rule_and_the_issued_scope(capsys, config):
    code, out, _ = explain(capsys, config, "--client", "portal", "--issuer", "partner", "--audience", "dashboard",
                           "--subject-scopes", "partner.read")
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert lines["decision"] == "allow" and lines["rule"] == "allow"
    assert lines["scope"] == "read"                   # partner.read → read through the scope_map


def test_a_denied_request_exits_0_and_names_the_rule_and_the_answer(capsys, config):
    code, out, _ = explain(capsys, config, "--client", "portal", "--issuer", "partner", "--audience", "archive")
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert (lines["decision"], lines["rule"], lines["answer"]) == ("deny", "audience", "400 invalid_target")
    assert "archive" in lines["explanation"]


@pytest.mark.parametrize(("args", "rule", "error"), [
    (["--client", "inspector", "--issuer", "self", "--audience", "x"], "grant_type", "unauthorized_client"),
    (["--client", "dashboard", "--issuer", "partner", "--audience", "reports"], "issuer", "invalid_request"),
    (["--client", "portal", "--issuer", "partner", "--audience", "dashboard", "--scope", "admin"],
     "scope.client", "invalid_scope"),
    (["--client", "portal", "--issuer", "partner", "--audience", "dashboard", "--scope", "write",
      "--subject-scopes", "partner.read"], "scope.subject", "invalid_scope"),
    (["--client", "teams-app", "--issuer", "partner", "--audience", "acs:teams", "--audience", "dashboard"],
     "audience.downstream_mixed", "invalid_target"),
    (["--client", "teams-app", "--issuer", "partner", "--audience", "acs:teams"], "issuer.downstream",
     "invalid_request"),
])
def test_each_rule_is_reported_with_its_rfc_error(capsys, config, args, rule, error):
    body = explain_json(capsys, config, *args)
    assert (body["decision"], body["rule"], body["error"], body["status"]) == ("deny", rule, error, 400)


def test_json_output_carries_the_decision_and_the_input(capsys, config):
    body = explain_json(capsys, config, "--client", "portal", "--issuer", "partner", "--audience", "dashboard",
                        "--scope", "read write", "--subject-scopes", "partner.all")
    assert body["allowed"] is True and body["scopes"] == ["read", "write"] and body["error"] is None
    assert body["input"] == {"client": "portal", "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                             "issuer": "partner", "audience": ["dashboard"], "scope": ["read", "write"],
                             "subject_scopes": ["read", "write"]}


@pytest.mark.parametrize(("args", "message"), [
    (["--client", "nobody", "--issuer", "partner", "--audience", "dashboard"], "nobody"),
    (["--client", "portal", "--issuer", "stranger", "--audience", "dashboard"], "stranger"),
    (["--client", "portal", "--issuer", "entra", "--audience", "dashboard"], "entra"),      # no [entra]
    (["--client", "portal", "--issuer", "partner", "--audience", "dashboard", "--scope", 'a"b'], "scope"),
    (["--client", "portal", "--issuer", "partner", "--audience", "dashboard", "--grant-type", "password"],
     "password"),
])
def test_bad_input_exits_2_with_a_message(capsys, config, args, message):
    code, out, err = explain(capsys, config, *args)
    assert code == 2 and out == ""
    assert message in err


def test_a_bad_configuration_exits_2_naming_the_key(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "eighty"\n')
    code, _, err = explain(capsys, bad, "--client", "portal", "--issuer", "partner", "--audience", "dashboard")
    assert code == 2 and "server.port" in err
    code, _, err = explain(capsys, tmp_path / "missing.toml", "--client", "x", "--issuer", "self", "--audience", "y")
    assert code == 2 and "not found" in err


def test_missing_arguments_exit_2(capsys, config):
    assert main(["explain", "--config", str(config), "--client", "portal"]) == 2


def test_the_installed_command_explains_and_exits_with_the_contract_codes(config):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENBROKER_")}
    ok = subprocess.run([sys.executable, "-m", "service", "explain", "--config", str(config), "--client", "portal",
                         "--issuer", "partner", "--audience", "reports", "--json"], capture_output=True, text=True,
                        cwd=ROOT, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rule"] == "allow"
    bad = subprocess.run([sys.executable, "-m", "service", "explain", "--config", str(config), "--client", "nobody",
                          "--issuer", "partner", "--audience", "reports"], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=60)
    assert bad.returncode == 2


# --- the endpoint's audit event carries the rule explain names ------------------------------------

CASES = [  # (client, form extras, audience(s), token claims, explain args)
    ("portal", {}, "archive", {}, ["--audience", "archive"]),
    ("portal", {"scope": "admin"}, "dashboard", {}, ["--audience", "dashboard", "--scope", "admin"]),
    ("portal", {"scope": "write"}, "dashboard", {"scope": "partner.read"},
     ["--audience", "dashboard", "--scope", "write", "--subject-scopes", "partner.read"]),
    ("dashboard", {}, "reports", {}, ["--audience", "reports"]),
    ("teams-app", {}, ["acs:teams", "dashboard"], {}, ["--audience", "acs:teams", "--audience", "dashboard"]),
    ("teams-app", {}, "acs:teams", {}, ["--audience", "acs:teams"]),
    ("portal", {"scope": "read"}, "dashboard", {"scope": "partner.all"},
     ["--audience", "dashboard", "--scope", "read", "--subject-scopes", "partner.all"]),
]


@pytest.mark.parametrize(("client", "extra", "audience", "claims", "args"), CASES)
async def test_the_audit_rule_of_the_endpoint_equals_explains_rule(aiohttp_client, capsys, config, client, extra,
                                                                   audience, claims, args):
    broker = await aiohttp_client(create_app(load_settings_file(config, {})))
    secrets = {"teams-app": "teams-secret-0123456789abcdefghi"}
    form = exchange_form(partner_token(**claims), audience=audience, **extra)
    with capture_logs() as logs:
        if client in secrets:
            resp = await broker.post("/oauth2/token", data=form + [("client_id", client),
                                                                    ("client_secret", secrets[client])])
        else:
            resp = await post_token(broker, form, auth=client)
    [event] = [e for e in logs if e["event"] == "token_exchange"]
    body = explain_json(capsys, config, "--client", client, "--issuer", "partner", *args)
    assert event["rule"] == body["rule"]
    assert event["decision"] == body["decision"]
    assert (resp.status == 200) == body["allowed"]
    if not body["allowed"]:
        assert (await resp.json())["error"] == body["error"]


async def test_a_grant_type_denial_is_audited_with_explains_rule(aiohttp_client, capsys, config):
    broker = await aiohttp_client(create_app(load_settings_file(config, {})))
    with capture_logs() as logs:
        resp = await post_token(broker, exchange_form(partner_token()), auth="inspector")
    assert (await resp.json())["error"] == "unauthorized_client"
    [event] = [e for e in logs if e["event"] == "token_exchange"]
    body = explain_json(capsys, config, "--client", "inspector", "--issuer", "partner", "--audience", "dashboard")
    assert event["rule"] == body["rule"] == "grant_type"
