"""deploy/observability: the Grafana dashboard and the Prometheus alert rules parse, cover what the
operators asked for, and name only metrics the broker really exposes on /metrics (after every
labelled metric has been exercised through the real app, Entra and ACS emulators)."""

from __future__ import annotations

import json
import re
from base64 import b64encode
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from tests.support.full_broker import PORTAL_SECRET, bearer, exchange_form, partner_token, teams
from tests.support.telemetry import broker_settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "observability" / "grafana-dashboard.json"
ALERTS = ROOT / "deploy" / "observability" / "prometheus-alerts.yaml"
METRIC = re.compile(r"\btokenbroker_[a-z0-9_]+\b")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".*"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, from its parsed PromQL (a syntax error fails)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return exprs


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture(name="exposed")
async def _exposed(aiohttp_client, entra, acs, tmp_path) -> set[str]:
    """Every sample name on /metrics after each route family has been exercised."""
    settings = broker_settings(entra, acs, tmp_path, "[throttle]\nmax_failures = 1\n")
    client = await aiohttp_client(create_app(settings))
    user = {"Authorization": f"Bearer {bearer(entra)}"}
    assert (await client.get("/api/me", headers=user)).status == 200
    assert (await client.get("/api/me", headers={"Authorization": "Bearer nope"})).status == 401
    assert (await client.get("/api/token/teams", headers={**user, "teams-user-aad-token": teams(entra)})).status == 201
    assert (await client.post("/api/token/obo/workspace", headers=user)).status == 200
    exchange = exchange_form(partner_token(), audience="dashboard")
    assert (await client.post("/oauth2/token", data=exchange, headers=_basic("portal", PORTAL_SECRET))).status == 200
    statuses = [(await client.post("/oauth2/token", data=exchange, headers=_basic("portal", "wrong"))).status
                for _ in range(2)]
    assert statuses == [401, 429]
    text = await (await client.get("/metrics")).text()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_dashboard_is_grafana_json_with_a_query_in_every_panel():
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 30
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert panels and all(p.get("targets") and all(t["expr"].strip() for t in p["targets"]) for p in panels)
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    for expr in dashboard_exprs():
        if not expr.startswith("label_values("):      # a Grafana variable query, not PromQL
            assert metric_names(expr), expr


def test_the_dashboard_shows_what_operators_asked_for():
    named = {m for e in dashboard_exprs() if not e.startswith("label_values(") for m in metric_names(e)}
    for metric in ("tokenbroker_requests_total", "tokenbroker_request_seconds_bucket",
                   "tokenbroker_token_validation_failures_total", "tokenbroker_token_exchange_total",
                   "tokenbroker_cache_events_total", "tokenbroker_downstream_seconds_bucket",
                   "tokenbroker_downstream_requests_total", "tokenbroker_jwks_fetches_total",
                   "tokenbroker_throttled_total"):
        assert metric in named, metric


def test_the_alert_rules_are_prometheus_rules_for_the_four_asked_alerts():
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    assert {"TokenbrokerDownstreamErrors", "TokenbrokerValidationFailureSpike",
            "TokenbrokerJwksLastKnownGood", "TokenbrokerLatencyOverBudget"} <= names
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert metric_names(rule["expr"]) and rule["labels"]["severity"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])


async def test_every_metric_named_by_the_dashboard_and_the_alerts_is_on_metrics(exposed):
    exprs = dashboard_exprs() + [r["expr"] for r in alert_rules()]
    named = {m for e in exprs for m in (METRIC.findall(e) if e.startswith("label_values(") else metric_names(e))}
    assert named and all(n.startswith("tokenbroker_") for n in named)
    assert named - exposed == set()
