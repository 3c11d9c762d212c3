"""The page shell without an identity provider: security headers, static assets, guards."""

from __future__ import annotations

import re

import pytest

from minimal_client import ClientConfig, create_app

AUTHORITY = "https://127.0.0.1:9"   # never contacted by these tests


@pytest.fixture(name="client")
async def _client(aiohttp_client):
    cfg = ClientConfig(authority=AUTHORITY, tenant="t", client_id="c", client_secret="s",
                       broker_url="http://127.0.0.1:9", broker_app_id="b")
    return await aiohttp_client(create_app(cfg))


def _assert_security_headers(resp) -> None:
    csp = resp.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                      "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
                      f"form-action 'self' {AUTHORITY}"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_the_signed_out_page_has_security_headers_and_a_sign_in_button(client):
    resp = await client.get("/")
    assert resp.status == 200
    _assert_security_headers(resp)
    assert resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    assert 'id="btn-login"' in html and 'href="/login"' in html
    assert 'id="whoami"' not in html
    assert "Set-Cookie" not in resp.headers      # no session for anonymous visitors


async def test_pages_carry_no_inline_script_or_style(client):
    html = await (await client.get("/")).text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "<style" not in html and " style=" not in html and " onclick=" not in html


async def test_static_assets_are_served_with_the_same_headers(client):
    for path, kind in (("/static/app.js", "javascript"), ("/static/app.css", "text/css")):
        resp = await client.get(path)
        assert resp.status == 200
        assert kind in resp.headers["Content-Type"]
        _assert_security_headers(resp)


async def test_errors_and_unknown_routes_carry_the_headers_too(client):
    resp = await client.get("/no-such-page")
    assert resp.status == 404
    _assert_security_headers(resp)


async def test_actions_need_a_signed_in_session(client):
    for path in ("/action/teams", "/action/obo/workspace", "/action/acs-identity"):
        resp = await client.post(path, headers={"X-CSRF-Token": "x"})
        assert resp.status == 401
        body = await resp.json()
        assert body["error"] == "login_required" and body["login_url"] == "/login"
        _assert_security_headers(resp)


async def test_a_callback_without_a_pending_sign_in_shows_the_error_on_the_page(client):
    resp = await client.get("/auth/callback", params={
        "error": "access_denied", "error_description": "AADSTS65004: User declined to consent.",
        "state": "nope"})
    assert resp.status == 400
    html = await resp.text()
    assert "access_denied" in html and "AADSTS65004" in html
    assert 'id="btn-login"' in html


async def test_a_callback_with_html_in_the_error_is_escaped(client):
    resp = await client.get("/auth/callback", params={"error": "<script>alert(1)</script>"})
    html = await resp.text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


async def test_logout_without_a_session_just_clears_the_cookie(client):
    resp = await client.post("/logout", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert 'minimal_client_session=""' in resp.headers["Set-Cookie"]
