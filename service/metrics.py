"""Prometheus metrics, one registry per app so tests and replicas never share counters."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MAX_BOUND_CHILDREN = 1000
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.requests_total = Counter("tokenbroker_requests_total", "HTTP requests",
                                      ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram("tokenbroker_request_seconds", "HTTP request latency",
                                         ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.token_validation_failures_total = Counter(
            "tokenbroker_token_validation_failures_total", "Refused inbound tokens by reason",
            ["reason"], registry=r)
        self.jwks_fetches_total = Counter("tokenbroker_jwks_fetches_total", "JWKS/discovery fetches",
                                          ["outcome"], registry=r)
        self.downstream_requests_total = Counter(
            "tokenbroker_downstream_requests_total", "Calls to Entra/ACS",
            ["service", "operation", "outcome"], registry=r)
        self.downstream_seconds = Histogram("tokenbroker_downstream_seconds", "Latency of calls to Entra/ACS",
                                            ["service", "operation"], buckets=_LATENCY_BUCKETS, registry=r)
        self.cache_events_total = Counter("tokenbroker_cache_events_total", "Cache hits, misses, coalesced",
                                          ["cache", "event"], registry=r)
        self.token_exchange_total = Counter("tokenbroker_token_exchange_total", "Token endpoint decisions",
                                            ["grant", "decision", "reason"], registry=r)
        # which worker answered a scrape (each `serve --workers N` process has its own registry)
        self.process_info = Gauge("tokenbroker_process_info", "This worker process", ["pid"], registry=r)
        self.process_info.labels(str(os.getpid())).set(1)
        self.throttled_total = Counter("tokenbroker_throttled_total", "Requests refused 429 by the throttle",
                                       ["endpoint", "key_kind"], registry=r)

        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, bound once and kept (at most MAX_BOUND_CHILDREN of them)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*labels)
            if len(self._children) < MAX_BOUND_CHILDREN:
                self._children[key] = found
        return found

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """requests_total + request_seconds, with the label children bound once per (route, method, status)."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests_total.labels(route, method, str(status)),
                        self.request_seconds.labels(route, method))
            if len(self._request_children) < MAX_BOUND_CHILDREN:   # odd methods stay unbound
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
