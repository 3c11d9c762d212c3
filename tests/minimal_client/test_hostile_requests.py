"""The minimal client under hostile requests: query parameters are never reflected unescaped and no
redirect goes where a parameter says."""

from __future__ import annotations

import pytest

from .flows import sign_in

PROBE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
PARAMS = ("error", "error_description", "error_codes", "suberror", "error_uri", "correlation_id",
          "trace_id", "state", "code", "handoff", "consent", "next", "redirect", "redirect_uri", "login_hint")


def _assert_not_reflected(text: str) -> None:
    assert "<script>alert" not in text and "<img src=x" not in text


@pytest.mark.parametrize("path", ["/", "/login", "/auth/callback", "/nope", "/static/nope.js"])
async def test_hostile_query_parameters_are_never_reflected_unescaped(client, path):
    query = {name: PROBE for name in PARAMS}
    resp = await client.get(path, params=query, allow_redirects=False)
    assert resp.status < 500
    _assert_not_reflected(await resp.text())
    location = resp.headers.get("Location", "")
    assert "alert" not in location and "script" not in location
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_a_hostile_form_post_callback_is_parked_and_never_reflected(client):
    posted = await client.post("/auth/callback", data={name: PROBE for name in PARAMS}, allow_redirects=False)
    assert posted.status == 303 and posted.headers["Location"].startswith("/auth/callback?handoff=")
    page = await client.get(posted.headers["Location"], allow_redirects=False)
    assert page.status == 400
    text = await page.text()
    _assert_not_reflected(text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text      # shown, escaped


async def test_sign_in_and_consent_only_redirect_to_the_authority_or_home(client, idp, client_config):
    resp = await client.get("/login", params={"next": "https://evil.example/"}, allow_redirects=False)
    assert resp.headers["Location"].startswith(f"{client_config.authority}/")
    await sign_in(client, idp)
    resp = await client.get("/login", params={"consent": "teams", "redirect_uri": "https://evil.example/"},
                            allow_redirects=False)
    assert resp.headers["Location"].startswith(f"{client_config.authority}/")
    assert "evil.example" not in resp.headers["Location"]


