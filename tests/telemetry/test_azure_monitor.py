"""`APPLICATIONINSIGHTS_CONNECTION_STRING` → the broker's spans reach Application Insights' ingestion
API (`{IngestionEndpoint}/v2.1/track`) through azure-monitor-opentelemetry-exporter. The ingestion
endpoint here is a real HTTP server in the test, named by the connection string as Azure would."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from tests.support.full_broker import bearer
from tests.support.telemetry import broker_settings
from tests.support.threaded import ThreadedServer, start_threaded

INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000001"


class Ingestion:
    """Application Insights' track endpoint: JSON envelopes (gzip or not) → 200 with the counts."""

    def __init__(self) -> None:
        self.envelopes: list[dict] = []
        self.server: ThreadedServer = start_threaded(self._app, None)

    def _app(self, _url: str) -> web.Application:
        async def track(request: web.Request) -> web.Response:
            body = json.loads(await request.read())
            items = body if isinstance(body, list) else [body]
            self.envelopes.extend(items)
            return web.json_response({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})

        app = web.Application()
        async def other(request: web.Request) -> web.Response:
            self.envelopes.append({"unexpected": request.path})
            return web.json_response({}, status=404)

        app.router.add_post("/v2.1/track", track)
        app.router.add_post("//v2.1/track", track)   # real connection strings end the endpoint with "/"
        app.router.add_route("*", "/{tail:.*}", other)
        return app


@pytest.fixture(name="ingestion")
def _ingestion() -> Iterator[Ingestion]:
    ingestion = Ingestion()
    yield ingestion
    ingestion.server.stop()


async def test_spans_are_exported_to_application_insights(ingestion, entra, acs, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")   # no calls to Microsoft here
    monkeypatch.setenv("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")        # nor later ones to this endpoint
    environ = {"APPLICATIONINSIGHTS_CONNECTION_STRING":
               f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={ingestion.server.url}/"}
    settings = broker_settings(entra, acs, tmp_path, environ=environ)
    assert settings.telemetry.enabled and not settings.telemetry.traces_endpoint
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    trace_id = secrets.token_hex(16)
    try:
        resp = await client.get("/api/me", headers={"Authorization": f"Bearer {bearer(entra)}",
                                                    "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
        assert resp.status == 200
    finally:
        await client.close()          # the app's cleanup flushes the exporter
    mine = [e for e in ingestion.envelopes if e.get("tags", {}).get("ai.operation.id") == trace_id]
    requests = [e for e in mine if e["data"]["baseType"] == "RequestData"]
    assert len(requests) == 1 and requests[0]["iKey"] == INSTRUMENTATION_KEY
    assert requests[0]["data"]["baseData"]["name"] == "GET /api/me"
    assert str(requests[0]["data"]["baseData"]["responseCode"]) == "200"
    assert any(e["data"]["baseType"] in ("RemoteDependencyData", "Message") for e in mine)
