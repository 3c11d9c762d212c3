"""The broker's own counters: cache hit/miss per worker, read from its `/metrics`.

Each worker has its own registry; `/metrics` answers for whichever worker accepted the
connection (the least-loaded worker, service/http/balance.py), so the bench opens fresh connections until it has seen every worker
(`tokenbroker_process_info{pid}` says which one answered) and sums them.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Collection

_CACHE = re.compile(r'^tokenbroker_cache_events_total\{cache="([^"]+)",event="([^"]+)"\} ([0-9.e+]+)$', re.M)
_PID = re.compile(r'^tokenbroker_process_info\{pid="(\d+)"\}', re.M)
MAX_TRIES = 200

Counters = dict[tuple[str, str], float]


def _scrape(url: str) -> tuple[int, Counters]:
    req = urllib.request.Request(f"{url}/metrics", headers={"Connection": "close"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    pid = _PID.search(text)
    counters = {(c, e): float(v) for c, e, v in _CACHE.findall(text)}
    return (int(pid.group(1)) if pid else 0), counters


def cache_counters(url: str, pids: Collection[int], per_worker: dict[int, Counters] | None = None) -> Counters:
    """cache_events_total summed over the workers `pids` (each scraped once); `per_worker`
    (if given) receives each worker's own counters."""
    seen: dict[int, Counters] = {}
    for _ in range(MAX_TRIES):
        pid, counters = _scrape(url)
        seen.setdefault(pid, counters)
        if set(pids) <= set(seen):
            break
    else:
        raise RuntimeError(f"bench: /metrics never answered from every worker {sorted(pids)}")
    if per_worker is not None:
        per_worker.update({pid: seen[pid] for pid in pids})
    total: Counters = {}
    for pid in pids:
        for k, v in seen[pid].items():
            total[k] = total.get(k, 0.0) + v
    return total


def delta(after: Counters, before: Counters) -> Counters:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}
