"""Exact-path dispatch (service/http/dispatch.py) answers exactly what aiohttp's routing answers.

Two apps from the same settings, one with the dispatch table and one without, get the same raw
requests over real sockets — the exact paths the table serves and every variant that must fall
through to aiohttp (query strings, escapes, slashes, case, absolute-form targets, other methods,
`Expect`, dynamic routes, unknown paths) — and must give the same status, body and headers
(minus the per-request Date and X-Request-Id)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from service.app import create_app
from service.http import dispatch
from service.settings import load_settings

_TOML = '[cors]\nallowed_origins = ["https://app.example"]\n'
_VARIABLE = {"date", "x-request-id"}


def make_settings(toml: str):
    return load_settings(toml, {}, base_dir=Path(tempfile.mkdtemp(prefix="tb-keys-")))


REQUESTS = [
    "GET /healthz HTTP/1.1",
    "HEAD /healthz HTTP/1.1",
    "GET /healthz?probe=1 HTTP/1.1",
    "GET /healthz/ HTTP/1.1",
    "GET /HEALTHZ HTTP/1.1",
    "GET //healthz HTTP/1.1",
    "GET /health%7A HTTP/1.1",
    "GET http://127.0.0.1/healthz HTTP/1.1",
    "DELETE /healthz HTTP/1.1",
    "POST /healthz HTTP/1.1\r\nContent-Length: 0",
    "GET /api/me HTTP/1.1",
    "GET /api/me HTTP/1.1\r\nAuthorization: Bearer not.a.token",
    "OPTIONS /api/me HTTP/1.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET",
    "GET /api/me HTTP/1.1\r\nOrigin: https://app.example",
    "POST /oauth2/token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 12"
    "\r\n\r\ngrant_type=x",
    "POST /oauth2/token HTTP/1.1\r\nExpect: 100-continue\r\nContent-Type: application/x-www-form-urlencoded"
    "\r\nContent-Length: 12\r\n\r\ngrant_type=x",
    "GET /oauth2/token HTTP/1.1",
    "POST /api/token/obo/nothing HTTP/1.1\r\nContent-Length: 0",
    "GET /.well-known/openid-configuration HTTP/1.1",
    "GET /nope HTTP/1.1",
]


async def _exchange(port: int, head: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        first, _, rest = head.partition("\r\n")
        extra, _, body = rest.partition("\r\n\r\n")
        lines = [first, "Host: 127.0.0.1", "Connection: close", *([extra] if extra else [])]
        writer.write(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    if head_bytes.startswith(b"HTTP/1.1 100"):        # an interim answer to Expect
        head_bytes, _, payload = payload.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.lower() not in _VARIABLE:
            headers[name.lower()] = value.strip()
    return int(status_line.split()[1]), headers, payload


@pytest.fixture(name="servers")
async def _servers(aiohttp_server):
    fast = create_app(make_settings(_TOML))
    plain = create_app(make_settings(_TOML))
    plain.on_startup.remove(dispatch.use_table)
    return await aiohttp_server(fast), await aiohttp_server(plain)


async def test_the_table_is_used_and_holds_the_plain_routes(servers):
    fast, plain = servers
    assert "_handle" in vars(fast.app) and "_handle" not in vars(plain.app)
    table = dispatch.build_table(fast.app)
    assert table is not None
    assert {("GET", "/api/me"), ("POST", "/oauth2/token"), ("GET", "/healthz"), ("HEAD", "/healthz"),
            ("POST", "/oauth2/introspect")} <= set(table)
    assert not any("{" in path for _, path in table)      # dynamic routes stay aiohttp's


@pytest.mark.parametrize("head", REQUESTS)
async def test_every_answer_is_aiohttps(servers, head):
    fast, plain = servers
    got = await _exchange(fast.port, head)
    expected = await _exchange(plain.port, head)
    assert got == expected
    assert got[0] < 500


def test_applications_the_table_cannot_serve_exactly_keep_aiohttps_routing():
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    wildcard = web.Application()
    wildcard.router.add_get("/plain", ok)
    wildcard.router.add_resource("/any", name="first").add_route("*", ok)     # aiohttp answers GET here
    wildcard.router.add_resource("/any", name="second").add_route("GET", ok)
    assert set(dispatch.build_table(wildcard)) == {("GET", "/plain"), ("HEAD", "/plain")}

    parent = web.Application()
    parent.add_subapp("/sub", web.Application())
    assert dispatch.build_table(parent) is None

    async def old_style(app: web.Application, handler):   # (deprecated by aiohttp)
        return handler

    legacy = web.Application(middlewares=[old_style])
    legacy.router.add_get("/plain", ok)
    assert dispatch.build_table(legacy) is None
