"""What a browser does in the sign-in dance, done with plain HTTP against the real servers."""

from __future__ import annotations

import html
import re

import aiohttp
from yarl import URL

from emulators.entra import demo

_FORM = re.compile(r'<form method="post" action="([^"]+)" id="form_post">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def form_post(page: str) -> tuple[URL, dict[str, str]]:
    """The target and fields of the emulator's auto-submitting form_post page."""
    match = _FORM.search(page)
    assert match, f"not a form_post page: {page[:300]}"
    fields = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(match.group(2))}
    return URL(html.unescape(match.group(1))), fields


async def authorize(client, idp: aiohttp.ClientSession, login_path: str,
                    user: str) -> tuple[URL, dict[str, str]]:
    """GET `login_path` on the client, then the emulator's authorize URL with `login_hint`;
    return where the emulator's form_post page posts to, and what."""
    resp = await client.get(login_path, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    auth_uri = URL(resp.headers["Location"]).update_query(login_hint=user)
    page = await idp.get(auth_uri, allow_redirects=False)
    assert page.status == 200, await page.text()
    return form_post(await page.text())


async def finish(client, target: URL, fields: dict[str, str]) -> aiohttp.ClientResponse:
    """The cross-site POST (sent WITHOUT the client's cookies, as a browser would with
    SameSite=Lax), then the same-site GET it redirects to (with them)."""
    async with aiohttp.ClientSession() as cookieless:
        posted = await cookieless.post(target, data=fields, allow_redirects=False)
        assert posted.status == 303, await posted.text()
        location = posted.headers["Location"]
    assert "code=" not in location
    return await client.get(location, allow_redirects=False)


async def sign_in(client, idp: aiohttp.ClientSession, user: str = demo.ALICE_UPN,
                  login_path: str = "/login") -> None:
    target, fields = await authorize(client, idp, login_path, user)
    resp = await finish(client, target, fields)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/"


async def csrf_token(client) -> str:
    page = await (await client.get("/")).text()
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, "signed-in page has no CSRF token"
    return match.group(1)


async def action(client, path: str) -> aiohttp.ClientResponse:
    return await client.post(path, headers={"X-CSRF-Token": await csrf_token(client)})
