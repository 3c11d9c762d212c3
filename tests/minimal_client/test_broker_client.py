"""BrokerClient against a small real aiohttp server standing in for the broker."""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest
from aiohttp import web

from minimal_client.broker import BrokerClient, decode_unverified, make_session
from minimal_client.config import ClientConfig


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


JWT = f"{_b64({'alg': 'RS256', 'kid': 'k1'})}.{_b64({'sub': 'alice', 'exp': 2_000_000_000})}.c2ln"


@pytest.fixture(name="stand_in")
async def _stand_in(aiohttp_server):
    seen: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "method": request.method, "headers": request.headers.copy()})
        if request.path == "/api/token":
            return web.json_response({"token": JWT, "expiresOn": "2033-05-18T03:33:20Z",
                                      "user": {"communicationUserId": "8:acs:x"}}, status=201)
        if request.path == "/api/text":
            return web.Response(text="<html>bad gateway</html>", status=502)
        return web.json_response({"error": "invalid_token", "error_description": "nope"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    server.seen = seen
    return server


@pytest.fixture(name="broker")
async def _broker(stand_in):
    cfg = ClientConfig(authority="https://127.0.0.1:9", tenant="t", client_id="c", client_secret="s",
                       broker_url=str(stand_in.make_url("/")), broker_app_id="b")
    session = make_session(cfg)
    yield BrokerClient(cfg, session)
    await session.close()


async def test_a_token_answer_is_decoded_and_labelled_with_its_expiry(broker, stand_in):
    res = await broker.call("GET", "/api/token", bearer="AT", request_id="rid-1")
    assert res["status"] == 201
    assert res["broker_response"]["token"] == JWT
    assert res["decoded"] == {"header": {"alg": "RS256", "kid": "k1"},
                              "claims": {"sub": "alice", "exp": 2_000_000_000}}
    assert res["expires_at"] == 2_000_000_000
    sent = stand_in.seen[-1]["headers"]
    assert sent["Authorization"] == "Bearer AT" and sent["X-Request-Id"] == "rid-1"


async def test_an_error_answer_is_passed_through_exactly(broker):
    res = await broker.call("POST", "/api/token/obo/workspace", bearer="AT", request_id="r")
    assert res == {"status": 401, "broker_response": {"error": "invalid_token", "error_description": "nope"},
                   "decoded": None, "expires_at": None, "request_id": "r"}


async def test_a_non_json_answer_is_kept_as_text(broker):
    res = await broker.call("GET", "/api/text", bearer="AT", request_id="r")
    assert res["status"] == 502 and res["broker_response"] == "<html>bad gateway</html>"


async def test_an_unreachable_broker_is_an_answer_without_status():
    with socket.socket() as s:       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ClientConfig(authority="https://127.0.0.1:9", tenant="t", client_id="c", client_secret="s",
                       broker_url=f"http://127.0.0.1:{port}", broker_app_id="b", timeout=5)
    session = make_session(cfg)
    try:
        res = await BrokerClient(cfg, session).call("GET", "/api/token", bearer="AT", request_id="r")
    finally:
        await session.close()
    assert res["status"] is None and res["broker_response"]["error"] == "broker_unreachable"


def test_decoding_is_plain_base64_and_refuses_what_is_not_a_jwt():
    assert decode_unverified("a.b") is None
    assert decode_unverified("!!.??.x") is None
    assert decode_unverified(None) is None
    assert decode_unverified(f"{_b64({'alg': 'none'})}.{_b64({'exp': int(time.time())})}.")["header"] == {
        "alg": "none"}
