"""Every row of CONTRACT §3's refusal table at POST /oauth2/token, plus hostile request shapes."""

from __future__ import annotations

import base64

import pytest

from tests.http.token_support import (
    ACCESS_TOKEN,
    PARTNER_ISS,
    TOKEN_EXCHANGE,
    basic,
    exchange_form,
    exchange_ok,
    partner_token,
    post_token,
)
from tests.support.oauth import refused as refused_exactly


async def refused(resp, status: int, error: str) -> dict:
    return await refused_exactly(resp, status, error, exact=True)


# --- 400 invalid_request: malformed requests ------------------------------------------------

@pytest.mark.parametrize("drop", ["subject_token", "subject_token_type"])
async def test_a_missing_parameter_is_invalid_request(client, drop):
    form = [(k, v) for k, v in exchange_form(partner_token()) if k != drop]
    await refused(await post_token(client, form), 400, "invalid_request")


@pytest.mark.parametrize("name", ["subject_token", "subject_token_type", "scope", "grant_type",
                                  "requested_token_type"])
async def test_a_repeated_single_valued_parameter_is_invalid_request(client, name):
    form = exchange_form(partner_token(), scope="read", requested_token_type=ACCESS_TOKEN)
    value = dict(form)[name]
    await refused(await post_token(client, [*form, (name, value)]), 400, "invalid_request")


async def test_audience_and_resource_may_repeat(client):
    form = exchange_form(partner_token(), audience=["dashboard", "reports"]) + [("resource", "reports")]
    await exchange_ok(client, form)


@pytest.mark.parametrize("extra", [[("actor_token", "x.y.z")], [("actor_token_type", ACCESS_TOKEN)]])
async def test_an_actor_token_without_its_type_or_vice_versa_is_invalid_request(client, extra):
    await refused(await post_token(client, exchange_form(partner_token()) + extra), 400, "invalid_request")


async def test_an_actor_equal_to_the_subject_is_invalid_request(client):
    form = exchange_form(partner_token()) + [("actor_token", partner_token()), ("actor_token_type", ACCESS_TOKEN)]
    await refused(await post_token(client, form), 400, "invalid_request")


async def test_an_unknown_subject_token_type_is_invalid_request(client):
    form = exchange_form(partner_token(), subject_token_type="urn:ietf:params:oauth:token-type:saml2")
    await refused(await post_token(client, form), 400, "invalid_request")


async def test_an_unknown_requested_token_type_is_invalid_request(client):
    form = exchange_form(partner_token(), requested_token_type="urn:ietf:params:oauth:token-type:saml2")
    await refused(await post_token(client, form), 400, "invalid_request")


async def test_no_target_is_invalid_target(client):
    await refused(await post_token(client, exchange_form(partner_token(), audience=None)), 400, "invalid_target")


async def test_a_json_body_is_invalid_request(client):
    resp = await client.post("/oauth2/token", json=dict(exchange_form(partner_token())), headers=basic("portal"))
    await refused(resp, 400, "invalid_request")


async def test_a_body_that_is_not_utf8_is_invalid_request(client):
    body = b"grant_type=" + TOKEN_EXCHANGE.encode() + b"&subject_token=%ff%fe&subject_token_type=x"
    resp = await client.post("/oauth2/token", data=body, headers={
        **basic("portal"), "Content-Type": "application/x-www-form-urlencoded"})
    await refused(resp, 400, "invalid_request")


async def test_a_missing_grant_type_is_invalid_request(client):
    form = [(k, v) for k, v in exchange_form(partner_token()) if k != "grant_type"]
    await refused(await post_token(client, form), 400, "invalid_request")


# --- 401 invalid_client ---------------------------------------------------------------------

async def test_an_unknown_client_is_invalid_client_with_a_basic_challenge(client):
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()), headers=basic("nobody", "x"))
    await refused(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_a_wrong_secret_is_invalid_client(client):
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()), headers=basic("portal", "nope"))
    await refused(resp, 401, "invalid_client")


async def test_a_hashed_secret_is_checked(client):
    ok = await client.post("/oauth2/token", headers=basic("dashboard"),
                           data=[("grant_type", "refresh_token"), ("refresh_token", "x")])
    assert (await ok.json())["error"] != "invalid_client"
    bad = await client.post("/oauth2/token", headers=basic("dashboard", "sha256:whatever"),
                            data=[("grant_type", "refresh_token"), ("refresh_token", "x")])
    await refused(bad, 401, "invalid_client")


async def test_no_client_authentication_is_invalid_client_without_a_challenge(client):
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()) + [("client_id", "portal")])
    await refused(resp, 401, "invalid_client")
    assert "WWW-Authenticate" not in resp.headers


async def test_two_authentication_methods_are_invalid_client(client):
    form = exchange_form(partner_token()) + [("client_id", "portal"), ("client_secret", "portal secret:with+special&chars%")]
    resp = await client.post("/oauth2/token", data=form, headers=basic("portal"))
    await refused(resp, 401, "invalid_client")


