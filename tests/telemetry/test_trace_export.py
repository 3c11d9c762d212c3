"""Issue 16's done-when: one exchange followed end to end, over real sockets.

`tokenbroker serve` (a real subprocess) exports OTLP/HTTP protobuf to a receiver running in the
test; the SPA's request carries a W3C `traceparent`; the broker talks to the real Entra and ACS
emulators over HTTPS. Each request is one trace with the caller's trace id: the server span,
the validation span and a client span for the ACS / Entra call; the emulator received the same
trace id; the broker's log lines of that request carry it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.full_broker import bearer, teams
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.serve_process import ServeProcess, free_port
from tests.support.telemetry import broker_toml, new_traceparent


@pytest.fixture(name="otlp")
def _otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(name="traced_broker")
def _traced_broker(entra, acs, otlp, tmp_path: Path, monkeypatch) -> Iterator[ServeProcess]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")   # export within 0.1 s (the SDK's variable)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=s3cret%20key")   # a vendor's API key
    config = tmp_path / "broker.toml"
    config.write_text(broker_toml(entra, acs, tmp_path, f'[telemetry]\notlp_endpoint = "{otlp.url}"\n'
                                                        'service_name = "broker-under-test"\n'))
    broker = ServeProcess(config, "--port", "0")
    yield broker
    broker.stop()


def _call(broker: ServeProcess, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict, dict]:
    request = urllib.request.Request(broker.url + path, method=method, headers=headers,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def _server_span(spans: list[dict], trace_id: str) -> dict | None:
    return next((s for s in spans if s["trace_id"] == trace_id and s["kind"] == "SERVER"), None)


def _complete(trace_id: str, server_port: int):
    """The trace has its server span and a client span to the emulator at `server_port`."""
    def check(spans: list[dict]) -> bool:
        mine = [s for s in spans if s["trace_id"] == trace_id]
        return _server_span(mine, trace_id) is not None and any(
            s["kind"] == "CLIENT" and s["attributes"].get("server.port") == server_port for s in mine)
    return check


def _children(spans: list[dict], parent: dict) -> list[dict]:
    return [s for s in spans if s["parent_span_id"] == parent["span_id"]]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


def _no_token_in(spans: list[dict], *tokens: str) -> None:
    text = json.dumps(spans)
    for token in tokens:
        assert token not in text
        assert token.split(".")[2] not in text       # not even the signature part


def test_the_teams_exchange_is_one_trace_from_the_spa_through_acs(traced_broker, entra, acs, otlp):
    trace_id, parent, traceparent = new_traceparent()
    user_token, teams_token = bearer(entra), teams(entra)
    status, headers, body = _call(traced_broker, "GET", "/api/token/teams", {
        "Authorization": f"Bearer {user_token}", "teams-user-aad-token": teams_token,
        "traceparent": traceparent, "tracestate": "spa=1"})
    assert status == 201, body

    spans = otlp.wait_for(_complete(trace_id, _port(acs.url)))
    mine = [s for s in spans if s["trace_id"] == trace_id]
    server = _server_span(mine, trace_id)
    assert server["name"] == "GET /api/token/teams"
    assert server["parent_span_id"] == parent                 # the SPA's span is the parent
    assert server["trace_state"] == "spa=1"                   # and its tracestate travels on
    assert server["attributes"]["http.route"] == "/api/token/teams"
    assert server["attributes"]["http.response.status_code"] == 201
    assert server["attributes"]["tokenbroker.request_id"] == headers["X-Request-Id"]
    assert server["service"] == "broker-under-test"
    assert server["resource"]["service.version"] and server["resource"]["service.instance.id"]
    assert [s for s in spans if s["kind"] == "SERVER" and s["name"] == "GET /api/token/teams"] == [server]

    validations = [s for s in _children(mine, server) if s["name"] == "token.validate"]
    kinds = {s["attributes"]["tokenbroker.token_kind"]: s for s in validations}
    assert set(kinds) == {"entra_bearer", "teams"}
    validation = kinds["entra_bearer"]
    assert validation["attributes"]["tokenbroker.tid"] == entra.tenant_id
    assert validation["attributes"]["tokenbroker.kid"]
    assert validation["attributes"]["tokenbroker.app_id"]
    assert validation["attributes"]["tokenbroker.cache.entra_tokens"] in ("hit", "miss")

    lookup = next(s for s in mine if s["name"] == "cache.lookup")
    assert lookup["attributes"]["tokenbroker.cache"] == "acs_teams"
    assert lookup["attributes"]["tokenbroker.cache.acs_teams"] == "miss"
    acs_call = next(s for s in mine if s["name"] == "acs.get_token_for_teams_user")
    client = next(s for s in _children(mine, acs_call) if s["kind"] == "CLIENT")
    assert client["attributes"]["http.request.method"] == "POST"
    assert client["attributes"]["http.response.status_code"] == 200
    assert client["attributes"]["server.port"] == _port(acs.url)

    received = [r for r in acs.requests() if r.get("traceparent")]
    assert received and all(r["traceparent"].split("-")[1] == trace_id for r in received)
    assert received[-1]["traceparent"].split("-")[2] == client["span_id"]   # ACS saw our client span

    _no_token_in(spans, user_token, teams_token, body["token"])
    assert otlp.requests and all(r["content_type"] == "application/x-protobuf" for r in otlp.requests)
    assert all(r["x-collector-key"] == "s3cret key" for r in otlp.requests)
    assert not any("s3cret" in line for line in traced_broker.raw)   # the export header is never logged
    request_line = next(r for r in traced_broker.lines("http.request") if r.get("route") == "/api/token/teams")
    assert request_line["trace_id"] == trace_id
    assert request_line["span_id"] == server["span_id"]
    assert request_line["request_id"] == headers["X-Request-Id"]


def test_the_obo_exchange_is_one_trace_through_entra_and_refusals_carry_their_reason(
        traced_broker, entra, otlp):
    trace_id, parent, traceparent = new_traceparent()
    user_token = bearer(entra)
    status, headers, body = _call(traced_broker, "POST", "/api/token/obo/workspace", {
        "Authorization": f"Bearer {user_token}", "traceparent": traceparent})
    assert status == 200, body

    spans = otlp.wait_for(_complete(trace_id, _port(entra.url)))
    mine = [s for s in spans if s["trace_id"] == trace_id]
    server = _server_span(mine, trace_id)
    assert server["name"] == "POST /api/token/obo/{name}"
    assert server["parent_span_id"] == parent
    assert any(s["name"] == "token.validate" for s in _children(mine, server))
    obo = next(s for s in mine if s["name"] == "entra.obo")
    assert obo["attributes"]["tokenbroker.tenant"] == entra.tenant_id
    token_call = next(s for s in _children(mine, obo) if s["kind"] == "CLIENT")
    assert token_call["attributes"]["url.full"].endswith("/oauth2/v2.0/token")
    assert token_call["attributes"]["http.response.status_code"] == 200

    calls = [r for r in entra.requests(path="/oauth2/v2.0/token")
             if r["headers"].get("traceparent", "").split("-")[1:2] == [trace_id]]
    assert calls and calls[-1]["headers"]["traceparent"].split("-")[2] == token_call["span_id"]
    _no_token_in(spans, user_token, body["access_token"])

    lines = [r for r in traced_broker.drain() if r.get("trace_id") == trace_id]
    events = {r.get("event") for r in lines}
    assert {"http.request", "obo.exchange"} <= events       # the canonical line and the audit event
    assert all(r.get("span_id") for r in lines)

    # A refusal: the server span's status carries the same reason code as the log line.
    refused_trace, _, refused_parent = new_traceparent()
    status, _, body = _call(traced_broker, "POST", "/api/token/obo/workspace", {
        "Authorization": "Bearer not-a-jwt", "traceparent": refused_parent})
    assert status == 401
    spans = otlp.wait_for(lambda all_spans: _server_span(all_spans, refused_trace) is not None)
    refused = _server_span(spans, refused_trace)
    log_line = next(r for r in traced_broker.lines("auth.refused") if r.get("trace_id") == refused_trace)
    assert refused["status"] == "ERROR"
    assert refused["status_message"] == log_line["reason"] == refused["attributes"]["tokenbroker.reason"]
    assert refused["attributes"]["tokenbroker.error"] == "invalid_token"
    assert refused["attributes"]["http.response.status_code"] == 401


def test_an_unreachable_collector_costs_spans_never_answers_or_a_clean_stop(tmp_path: Path):
    dead = free_port()                                   # nothing listens there
    config = tmp_path / "broker.toml"
    config.write_text(f'[issuer]\nkeys_dir = "{tmp_path / "keys"}"\n'
                      f'[telemetry]\notlp_endpoint = "http://127.0.0.1:{dead}"\n')
    broker = ServeProcess(config, "--port", "0")
    try:
        traceparent = new_traceparent()[2]
        for _ in range(3):
            status, _, body = _call(broker, "GET", "/", {"traceparent": traceparent})
            assert (status, body["name"]) == (200, "tokenbroker")
        broker.terminate()
        assert broker.wait() == 0
        assert broker.lines("server.stopped")
    finally:
        broker.stop()
