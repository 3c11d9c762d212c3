"""The spans of each exchange, in process: the app through `aiohttp_client`, the real Entra and ACS
emulators, and the app's own TracerProvider feeding an in-memory span sink (`span_processors`,
the same hook `dev --trace` uses for its console tree)."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from structlog.testing import capture_logs

from service.app import create_app
from service.settings import load_settings
from service.telemetry.console import ConsoleTreeProcessor
from tests.support.full_broker import PORTAL_SECRET, bearer, exchange_form, partner_token, teams
from tests.support.telemetry import broker_settings, new_traceparent


class Sink(SpanProcessor):
    """Keeps every ended span (an in-memory exporter; the OTLP path is tests/telemetry/test_trace_export.py)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def trace(self, trace_id: str) -> list[ReadableSpan]:
        return [s for s in self.spans if format(s.context.trace_id, "032x") == trace_id]

    def named(self, trace_id: str, name: str) -> list[ReadableSpan]:
        return [s for s in self.trace(trace_id) if s.name == name]


@pytest.fixture(name="sink")
def _sink() -> Sink:
    return Sink()


@pytest.fixture(name="console")
def _console() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(name="client")
async def _client(aiohttp_client, entra, acs, sink, console, tmp_path: Path):
    app = create_app(broker_settings(entra, acs, tmp_path), overrides={"span_processors": [sink, ConsoleTreeProcessor(console)]})
    return await aiohttp_client(app)


def traceparent() -> tuple[str, dict[str, str]]:
    trace_id, _, header = new_traceparent()
    return trace_id, {"traceparent": header}


async def test_a_request_without_traceparent_starts_its_own_trace(client, entra, sink):
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {bearer(entra)}"})
    assert resp.status == 200
    server = next(s for s in sink.spans if s.name == "GET /api/me")
    assert server.parent is None
    assert server.attributes["tokenbroker.request_id"] == resp.headers["X-Request-Id"]


async def test_identity_routes_show_store_operations_and_the_acs_call(client, entra, acs, sink):
    trace_id, headers = traceparent()
    resp = await client.post("/api/user", headers={"Authorization": f"Bearer {bearer(entra)}", **headers})
    assert resp.status == 201
    stores = [s for s in sink.trace(trace_id) if s.name.startswith("store.")]
    assert stores and all(s.attributes["db.system"] == "memory" for s in stores)
    create = sink.named(trace_id, "acs.create_user")
    assert len(create) == 1
    client_span = next(s for s in sink.trace(trace_id) if s.parent and s.parent.span_id == create[0].context.span_id)
    assert client_span.attributes["http.response.status_code"] == 201
    assert client_span.attributes["tokenbroker.correlation_id"]


async def test_a_caller_waiting_on_another_callers_exchange_has_a_single_flight_span(client, entra, acs, sink):
    acs.inject_fault("get_token_for_teams_user", delay=0.5)      # keep the first call in flight
    auth = {"Authorization": f"Bearer {bearer(entra)}", "teams-user-aad-token": teams(entra)}
    (first, h1), (second, h2) = traceparent(), traceparent()
    answers = await asyncio.gather(client.get("/api/token/teams", headers={**auth, **h1}),
                                   client.get("/api/token/teams", headers={**auth, **h2}))
    assert [r.status for r in answers] == [201, 201]
    owner = next(t for t in (first, second) if sink.named(t, "cache.lookup"))
    waiter = second if owner == first else first
    assert sink.named(owner, "cache.lookup")[0].attributes["tokenbroker.cache.acs_teams"] == "miss"
    wait = sink.named(waiter, "singleflight.wait")
    assert len(wait) == 1 and wait[0].attributes["tokenbroker.cache.acs_teams"] == "coalesced"
    assert sink.named(waiter, "acs.get_token_for_teams_user") == []   # no ACS call of its own
    assert len(sink.named(owner, "acs.get_token_for_teams_user")) == 1

    # A third caller finds the answer cached: no lookup span, the hit is said on the request's span.
    third, h3 = traceparent()
    assert (await client.get("/api/token/teams", headers={**auth, **h3})).status == 201
    assert sink.named(third, "cache.lookup") == [] and sink.named(third, "singleflight.wait") == []
    assert sink.named(third, "GET /api/token/teams")[0].attributes["tokenbroker.cache.acs_teams"] == "hit"