async def test_a_garbled_basic_header_is_invalid_client(client):
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()),
                             headers={"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()})
    await refused(resp, 401, "invalid_client")


# --- 400 unauthorized_client / unsupported_grant_type --------------------------------------

async def test_a_grant_the_client_may_not_use_is_unauthorized_client(client):
    resp = await post_token(client, exchange_form(partner_token()), auth="inspector")
    await refused(resp, 400, "unauthorized_client")


async def test_an_unknown_grant_type_is_unsupported_grant_type(client):
    resp = await post_token(client, [("grant_type", "password"), ("username", "a"), ("password", "b")])
    await refused(resp, 400, "unsupported_grant_type")


# --- 400 invalid_request: unacceptable subject tokens ---------------------------------------

@pytest.mark.parametrize("token", [
    pytest.param(lambda: partner_token(secret="another-secret-of-at-least-32-bytes!!"), id="bad-signature"),
    pytest.param(lambda: partner_token(lifetime=-120), id="expired"),
    pytest.param(lambda: partner_token(aud="https://someone-else.example"), id="wrong-audience"),
    pytest.param(lambda: partner_token(iss="https://unknown.example"), id="untrusted-issuer"),
    pytest.param(lambda: partner_token(iss=PARTNER_ISS + "/"), id="issuer-not-exact"),
    pytest.param(lambda: partner_token(exp=None), id="no-exp"),
    pytest.param(lambda: partner_token(nbf=2_000_000_000), id="not-yet-valid"),
    pytest.param(lambda: "not-a-jwt", id="garbage"),
    pytest.param(lambda: partner_token()[:-4], id="truncated"),
])
async def test_an_unacceptable_subject_token_is_invalid_request(client, token):
    body = await refused(await post_token(client, exchange_form(token())), 400, "invalid_request")
    assert "signature" not in body["error_description"].lower()   # the reason stays in the log


async def test_a_subject_token_of_an_issuer_the_client_may_not_use_is_invalid_request(client):
    resp = await post_token(client, exchange_form(partner_token(), audience="reports"), auth="dashboard")
    await refused(resp, 400, "invalid_request")


async def test_a_token_with_an_algorithm_not_allowed_for_the_issuer_is_invalid_request(client):
    import hashlib
    import hmac
    import json
    enc = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    payload = json.loads(base64.urlsafe_b64decode(partner_token().split(".")[1] + "=="))
    header = enc(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    signing_input = f"{header}.{enc(json.dumps(payload).encode())}"
    mac = hmac.new(b"partner-hmac-secret-of-at-least-32-bytes!", signing_input.encode(), hashlib.sha512).digest()
    forged = f"{signing_input}.{enc(mac)}"
    await refused(await post_token(client, exchange_form(forged)), 400, "invalid_request")


# --- 400 invalid_target / invalid_scope -----------------------------------------------------

async def test_an_audience_not_allowed_for_the_client_is_invalid_target(client):
    await refused(await post_token(client, exchange_form(partner_token(), audience="archive")), 400, "invalid_target")


async def test_one_disallowed_audience_among_several_is_invalid_target(client):
    form = exchange_form(partner_token(), audience=["dashboard", "archive"])
    await refused(await post_token(client, form), 400, "invalid_target")


async def test_a_disallowed_resource_is_invalid_target(client):
    form = exchange_form(partner_token(), audience=None, resource="https://graph.microsoft.com")
    await refused(await post_token(client, form), 400, "invalid_target")


async def test_a_scope_beyond_the_client_is_invalid_scope(client):
    await refused(await post_token(client, exchange_form(partner_token(), scope="read admin")), 400, "invalid_scope")


# --- 400 invalid_grant ----------------------------------------------------------------------

async def test_an_unknown_refresh_token_is_invalid_grant(client):
    resp = await post_token(client, [("grant_type", "refresh_token"), ("refresh_token", "nope")])
    await refused(resp, 400, "invalid_grant")


# --- hostile shapes never reach a 500 -------------------------------------------------------

@pytest.mark.parametrize("token", ["x" * 20000, "é.é.é", "a..b", "eyJ9.eyJ9.", "\x00"])
async def test_hostile_subject_tokens_are_invalid_request(client, token):
    await refused(await post_token(client, exchange_form(token)), 400, "invalid_request")


async def test_an_oversized_form_is_refused_as_json(client):
    resp = await post_token(client, exchange_form(partner_token(), scope="read " * 20000))
    assert resp.status == 413
    assert (await resp.json())["error"] == "invalid_request"


async def test_a_get_is_method_not_allowed(client):
    resp = await client.get("/oauth2/token")
    assert resp.status == 405
    assert resp.content_type == "application/json"


async def test_our_token_presented_as_subject_by_a_client_it_does_not_name_is_refused(client):
    issued = await exchange_ok(client, exchange_form(partner_token()))
    resp = await post_token(client, exchange_form(issued["access_token"], audience="archive"), auth="reports")
    await refused(resp, 400, "invalid_request")
