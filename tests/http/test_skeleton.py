"""The well-behaved service: request ids, JSON errors, health, readiness, metrics, OpenAPI, CORS."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from service.app import create_app
from service.http.routes import route_modules
from service.settings import load_settings
from service.typedefs import READY_CHECKS


def make_settings(toml: str = "", **env: str):
    keys = tempfile.mkdtemp(prefix="tb-keys-")
    return load_settings(toml, env, base_dir=Path(keys))


@pytest.fixture(name="client")
async def _client(aiohttp_client):
    settings = make_settings('[cors]\nallowed_origins = ["https://app.example"]\n')
    return await aiohttp_client(create_app(settings))


async def test_healthz_answers_ok(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_a_request_id_is_generated_and_echoed(client):
    resp = await client.get("/healthz")
    generated = resp.headers["X-Request-Id"]
    assert len(generated) >= 16
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"


async def test_a_hostile_request_id_is_replaced(client):
    resp = await client.get("/healthz", headers={"X-Request-Id": "x" * 500})
    assert resp.headers["X-Request-Id"] != "x" * 500


async def test_unknown_routes_get_a_json_404(client):
    resp = await client.get("/nope")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"] == "not_found"


async def test_a_wrong_method_gets_a_json_405(client):
    resp = await client.delete("/healthz")
    assert resp.status == 405
    body = await resp.json()
    assert body["error"] == "method_not_allowed"
    assert "error_description" in body


async def test_readyz_is_ok_when_every_check_passes(client):
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"]["config"] == "ok"


async def test_readyz_names_the_failing_check(aiohttp_client):
    app = create_app(make_settings())

    async def broken() -> bool:
        raise ConnectionError("down")

    app[READY_CHECKS]["upstream"] = broken
    client = await aiohttp_client(app)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["failing"] == ["upstream"]


async def test_metrics_count_requests_by_route_and_status(client):
    await client.get("/healthz")
    await client.get("/nope")
    text = await (await client.get("/metrics")).text()
    assert 'tokenbroker_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'status="404"' in text
    assert "tokenbroker_request_seconds_bucket" in text


async def test_openapi_documents_every_route(client):
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    documented = set(doc["paths"])
    for resource in client.app.router.resources():
        path = resource.canonical
        assert path in documented, f"{path} is not in /openapi.json"
    assert route_modules()


async def test_cors_preflight_is_answered_for_an_allowed_origin(client):
    resp = await client.options("/api/me", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, teams-user-aad-token"})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "teams-user-aad-token", "content-type", "x-request-id"):
        assert header in allowed


async def test_cors_exposes_challenge_headers_to_an_allowed_origin(client):
    resp = await client.get("/healthz", headers={"Origin": "https://app.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = resp.headers["Access-Control-Expose-Headers"]
    assert "WWW-Authenticate" in exposed and "Retry-After" in exposed and "X-Request-Id" in exposed


async def test_cors_refuses_an_unknown_origin(client):
    resp = await client.options("/healthz", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_an_unexpected_exception_becomes_a_generic_json_500(aiohttp_client):
    app = create_app(make_settings())

    async def boom(request):
        raise RuntimeError("secret internal detail")

    app.router.add_get("/_boom", boom)
    client = await aiohttp_client(app)
    resp = await client.get("/_boom")
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == "server_error"
    assert "secret internal detail" not in await resp.text()
