"""Sign-in and sign-out through the real Entra emulator (msal auth code flow, PKCE, nonce)."""

from __future__ import annotations

import html
import re

from yarl import URL

from emulators.entra import demo
from minimal_client.sessions import COOKIE_NAME

from .flows import authorize, csrf_token, finish, form_post, sign_in


async def test_login_redirects_to_the_authorize_endpoint_with_pkce_state_and_nonce(client, entra):
    resp = await client.get("/login", allow_redirects=False)
    assert resp.status == 302
    location = URL(resp.headers["Location"])
    assert str(location.with_query(None)) == f"{entra.url}/{entra.tenant_id}/oauth2/v2.0/authorize"
    q = location.query
    assert q["client_id"] == demo.CLIENT_ID and q["response_type"] == "code"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["state"] and q["nonce"]
    assert q["redirect_uri"] == f"http://127.0.0.1:{client.port}/auth/callback"
    assert q["response_mode"] == "form_post"
    assert demo.BROKER_SCOPE in q["scope"].split() and "openid" in q["scope"].split()
    cookie = resp.cookies[COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert resp.headers["Content-Security-Policy"].endswith(f"form-action 'self' {entra.url}")


async def test_the_code_is_redeemed_with_the_pkce_verifier_and_the_user_lands_signed_in(client, idp, entra):
    login = await client.get("/login", allow_redirects=False)
    challenge = URL(login.headers["Location"]).query["code_challenge"]
    page = await idp.get(URL(login.headers["Location"]).update_query(login_hint="alice"),
                         allow_redirects=False)
    done = await finish(client, *form_post(await page.text()))
    assert done.status == 303
    # The emulator checks the code_verifier against this challenge (AADSTS501481 otherwise).
    assert len(challenge) == 43
    redeem = entra.requests(grant_type="authorization_code")[-1]
    assert redeem["status"] == 200 and redeem["client_id"] == demo.CLIENT_ID
    assert redeem["redirect_uri"] == f"http://127.0.0.1:{client.port}/auth/callback"
    html = await (await client.get("/")).text()
    assert f'<span id="whoami">{demo.ALICE_NAME}</span>' in html
    assert demo.ALICE_OID in html and demo.TENANT_ID in html and demo.ALICE_UPN in html
    for button in ("btn-teams", "btn-obo-workspace", "btn-acs", "btn-logout"):
        assert f'id="{button}"' in html
    assert "decoded, not verified" in html


async def test_signing_in_on_the_emulators_picker_page_works_too(client, idp):
    resp = await client.get("/login", allow_redirects=False)
    page = await idp.get(resp.headers["Location"], allow_redirects=False)
    assert page.status == 200
    picker = await page.text()
    form = re.search(r'<form method="post" action="([^"]+)" id="signin-bob">(.*?)</form>', picker, re.S)
    assert form, "no sign-in form for Bob"
    fields = {html.unescape(k): html.unescape(v) for k, v in
              re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(2))}
    picked = await idp.post(URL(resp.headers["Location"]).with_path(html.unescape(form.group(1)))
                            .with_query(None), data=fields, allow_redirects=False)
    assert picked.status == 200
    done = await finish(client, *form_post(await picked.text()))
    assert done.status == 303
    assert f'<span id="whoami">{demo.BOB_NAME}</span>' in await (await client.get("/")).text()


async def test_the_session_id_changes_at_sign_in(client, idp):
    await client.get("/login", allow_redirects=False)
    before = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE_NAME].value
    await sign_in(client, idp)
    after = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE_NAME].value
    assert before != after


async def test_a_replayed_callback_is_refused_on_the_page(client, idp):
    target, fields = await authorize(client, idp, "/login", demo.ALICE_UPN)
    assert (await finish(client, target, fields)).status == 303
    again = await finish(client, target, fields)
    assert again.status == 400
    assert "no_pending_sign_in" in await again.text()


async def test_an_error_from_the_authority_is_shown_on_the_page(client, idp, entra):
    entra.inject_fault(grant_type="authorization_code", status=400, error="invalid_grant", aadsts=54005)
    resp = await finish(client, *(await authorize(client, idp, "/login", demo.ALICE_UPN)))
    assert resp.status == 400
    html = await resp.text()
    assert "invalid_grant" in html and "54005" in html
    assert 'id="btn-login"' in html and 'id="whoami"' not in html


async def test_logout_needs_the_csrf_token_then_forgets_the_session(client, idp):
    await sign_in(client, idp)
    refused = await client.post("/logout", data={"csrf_token": "wrong"}, allow_redirects=False)
    assert refused.status == 403
    assert 'id="whoami"' in await (await client.get("/")).text()

    token = await csrf_token(client)
    resp = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    html = await (await client.get("/")).text()
    assert 'id="btn-login"' in html and 'id="whoami"' not in html
    after = await client.post("/action/acs-identity", headers={"X-CSRF-Token": token})
    assert after.status == 401


async def test_the_session_cookie_is_secure_when_configured(aiohttp_client, client_config):
    import dataclasses

    from minimal_client import create_app
    secure = await aiohttp_client(create_app(dataclasses.replace(client_config, cookie_secure=True)))
    resp = await secure.get("/login", allow_redirects=False)
    cookie = resp.cookies[COOKIE_NAME]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