async def test_a_refused_token_sets_the_span_status_with_the_logged_reason(client, entra, sink):
    trace_id, headers = traceparent()
    wrong_audience = teams(entra)                 # a real token, for ACS: not for the broker
    with capture_logs() as logs:
        resp = await client.get("/api/me", headers={"Authorization": f"Bearer {wrong_audience}", **headers})
    assert resp.status == 401
    reason = next(e["reason"] for e in logs if e["event"] == "auth.refused")
    server = sink.named(trace_id, "GET /api/me")[0]
    assert (server.status.status_code.name, server.status.description) == ("ERROR", reason)
    assert server.attributes["tokenbroker.reason"] == reason
    validation = sink.named(trace_id, "token.validate")[0]
    assert validation.status.description == reason
    assert validation.attributes["tokenbroker.kid"] and validation.attributes["tokenbroker.tid"] == entra.tenant_id
    assert wrong_audience.split(".")[2] not in str([dict(s.attributes) for s in sink.trace(trace_id)])


async def test_the_console_tree_shows_where_the_time_of_an_exchange_goes(client, entra, console):
    trace_id, headers = traceparent()
    auth = {"Authorization": f"Bearer {bearer(entra)}", "teams-user-aad-token": teams(entra), **headers}
    assert (await client.get("/api/token/teams", headers=auth)).status == 201
    tree = next(block for block in console.getvalue().split("\n") if trace_id in block)
    lines = console.getvalue().split("\n")
    start = lines.index(tree)
    block = lines[start:start + 12]
    assert tree.startswith("GET /api/token/teams  201  ")
    assert any(line.startswith(("├─ token.validate", "└─ token.validate")) for line in block)
    assert any("acs.get_token_for_teams_user" in line for line in block)
    assert any("POST https://127.0.0.1:" in line and "  200  " in line for line in block)


async def test_sample_ratio_zero_records_no_new_trace_but_follows_a_sampled_caller(aiohttp_client, entra, acs,
                                                                                   tmp_path: Path):
    sink = Sink()
    settings = broker_settings(entra, acs, tmp_path, "[telemetry]\nsample_ratio = 0.0\n")
    app = create_app(settings, overrides={"span_processors": [sink]})
    client = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {bearer(entra)}"}
    assert (await client.get("/api/me", headers=auth)).status == 200
    assert sink.spans == []
    trace_id, headers = traceparent()
    assert (await client.get("/api/me", headers={**auth, **headers})).status == 200
    assert [s.name for s in sink.trace(trace_id) if s.parent and s.parent.is_remote] == ["GET /api/me"]


async def test_the_token_endpoint_validates_its_subject_token_in_a_span(client, sink):
    trace_id, headers = traceparent()
    basic = "Basic " + base64.b64encode(f"portal:{PORTAL_SECRET}".encode()).decode()
    resp = await client.post("/oauth2/token", data=exchange_form(partner_token()),
                             headers={**headers, "Authorization": basic})
    assert resp.status == 200, await resp.text()
    validation = sink.named(trace_id, "token.validate")
    assert [(s.attributes["tokenbroker.token_kind"], s.attributes["tokenbroker.issuer"]) for s in validation] \
        == [("subject", "partner")]
    assert sink.named(trace_id, "POST /oauth2/token")[0].attributes["http.response.status_code"] == 200


async def test_a_spa_may_send_its_trace_context_cross_origin(aiohttp_client, tmp_path: Path):
    """Browser OpenTelemetry adds traceparent/tracestate to fetch(): the CORS preflight must allow them."""
    settings = load_settings('[cors]\nallowed_origins = ["https://spa.example"]\n', {}, base_dir=tmp_path)
    client = await aiohttp_client(create_app(settings))
    resp = await client.options("/api/token/teams", headers={
        "Origin": "https://spa.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, teams-user-aad-token, traceparent, tracestate"})
    assert resp.status == 204
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"traceparent", "tracestate"} <= allowed
