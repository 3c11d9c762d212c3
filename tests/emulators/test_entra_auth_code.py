"""Real msal auth code + PKCE against the emulator, following the redirects and the sign-in page."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import jwt
import msal
import pytest

from emulators.entra import demo

REDIRECT = "http://localhost:53111/auth/callback"

# msal 1.39 recommends form_post with a UserWarning; the query mode is tested on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")


def _confidential(entra, tenant: str | None = None) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        demo.CLIENT_ID, client_credential=demo.CLIENT_SECRET, authority=entra.authority(tenant),
        instance_discovery=False, http_client=entra.http())


class _Forms(HTMLParser):
    """Collects each form's action and inputs, keyed by the form's submit button data-testid."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict] = {}
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = {"action": a.get("action"), "fields": {}}
        elif tag == "input" and self._current is not None:
            self._current["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and self._current is not None and a.get("data-testid"):
            self.forms[a["data-testid"]] = self._current


def _redirect_params(resp) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT.split("?")[0]) or location.startswith("http://")
    parts = urlsplit(location)
    return dict(parse_qsl(parts.query or parts.fragment))


def test_confidential_client_auth_code_with_login_hint_gets_tokens_and_an_account(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri=REDIRECT, login_hint=demo.ALICE_UPN)
    resp = entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10)
    params = _redirect_params(resp)
    assert params["state"] == flow["state"] and "client_info" in params and "session_state" in params
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == demo.BROKER_CLIENT_ID and claims["scp"] == "user_impersonation"
    assert claims["azp"] == demo.CLIENT_ID and claims["azpacr"] == "1" and claims["oid"] == demo.ALICE_OID
    assert result["id_token_claims"]["nonce"]  # msal itself checked it against the flow
    assert result["scope"] == demo.BROKER_SCOPE and "refresh_token" in result
    accounts = app.get_accounts()
    assert accounts[0]["home_account_id"] == f"{demo.ALICE_OID}.{demo.TENANT_ID}"
    assert accounts[0]["username"] == demo.ALICE_UPN
    # a silent call is served from the cache: no new token request
    before = len(entra.requests(path="/token"))
    silent = app.acquire_token_silent([demo.BROKER_SCOPE], account=accounts[0])
    assert silent["access_token"] == result["access_token"]
    assert len(entra.requests(path="/token")) == before


def test_the_sign_in_page_lists_users_and_a_picked_user_gets_a_code(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri=REDIRECT)
    http = entra.http()
    page = http.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "Sign in as Alice Example" in page.text and "Sign in as Bob Example" in page.text
    forms = _Forms()
    forms.feed(page.text)
    bob = forms.forms["signin-bob"]
    action = bob["action"] if bob["action"].startswith("https") else f"{entra.url}{bob['action']}"
    resp = http.post(action, data=bob["fields"], allow_redirects=False, timeout=10)
    result = app.acquire_token_by_auth_code_flow(flow, _redirect_params(resp))
    assert result.get("id_token_claims", {}).get("oid") == demo.BOB_OID, result
    assert result["id_token_claims"]["preferred_username"] == demo.BOB_UPN


def test_form_post_response_mode_answers_an_auto_submitting_form(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri=REDIRECT, login_hint="alice",
                                       response_mode="form_post")
    page = entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert page.status_code == 200
    forms = _Forms()
    forms.feed(page.text.replace("<noscript>", "").replace(
        '<button type="submit">', '<button type="submit" data-testid="go">'))
    assert forms.forms["go"]["action"] == REDIRECT
    fields = forms.forms["go"]["fields"]
    assert re.search(r"<script>document\.getElementById\(\"form_post\"\)\.submit\(\)</script>", page.text)
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert "access_token" in result, result


def test_public_client_auth_code_with_pkce_and_no_secret(entra):
    app = msal.PublicClientApplication(demo.PUBLIC_CLIENT_ID, authority=entra.authority(),
                                       instance_discovery=False, http_client=entra.http())
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri="http://localhost:49152",
                                       login_hint=demo.BOB_UPN)
    params = _redirect_params(entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10))
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["azp"] == demo.PUBLIC_CLIENT_ID and claims["azpacr"] == "0"


