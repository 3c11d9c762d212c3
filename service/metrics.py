"""Prometheus metrics, one registry per app so tests and replicas never share counters.

The per-request series (`tokenbroker_requests_total`, `tokenbroker_request_seconds`,
`tokenbroker_cache_events_total`, `tokenbroker_token_exchange_total`) are `LoopCounter`/`LoopHistogram`: plain numbers bumped on
the event loop thread (no lock, no per-call checks) and turned into Prometheus families only
when `/metrics` is scraped. prometheus_client's own children take a mutex and run several
checks per `inc()`; with five or six of them per request that was ~10 µs of a cache hit
(measured in place). Everything counted off the loop (threads) stays prometheus_client's.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

MAX_BOUND_CHILDREN = 1000
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Labelled(Collector):
    """`labels(*values)` / `labels(**values)` → the child for those values (created once by
    `new_child`)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None, new_child: Callable[[], Any]) -> None:
        self._name, self._doc, self._labelnames = name, documentation, tuple(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        self._new_child = new_child
        if registry is not None:
            registry.register(self)

    def labels(self, *values: Any, **kw: Any) -> Any:
        if kw:
            if values or set(kw) != set(self._labelnames):
                raise ValueError(f"{self._name}: labels {sorted(kw)} are not {list(self._labelnames)}")
            values = tuple(kw[n] for n in self._labelnames)
        elif len(values) != len(self._labelnames):
            raise ValueError(f"{self._name}: {len(values)} label values for {list(self._labelnames)}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def describe(self) -> list[Metric]:
        return []


class _CountChild:
    __slots__ = ("value", "created")

    def __init__(self) -> None:
        self.value, self.created = 0.0, time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class LoopCounter(_Labelled):
    """A labelled counter for the event loop thread (see the module docstring)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *,
                 registry: CollectorRegistry | None) -> None:
        super().__init__(name, documentation, labelnames, registry, _CountChild)

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labelnames)
        for labels, child in list(self._children.items()):
            family.add_metric(labels, child.value, created=child.created)
        return [family]


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds, self.counts, self.sum = bounds, [0] * (len(bounds) + 1), 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1   # le: amount <= bound
        self.sum += amount


class LoopHistogram(_Labelled):
    """A labelled histogram for the event loop thread (see the module docstring)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *,
                 buckets: Sequence[float], registry: CollectorRegistry | None) -> None:
        bounds = tuple(float(b) for b in buckets)
        super().__init__(name, documentation, labelnames, registry, lambda: _HistogramChild(bounds))

    def collect(self) -> list[Metric]:
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)
        for labels, child in list(self._children.items()):
            family.add_metric(labels, list(_cumulative(child)), child.sum)
        return [family]


def _cumulative(child: _HistogramChild) -> Iterator[tuple[str, float]]:
    total = 0
    for bound, count in zip((*child.bounds, float("inf")), child.counts, strict=True):
        total += count
        yield floatToGoString(bound), float(total)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.requests_total = LoopCounter("tokenbroker_requests", "HTTP requests",
                                          ["route", "method", "status"], registry=r)
        self.request_seconds = LoopHistogram("tokenbroker_request_seconds", "HTTP request latency",
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
        self.cache_events_total = LoopCounter("tokenbroker_cache_events", "Cache hits, misses, coalesced",
                                              ["cache", "event"], registry=r)
        self.token_exchange_total = LoopCounter("tokenbroker_token_exchange", "Token endpoint decisions",
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
        children[0].value += 1
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
