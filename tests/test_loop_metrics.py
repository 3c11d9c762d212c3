"""LoopCounter / LoopHistogram (the per-request series) expose exactly what prometheus_client's
Counter / Histogram would for the same events (issue 12: same /metrics, no lock per inc)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from service.metrics import _LATENCY_BUCKETS, LoopCounter, LoopHistogram

OBSERVED = [0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.03, 0.5, 1, 10, 10.5, 1e9]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples if not s.name.endswith("_created")}


def test_histogram_buckets_sum_and_count_match_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("t_seconds", "doc", ["route"], buckets=_LATENCY_BUCKETS, registry=ours)
    reference = Histogram("t_seconds", "doc", ["route"], buckets=_LATENCY_BUCKETS, registry=theirs)
    for value in OBSERVED:   # bucket bounds themselves included: `le` means <=
        loop.labels("/a").observe(value)
        reference.labels("/a").observe(value)
    loop.labels(route="/b").observe(0.2)
    reference.labels(route="/b").observe(0.2)
    assert _samples(ours) == _samples(theirs)


def test_counter_matches_prometheus_client_and_refuses_going_down() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("t_events", "doc", ["cache", "event"], registry=ours)
    reference = Counter("t_events", "doc", ["cache", "event"], registry=theirs)
    for labels, n in ((("x", "hit"), 3), (("x", "miss"), 1), (("y", "hit"), 2.5)):
        loop.labels(*labels).inc(n)
        reference.labels(*labels).inc(n)
    assert _samples(ours) == _samples(theirs)
    assert ours.get_sample_value("t_events_created", {"cache": "x", "event": "hit"}) is not None
    with pytest.raises(ValueError):
        loop.labels("x", "hit").inc(-1)
    with pytest.raises(ValueError):
        loop.labels("only-one")
    with pytest.raises(ValueError):
        loop.labels(cache="x")
