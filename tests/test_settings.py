"""The configuration layer: defaults, the example file, env/flag grammar, strictness, rules."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.settings import (
    TOKEN_EXCHANGE,
    ClientSettings,
    EntraSettings,
    IssuerSettings,
    Secret,
    Settings,
    describe,
    load_settings,
    load_settings_file,
)

ROOT = Path(__file__).resolve().parent.parent
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
GOOD_HMAC = "s" * 32
HASHED = "sha256:" + "ab" * 32


def dump(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {dump(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def table(header: str, defaults: dict, **over: object) -> str:
    values = {**defaults, **over}
    return header + "\n" + "".join(f"{k} = {dump(v)}\n" for k, v in values.items() if v is not None)


def entra(**over: object) -> str:
    return table("[entra]", {"tenant_id": TENANT, "client_id": APP}, **over)


def acs(**over: object) -> str:
    return table("[acs]", {"endpoint": "https://res.communication.azure.com",
                           "allowed_teams_client_apps": [APP]}, **over)


def trusted(**over: object) -> str:
    return table("[[trusted_issuers]]", {"name": "partner", "issuer": "https://auth.partner.example",
                                         "jwks_uri": "https://auth.partner.example/jwks",
                                         "audiences": ["https://broker.example"]}, **over)


def client(**over: object) -> str:
    return table("[[clients]]", {"client_id": "portal", "client_secret": "pw" * 16}, **over)


@pytest.fixture(name="load")
def _load(tmp_path):
    def load(text: str = "", env: dict | None = None, flags: dict | None = None) -> Settings:
        return load_settings(text, env or {}, base_dir=tmp_path, flags=flags or {})
    return load


@pytest.fixture(name="problems")
def _problems(tmp_path):
    def problems(text: str = "", env: dict | None = None, flags: dict | None = None) -> list[str]:
        with pytest.raises(ConfigurationError) as caught:
            load_settings(text, env or {}, base_dir=tmp_path, flags=flags or {})
        assert caught.value.problems, "a ConfigurationError must list its problems"
        return caught.value.problems
    return problems


def names(problems: list[str], prefix: str) -> bool:
    return any(p.startswith(prefix) for p in problems)


# --- defaults and the example -------------------------------------------------------------

def test_an_empty_file_gives_the_documented_defaults(load, tmp_path):
    s = load("")
    assert (s.server.host, s.server.port, s.server.public_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert s.server.shutdown_grace == 15
    assert s.tls.ca_bundle == "" and s.entra is None and s.acs is None and dict(s.obo) == {}
    assert s.issuer == IssuerSettings("ES256", tmp_path / "keys", 600, 900, 86400)
    assert s.trusted_issuers == () and s.clients == ()
    assert s.store.url == "memory://" and s.cors.allowed_origins == ()
    assert s.config_path is None


def test_public_url_is_derived_from_host_and_port_when_not_given(load):
    s = load('[server]\nhost = "0.0.0.0"\nport = 9000\n')
    assert s.server.public_url == "http://0.0.0.0:9000"


def test_entra_defaults_resolve_tenants_and_audiences(load):
    e = load(entra()).entra
    assert e.authority == "https://login.microsoftonline.com"
    assert e.allowed_tenants == (TENANT,)
    assert e.audiences == (APP, f"api://{APP}")
    assert e.required_scopes == ("user_impersonation",)
    assert (e.clock_skew, e.timeout, e.allow_app_only, e.allowed_client_apps) == (120, 10, False, ())
    assert not e.client_secret and dict(e.scope_map) == {}


def test_acs_defaults_match_the_contract(load):
    a = load(acs()).acs
    assert a.teams_scopes == ("Teams.ManageCalls", "Teams.ManageChats")
    assert a.verify_teams_token_signature is True
    assert a.identity_scopes == ("chat", "voip")
    assert (a.identity_token_ttl, a.timeout) == (3600, 10)
    assert (a.managed_identity, a.managed_identity_client_id) == (False, "")


def test_trusted_issuer_and_client_defaults_match_the_contract(load):
    s = load(trusted() + client() + '[issuer]\naccess_token_ttl = 300\n')
    t = s.trusted_issuer("partner")
    assert t.algorithms == ("RS256",) and t.linking == "none" and t.max_token_age == 0
    assert t.replay_check is False and t.lookup_attributes == ()
    c = s.client("portal")
    assert c.grant_types == (TOKEN_EXCHANGE, "refresh_token")
    assert c.token_format == "jwt" and c.refresh_tokens is False
    assert c.access_token_ttl == 300, "0 resolves to [issuer] access_token_ttl"
    assert s.client("nobody") is None and s.trusted_issuer("nobody") is None


def test_the_example_config_loads_with_every_section():
    s = load_settings_file(ROOT / "deploy" / "config.example.toml", {})
    assert s.entra is not None and s.acs is not None and set(s.obo) == {"graph", "workspace"}
    assert s.trusted_issuers and s.clients and s.cors.allowed_origins
    assert s.issuer.keys_dir == ROOT / "deploy" / "keys"
    assert s.config_path == ROOT / "deploy" / "config.example.toml"


def test_the_example_config_names_every_key_of_the_schema():
    from service.settings import SCHEMA
    text = (ROOT / "deploy" / "config.example.toml").read_text()
    for section, keys in SCHEMA.items():
        for key in keys:
            assert f"\n{key} = " in text, f"{section}.{key} missing from the example"


def test_the_reference_documents_every_key_of_the_schema():
    from service.settings import SCHEMA
    text = (ROOT / "docs" / "configuration.md").read_text()
    for section, keys in SCHEMA.items():
        assert f"[{section}" in text, section
        for key in keys:
            assert f"| `{key}` |" in text, f"{section}.{key} missing from docs/configuration.md"


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    for name in ("ca.pem", "broker.pem", "keys.json"):
        (tmp_path / name).write_text("x")
    (tmp_path / "conf.toml").write_text(
        '[tls]\nca_bundle = "ca.pem"\n' + entra(client_certificate="broker.pem")
        + trusted(jwks_uri="", certificate="broker.pem") + client(client_secret="", jwks="keys.json")
        + '[issuer]\nkeys_dir = "state/keys"\n')
    s = load_settings_file(tmp_path / "conf.toml", {})
    assert s.tls.ca_bundle == str(tmp_path / "ca.pem")
    assert s.entra.client_certificate == str(tmp_path / "broker.pem")
    assert s.trusted_issuers[0].certificate == str(tmp_path / "broker.pem")
    assert s.clients[0].jwks == str(tmp_path / "keys.json")
    assert s.issuer.keys_dir == tmp_path / "state" / "keys"


def test_an_unreadable_config_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_settings_file(tmp_path / "missing.toml", {})
    assert caught.value.problems[0].startswith("config:")


# --- environment and flags -----------------------------------------------------------------

def test_an_environment_variable_overrides_a_string_in_the_file(load):
    s = load('[server]\nhost = "127.0.0.1"\n', {"TOKENBROKER_SERVER__HOST": "0.0.0.0"})
    assert s.server.host == "0.0.0.0"


def test_environment_integers_booleans_and_arrays_are_read_as_toml_literals(load):
    s = load(entra(), {"TOKENBROKER_SERVER__PORT": "9001", "TOKENBROKER_ENTRA__ALLOW_APP_ONLY": "true",
                       "TOKENBROKER_ENTRA__REQUIRED_SCOPES": '["access_as_user", "x"]'})
    assert s.server.port == 9001
    assert s.entra.allow_app_only is True
    assert s.entra.required_scopes == ("access_as_user", "x")


def test_an_environment_inline_table_sets_a_scope_map(load):
    s = load(entra(), {"TOKENBROKER_ENTRA__SCOPE_MAP": '{ user_impersonation = ["read", "write"] }'})
    assert dict(s.entra.scope_map) == {"user_impersonation": ("read", "write")}


def test_a_string_key_keeps_a_number_like_value_as_text(load):
    s = load(entra(), {"TOKENBROKER_ENTRA__CLIENT_SECRET": "12345"})
    assert s.entra.client_secret.reveal() == "12345"


def test_a_value_that_is_not_a_toml_literal_is_a_plain_string(load):
    s = load(entra(), {"TOKENBROKER_ENTRA__AUTHORITY": "https://127.0.0.1:8443"})
    assert s.entra.authority == "https://127.0.0.1:8443"


def test_an_empty_environment_value_clears_an_array(load):
    s = load(entra(allowed_client_apps=[APP]), {"TOKENBROKER_ENTRA__ALLOWED_CLIENT_APPS": ""})
    assert s.entra.allowed_client_apps == ()


def test_environment_addresses_array_of_table_entries_by_name(load):
    s = load(client() + trusted(jwks_uri="", secret=GOOD_HMAC, algorithms=["HS256"]),
             {"TOKENBROKER_CLIENTS__PORTAL__CLIENT_SECRET": "from-env-0123456789abcdefghijklmnopq",
              "TOKENBROKER_TRUSTED_ISSUERS__PARTNER__SECRET": "t" * 40})
    assert s.client("portal").client_secret.reveal() == "from-env-0123456789abcdefghijklmnopq"
    assert s.trusted_issuer("partner").secret.reveal() == "t" * 40


def test_entry_names_match_case_insensitively_with_dashes_as_underscores(load):
    s = load(client(client_id="My-App.v2"), {"TOKENBROKER_CLIENTS__MY_APP_V2__ALLOWED_SCOPES": '["read"]'})
    assert s.client("My-App.v2").allowed_scopes == ("read",)


def test_an_environment_variable_for_a_missing_entry_is_an_error_naming_it(problems):
    found = problems(client(), {"TOKENBROKER_CLIENTS__GHOST__CLIENT_SECRET": "x"})
    assert names(found, "TOKENBROKER_CLIENTS__GHOST__CLIENT_SECRET:")


def test_environment_can_create_sections_absent_from_the_file(load):
    s = load("", {"TOKENBROKER_ENTRA__TENANT_ID": TENANT, "TOKENBROKER_ENTRA__CLIENT_ID": APP,
                  "TOKENBROKER_ENTRA__CLIENT_SECRET": "pw",
                  "TOKENBROKER_OBO__WORKSPACE__SCOPES": '["api://ws/a", "api://ws/b"]'})
    assert s.entra.tenant_id == TENANT
    assert s.obo["workspace"].scopes == ("api://ws/a", "api://ws/b")


def test_environment_overrides_an_obo_table_whose_name_has_a_dash(load):
    s = load(entra(client_secret="pw") + '[obo.my-api]\nscopes = ["api://a/x"]\n',
             {"TOKENBROKER_OBO__MY_API__SCOPES": '["api://b/y"]'})
    assert set(s.obo) == {"my-api"} and s.obo["my-api"].scopes == ("api://b/y",)


def test_flags_beat_environment_which_beats_the_file(load):
    text = '[server]\nhost = "file"\nport = 1\npublic_url = "http://file:1"\n'
    env = {"TOKENBROKER_SERVER__HOST": "env", "TOKENBROKER_SERVER__PORT": "2"}
    s = load(text, env, {"server.port": 0, "server.host": None})
    assert (s.server.host, s.server.port, s.server.public_url) == ("env", 0, "http://file:1")


def test_flags_address_array_entries_by_exact_name(load):
    s = load(client(), flags={"clients.portal.allowed_scopes": ["a"]})
    assert s.client("portal").allowed_scopes == ("a",)


def test_an_unknown_environment_variable_is_an_error_naming_it(problems):
    found = problems(entra(), {"TOKENBROKER_ENTRA__FOO": "1", "TOKENBROKER_NOPE__X": "1",
                               "TOKENBROKER_SERVER": "1"})
    assert "TOKENBROKER_ENTRA__FOO: unknown setting entra.foo" in found
    assert names(found, "TOKENBROKER_NOPE__X:") and names(found, "TOKENBROKER_SERVER:")


def test_tokenbroker_config_and_foreign_variables_are_not_settings(load):
    s = load("", {"TOKENBROKER_CONFIG": "/etc/x.toml", "PATH": "/bin", "tokenbroker_lower": "x"})
    assert s.server.port == 8080


def test_an_unknown_flag_is_an_error_naming_it(problems):
    assert names(problems("", flags={"server.workers_count": 3}), "server.workers_count:")


def test_a_mistyped_environment_value_names_the_key_and_the_variable(problems):
    found = problems("", {"TOKENBROKER_SERVER__PORT": "eighty"})
    assert any(p.startswith("server.port: expected an integer") and "TOKENBROKER_SERVER__PORT" in p
               for p in found)


# --- strictness ----------------------------------------------------------------------------

def test_an_unknown_key_in_the_file_is_an_error_naming_it(problems):
    assert "entra.clent_id: unknown key" in problems(entra(clent_id="x"))


def test_an_unknown_key_in_an_array_entry_names_the_entry(problems):
    assert "clients[portal].secret: unknown key" in problems(client(secret="x"))


def test_an_unknown_section_is_an_error_naming_it(problems):
    assert names(problems("[serve]\nport = 1\n"), "serve: unknown section")


def test_a_wrong_type_names_the_key_and_the_expected_type(problems):
    found = problems('[server]\nport = "80"\n' + entra(allow_app_only="yes", required_scopes="x"))
    assert names(found, "server.port: expected an integer")
    assert names(found, "entra.allow_app_only: expected a boolean")
    assert names(found, "entra.required_scopes: expected an array of strings")


def test_a_section_of_the_wrong_shape_is_an_error(problems):
    found = problems('server = 1\nclients = { client_id = "x" }\n')
    assert names(found, "server: expected a table") and names(found, "clients: expected an array")


def test_invalid_toml_is_a_configuration_error(problems):
    assert names(problems("[server\n"), "config: not valid TOML")


def test_several_problems_are_reported_at_once(problems):
    found = problems('[server]\nport = 70000\n[issuer]\nsigning_alg = "HS256"\n' + entra(tenant_id="x"),
                     {"TOKENBROKER_ENTRA__FOO": "1"})
    for prefix in ("server.port:", "issuer.signing_alg:", "entra.tenant_id:", "TOKENBROKER_ENTRA__FOO:"):
        assert names(found, prefix), (prefix, found)


# --- cross-key rules: each names its key ---------------------------------------------------

RULES = [
    ("entra tenant_id is required", entra(tenant_id=None), "entra.tenant_id:"),
    ("entra tenant_id must be a guid", entra(tenant_id="contoso"), "entra.tenant_id:"),
    ("entra client_id is required", entra(client_id=""), "entra.client_id:"),
    ("allowed tenants are guids", entra(allowed_tenants=["x"]), "entra.allowed_tenants:"),
    ("authority has no path", entra(authority="https://login.example/tenant"), "entra.authority:"),
    ("authority is https", entra(authority="http://login.example"), "entra.authority:"),
    ("at most one entra credential", entra(client_secret="pw", federated_token_file="tok"),
     "entra.federated_token_file: at most one"),
    ("entra certificate must exist", entra(client_certificate="nope.pem"), "entra.client_certificate:"),
    ("federated token file must exist", entra(federated_token_file="nope"), "entra.federated_token_file:"),
    ("entra timeout is positive", entra(timeout=0), "entra.timeout:"),
    ("clock skew is non-negative", entra(clock_skew=-1), "entra.clock_skew:"),
    ("ca bundle must exist", '[tls]\nca_bundle = "nope.pem"\n', "tls.ca_bundle:"),
    ("public url has no trailing slash", '[server]\npublic_url = "https://b.example/"\n', "server.public_url:"),
    ("public url is absolute", '[server]\npublic_url = "/broker"\n', "server.public_url:"),
    ("public url has no query", '[server]\npublic_url = "https://b.example?x=1"\n', "server.public_url:"),
    ("port is at most 65535", "[server]\nport = 65536\n", "server.port:"),
    ("port is not negative", "[server]\nport = -1\n", "server.port:"),
    ("shutdown grace is non-negative", "[server]\nshutdown_grace = -1\n", "server.shutdown_grace:"),
    ("identity token ttl at least 3600", acs(identity_token_ttl=3599), "acs.identity_token_ttl:"),
    ("identity token ttl at most 86400", acs(identity_token_ttl=86401), "acs.identity_token_ttl:"),
    ("acs endpoint is https", acs(endpoint="http://res.example"), "acs.endpoint:"),
    ("acs needs an endpoint or connection string", acs(endpoint=None), "acs.endpoint:"),
    ("acs key and connection string exclude each other",
     acs(access_key="a2V5", connection_string="endpoint=https://r.example/;accesskey=a2V5"),
     "acs.connection_string:"),
    ("acs needs teams client apps", acs(allowed_teams_client_apps=[]), "acs.allowed_teams_client_apps:"),
    ("acs access key is base64", acs(access_key="not base64!"), "acs.access_key:"),
    ("acs connection string parses", acs(connection_string="endpoint=https://r.example/"),
     "acs.connection_string:"),
    ("acs identity scopes are acs scopes", acs(identity_scopes=["chat", "email"]), "acs.identity_scopes:"),
    ("acs timeout is positive", acs(timeout=0), "acs.timeout:"),
    ("obo scopes are required", entra(client_secret="pw") + "[obo.ws]\nscopes = []\n", "obo.ws.scopes:"),
    ("obo scopes are for one resource",
     entra(client_secret="pw") + '[obo.ws]\nscopes = ["api://x/a", "api://y/b"]\n', "obo.ws.scopes:"),
    ("obo names are lower-case slugs", entra(client_secret="pw") + '[obo.Work]\nscopes = ["api://x/a"]\n',
     "obo.Work:"),
    ("obo needs an entra credential", entra() + '[obo.ws]\nscopes = ["api://x/a"]\n', "obo:"),
    ("obo table has only scopes", entra(client_secret="pw") + '[obo.ws]\nscopes = ["api://x/a"]\nx = 1\n',
     "obo.ws.x: unknown key"),
    ("signing alg is es256 rs256 or eddsa", '[issuer]\nsigning_alg = "HS256"\n', "issuer.signing_alg:"),
    ("issuer ttl is positive", "[issuer]\naccess_token_ttl = 0\n", "issuer.access_token_ttl:"),
    ("key activation delay is non-negative", "[issuer]\nkey_activation_delay = -5\n",
     "issuer.key_activation_delay:"),
    ("trusted issuer names are unique", trusted() + trusted(), "trusted_issuers[partner].name: duplicate"),
    ("trusted issuer name entra is reserved", trusted(name="entra"), "trusted_issuers[entra].name:"),
    ("trusted issuer name self is reserved", trusted(name="self"), "trusted_issuers[self].name:"),
    ("trusted issuer needs a name", trusted(name=None), "trusted_issuers[0].name:"),
    ("trusted issuer needs its iss", trusted(issuer=""), "trusted_issuers[partner].issuer:"),
    ("trusted issuer needs a key source", trusted(jwks_uri=None), "trusted_issuers[partner].jwks_uri:"),
    ("trusted issuer has one key source", trusted(secret=GOOD_HMAC), "trusted_issuers[partner].jwks_uri:"),
    ("hmac secret is at least 32 bytes", trusted(jwks_uri="", secret="short", algorithms=["HS256"]),
     "trusted_issuers[partner].secret:"),
    ("jwks uri is https", trusted(jwks_uri="http://auth.partner.example/jwks"),
     "trusted_issuers[partner].jwks_uri:"),
    ("trusted certificate must exist", trusted(jwks_uri="", certificate="nope.pem"),
     "trusted_issuers[partner].certificate:"),
    ("alg none is never accepted", trusted(algorithms=["none"]), "trusted_issuers[partner].algorithms:"),
    ("unknown algorithms are refused", trusted(algorithms=["RS1"]), "trusted_issuers[partner].algorithms:"),
    ("hs algorithms only with a secret", trusted(algorithms=["HS256"]), "trusted_issuers[partner].algorithms:"),
    ("key algorithms not with a secret", trusted(jwks_uri="", secret=GOOD_HMAC),
     "trusted_issuers[partner].algorithms:"),
    ("trusted issuer needs audiences", trusted(audiences=[]), "trusted_issuers[partner].audiences:"),
    ("linking is an enum", trusted(linking="auto"), "trusted_issuers[partner].linking:"),
    ("link by attribute needs lookup attributes", trusted(linking="link_by_attribute"),
     "trusted_issuers[partner].lookup_attributes:"),
    ("max token age is non-negative", trusted(max_token_age=-1), "trusted_issuers[partner].max_token_age:"),
    ("client ids are unique", client() + client(), "clients[portal].client_id: duplicate"),
    ("client needs an id", client(client_id=None), "clients[0].client_id:"),
    ("client needs a secret or jwks", client(client_secret=None), "clients[portal].client_secret:"),
    ("client has a secret or jwks not both", client(jwks="keys.json"), "clients[portal].client_secret:"),
    ("client jwks must exist", client(client_secret=None, jwks="nope.json"), "clients[portal].jwks:"),
    ("hashed secret is 64 hex", client(client_secret="sha256:abc"), "clients[portal].client_secret:"),
    ("grant types are supported ones", client(grant_types=["client_credentials"]), "clients[portal].grant_types:"),
    ("allowed issuer entra needs entra", client(allowed_issuers=["entra"]), "clients[portal].allowed_issuers:"),
    ("allowed issuers are known", client(allowed_issuers=["ghost"]), "clients[portal].allowed_issuers:"),
    ("token format is jwt or opaque", client(token_format="jwe"), "clients[portal].token_format:"),
    ("client ttl is non-negative", client(access_token_ttl=-1), "clients[portal].access_token_ttl:"),
    ("federated identities need every field",
     trusted() + client(federated_identities=[{"issuer": "partner", "audience": "a"}]),
     "clients[portal].federated_identities[0].subject:"),
    ("federated identity issuers are trusted issuers",
     client(federated_identities=[{"issuer": "ghost", "subject": "s", "audience": "a"}]),
     "clients[portal].federated_identities[0].issuer:"),
    ("federated identity pairs belong to one client",
     trusted() + client(federated_identities=[{"issuer": "partner", "subject": "s", "audience": "a"}])
     + client(client_id="other", federated_identities=[{"issuer": "partner", "subject": "s", "audience": "b"}]),
     "clients[other].federated_identities[0].subject:"),
    ("cors never allows a wildcard", '[cors]\nallowed_origins = ["*"]\n', "cors.allowed_origins:"),
    ("cors origins have no path", '[cors]\nallowed_origins = ["https://a.example/app"]\n', "cors.allowed_origins:"),
    ("cors origins have no trailing slash", '[cors]\nallowed_origins = ["https://a.example/"]\n',
     "cors.allowed_origins:"),
    ("cors origins are urls", '[cors]\nallowed_origins = ["a.example"]\n', "cors.allowed_origins:"),
    ("store url has a known scheme", '[store]\nurl = "postgres://db"\n', "store.url:"),
    ("a managed identity excludes the access key", acs(managed_identity=True, access_key="a2V5"),
     "acs.managed_identity:"),
    ("a managed identity excludes the connection string",
     acs(endpoint=None, managed_identity=True, connection_string="endpoint=https://r.example/;accesskey=a2V5"),
     "acs.managed_identity:"),
    ("a managed identity client id needs managed_identity",
     acs(managed_identity_client_id="11111111-2222-3333-4444-555555555555"), "acs.managed_identity_client_id:"),
    ("a managed identity client id is a GUID",
     acs(managed_identity=True, managed_identity_client_id="my-identity"), "acs.managed_identity_client_id:"),
]


@pytest.mark.parametrize(("text", "prefix"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_cross_key_rule_is_an_error_naming_its_key(problems, text, prefix):
    found = problems(text)
    assert names(found, prefix), found


def test_http_is_allowed_for_localhost_endpoints(load):
    s = load(entra(authority="http://127.0.0.1:9443") + acs(endpoint="http://localhost:9444")
             + trusted(jwks_uri="http://127.0.0.1:9445/jwks"))
    assert s.entra.authority == "http://127.0.0.1:9443" and s.acs.endpoint == "http://localhost:9444"


def test_a_connection_string_alone_configures_acs(load):
    s = load(acs(endpoint=None, connection_string="endpoint=https://r.example/;accesskey=a2V5"))
    assert s.acs.endpoint == "https://r.example"
    assert s.acs.connection_string.reveal().startswith("endpoint=")


def test_a_managed_identity_configures_acs_without_a_key_or_entra(load):
    s = load(acs(managed_identity=True))
    assert s.acs.managed_identity is True and s.acs.managed_identity_client_id == ""
    assert not s.acs.access_key and not s.acs.connection_string and s.entra is None
    user = load(acs(managed_identity=True, managed_identity_client_id=APP)).acs
    assert user.managed_identity_client_id == APP


def test_managed_identity_comes_from_the_environment_too(load):
    s = load(acs(), {"TOKENBROKER_ACS__MANAGED_IDENTITY": "true",
                     "TOKENBROKER_ACS__MANAGED_IDENTITY_CLIENT_ID": APP})
    assert (s.acs.managed_identity, s.acs.managed_identity_client_id) == (True, APP)


def test_hmac_trusted_issuers_and_hashed_client_secrets_are_accepted(load):
    s = load(trusted(jwks_uri="", secret=GOOD_HMAC, algorithms=["HS256", "HS512"])
             + client(client_secret=HASHED, allowed_issuers=["partner", "self"]))
    assert s.trusted_issuers[0].algorithms == ("HS256", "HS512")
    assert s.clients[0].client_secret.reveal() == HASHED


def test_obo_scopes_for_one_resource_may_include_oidc_scopes(load):
    s = load(entra(client_secret="pw") + '[obo.ws]\nscopes = ["api://x/a", "api://x/b", "offline_access"]\n')
    assert s.obo["ws"].scopes == ("api://x/a", "api://x/b", "offline_access")


# --- secrets, immutability, direct construction ---------------------------------------------

SECRETS = ["entra-secret-value", "a2V5LXZhbHVl", "endpoint=https://r.example/;accesskey=Y3MtdmFsdWU=",
           "trusted-secret-value-0123456789abcdef", "client-secret-value-0123456789abcdef", "redis-password",
           "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]


def test_secrets_never_appear_in_repr_str_or_describe(load):
    s = load(entra(client_secret=SECRETS[0]) + acs(access_key=SECRETS[1])
             + trusted(name="hs", jwks_uri="", secret=SECRETS[3], algorithms=["HS256"])
             + client(client_secret=SECRETS[4])
             + f'[store]\nurl = "redis://user:{SECRETS[5]}@127.0.0.1:6379/0"\n'
             + f'encryption_key = "{SECRETS[6]}"\nprevious_encryption_keys = ["{SECRETS[6]}"]\n')
    view = json.dumps(describe(s))
    for text in (repr(s), str(s), view):
        for secret in SECRETS[:2] + SECRETS[3:]:
            assert secret not in text
    assert s.entra.client_secret.reveal() == SECRETS[0]
    assert describe(s)["entra"]["client_secret"] == "**********"
    assert "127.0.0.1:6379" in describe(s)["store"]["url"]


def test_a_connection_string_is_masked_too(load):
    s = load(acs(endpoint=None, connection_string=SECRETS[2]))
    assert "Y3MtdmFsdWU" not in repr(s) and "Y3MtdmFsdWU" not in json.dumps(describe(s))


def test_a_secret_masks_itself_and_compares_by_value():
    secret = Secret("hunter2")
    assert repr(secret) == "Secret('**********')" and str(secret) == "**********"
    assert secret.reveal() == "hunter2" and secret == Secret("hunter2") and secret != Secret("x")
    assert bool(secret) and not Secret("")
    with pytest.raises(AttributeError):
        secret._value = "x"


def test_settings_are_frozen(load):
    s = load(entra(scope_map={"a": ["b"]}) + client())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.server.port = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.entra = None
    with pytest.raises(TypeError):
        s.entra.scope_map["c"] = ("d",)
    with pytest.raises(TypeError):
        s.obo["x"] = None
    assert isinstance(s.clients, tuple) and isinstance(s.clients[0].grant_types, tuple)


def test_settings_built_directly_resolve_like_loaded_ones():
    s = Settings(entra=EntraSettings(tenant_id=TENANT, client_id=APP, client_secret="pw",
                                     required_scopes=["x"]),
                 clients=[ClientSettings(client_id="c", client_secret="s")],
                 issuer=IssuerSettings(access_token_ttl=60))
    assert s.entra.audiences == (APP, f"api://{APP}") and s.entra.required_scopes == ("x",)
    assert isinstance(s.entra.client_secret, Secret) and "pw" not in repr(s)
    assert s.client("c").access_token_ttl == 60 and s.server.public_url == "http://127.0.0.1:8080"


def test_secrets_survive_copying_without_showing_themselves():
    import copy
    import pickle
    secret = Secret("hunter2")
    assert copy.deepcopy(secret).reveal() == "hunter2"
    assert pickle.loads(pickle.dumps(secret)) == secret