def test_refresh_with_force_refresh_rotates_the_refresh_token(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri=REDIRECT, login_hint="alice")
    first = app.acquire_token_by_auth_code_flow(
        flow, _redirect_params(entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10)))
    account = app.get_accounts()[0]
    refreshed = app.acquire_token_silent([demo.BROKER_SCOPE], account=account, force_refresh=True)
    assert refreshed and refreshed["access_token"] != first["access_token"]
    log = entra.requests(grant_type="refresh_token")
    assert len(log) == 1 and log[0]["client_id"] == demo.CLIENT_ID
    # the spent refresh token no longer works
    again = _confidential(entra).acquire_token_by_refresh_token(first["refresh_token"], [demo.BROKER_SCOPE])
    assert again["error"] == "invalid_grant"


def test_an_expired_access_token_is_refreshed_silently(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.ACS_TEAMS_SCOPES[0]], redirect_uri=REDIRECT, login_hint="alice")
    first = app.acquire_token_by_auth_code_flow(
        flow, _redirect_params(entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10)))
    assert jwt.decode(first["access_token"], options={"verify_signature": False})["aud"] == demo.ACS_APP_ID_URI
    # make msal see the cached AT as expired
    for at in app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN):
        at["expires_on"] = "0"
    account = app.get_accounts()[0]
    again = app.acquire_token_silent([demo.ACS_TEAMS_SCOPES[0]], account=account)
    assert again and again["access_token"] != first["access_token"]
    assert len(entra.requests(grant_type="refresh_token")) == 1


def test_a_code_is_single_use_and_pkce_is_checked(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri=REDIRECT, login_hint="alice")
    params = _redirect_params(entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10))
    bad_flow = dict(flow, code_verifier="x" * 43)
    wrong = _confidential(entra).acquire_token_by_auth_code_flow(bad_flow, params)
    assert wrong["error_codes"] == [501481]
    ok = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in ok
    reused = _confidential(entra).acquire_token_by_auth_code_flow(flow, params)
    assert reused["error"] == "invalid_grant" and reused["error_codes"] == [54005]


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri="https://evil.example/cb",
                                       login_hint="alice")
    resp = entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert resp.status_code == 400 and "AADSTS50011" in resp.text


def test_scopes_of_two_resources_are_refused_with_700022(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE, demo.ACS_TEAMS_SCOPES[0]], redirect_uri=REDIRECT,
                                       login_hint="alice")
    params = _redirect_params(entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10))
    assert params["error"] == "invalid_scope" and params["error_description"].startswith("AADSTS700022")
    assert params["state"] == flow["state"]


def test_a_user_of_the_partner_tenant_gets_a_token_in_that_tenant(entra):
    app = _confidential(entra, demo.PARTNER_TENANT_ID)
    flow = app.initiate_auth_code_flow([demo.BROKER_SCOPE], redirect_uri="http://127.0.0.1:5000/auth/callback",
                                       login_hint=demo.CAROL_UPN)
    params = _redirect_params(entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10))
    result = app.acquire_token_by_auth_code_flow(flow, params)
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["tid"] == demo.PARTNER_TENANT_ID
    assert claims["iss"] == f"{entra.url}/{demo.PARTNER_TENANT_ID}/v2.0"


def test_bare_graph_scopes_give_a_v1_graph_token_and_short_scope_names(entra):
    app = _confidential(entra)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT, login_hint="bob")
    result = app.acquire_token_by_auth_code_flow(
        flow, _redirect_params(entra.http().get(flow["auth_uri"], allow_redirects=False, timeout=10)))
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == demo.GRAPH_APP_ID_URI and claims["ver"] == "1.0" and claims["scp"] == "User.Read"
    assert "User.Read" in result["scope"].split()
    assert app.acquire_token_silent(["User.Read"], account=app.get_accounts()[0])["access_token"] == \
        result["access_token"]


def test_an_unknown_client_gets_an_error_page(entra):
    resp = entra.http().get(f"{entra.url}/{demo.TENANT_ID}/oauth2/v2.0/authorize", timeout=10,
                            params={"client_id": "00000000-0000-0000-0000-0000000000aa", "response_type": "code",
                                    "redirect_uri": REDIRECT, "scope": "openid"}, allow_redirects=False)
    assert resp.status_code == 400 and "AADSTS700016" in resp.text
