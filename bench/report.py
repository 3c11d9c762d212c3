"""The Markdown that `make bench` writes to bench/RESULTS.md (and README's bench section)."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from .load import Run
from .observe import Counters
from .scenarios import EXTRA, MUST_MISS, NODE_SAMPLE_TEAMS_RPS, ROWS, SCALING, Row

Results = Mapping[str, Sequence[Run]]


def median_rps(runs: Sequence[Run]) -> float:
    return statistics.median(r.rps for r in runs) if runs else 0.0


def _cell(runs: Sequence[Run]) -> str:
    if not runs:
        return "n/a"
    rps = [r.rps for r in runs]
    return f"{median_rps(runs):,.0f} ({min(rps):,.0f}–{max(rps):,.0f})"


def _lat(runs: Sequence[Run]) -> str:
    if not runs:
        return ""
    return (f"{statistics.median(r.p50_ms for r in runs):.1f} / "
            f"{statistics.median(r.p99_ms for r in runs):.1f}")


def _cpu(runs: Sequence[Run]) -> float:
    return statistics.median(r.cpu_us for r in runs) if runs else 0.0


def verdict(row: Row, results: Results) -> tuple[str, bool]:
    broker, base = results.get(row.key, ()), results.get(row.baseline, ())
    if not broker or not base:
        return "n/a", False
    if row.cpu_ratio:
        ratio = _cpu(broker) / _cpu(base) if _cpu(base) else float("inf")
        return f"CPU {_cpu(broker):,.0f} vs {_cpu(base):,.0f} µs = {ratio:.2f}×", ratio <= row.cpu_ratio
    ratio = median_rps(broker) / median_rps(base) if median_rps(base) else 0.0
    return f"{ratio:.2f}×", ratio >= row.ratio


def _target(row: Row) -> str:
    return f"CPU ≤ {row.cpu_ratio:g}×" if row.cpu_ratio else f"≥ {row.ratio:g}×"


def machine_facts() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp
    try:
        import uvloop
        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model or platform.machine()}), Linux {platform.release()}, "
            f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, {loop}; "
            f"load average at the end {load}")


def render(results: Results, counters: Mapping[str, Counters], rss: Sequence[float], *, command: str,
           rounds: int, seconds: float, connections: int, tokens: int, started: str,
           split: Sequence[float] = ()) -> str:
    out = [f"Measured {started} with `{command}`: one `wrk -t1 -c{connections}` (keep-alive), "
           f"{seconds:g} s per run, {rounds} interleaved round(s) (order reversed every other round), "
           f"medians with min–max; broker `serve --workers 2`, emulators and baselines in their own "
           f"processes, on {machine_facts()}.", "",
           "| scenario | broker req/s | p50 / p99 ms | CPU µs/req | baseline in the same run | "
           "baseline req/s | CPU µs/req | ratio | target | holds |",
           "|---|---:|---:|---:|---|---:|---:|---:|---:|:---:|"]
    holds_all = True
    failed: list[str] = []
    for row in [*ROWS, SCALING]:
        broker, base = results.get(row.key, ()), results.get(row.baseline, ())
        text, ok = verdict(row, results)
        holds_all &= ok
        if not ok:
            failed.append(f"{row.label} ({text}, target {_target(row)})")
        label = row.label
        out.append(f"| {label} | {_cell(broker)} | {_lat(broker)} | {_cpu(broker):,.0f} | {row.baseline_label} | "
                   f"{_cell(base)} | {_cpu(base):,.0f} | {text} | {_target(row)} | {'yes' if ok else '**no**'} |")
    teams = results.get("teams_distinct", ())
    if teams:
        node_ok = median_rps(teams) > NODE_SAMPLE_TEAMS_RPS
        holds_all &= node_ok
        if not node_ok:
            failed.append(f"the distinct-token Teams path against the Node sample's {NODE_SAMPLE_TEAMS_RPS} req/s "
                          f"({median_rps(teams):,.0f} req/s)")
        out.append(f"| GET /api/token/teams, distinct Teams tokens, against the Node.js ACS sample | "
                   f"{_cell(teams)} | {_lat(teams)} | {_cpu(teams):,.0f} | the Node sample in issue 12's run "
                   f"(not run here) | {NODE_SAMPLE_TEAMS_RPS:,} | | "
                   f"{median_rps(teams) / NODE_SAMPLE_TEAMS_RPS:.2f}× | > 1× | {'yes' if node_ok else '**no**'} |")
    out += ["", "| other scenario | req/s | p50 / p99 ms | CPU µs/req |", "|---|---:|---:|---:|"]
    for key, label in EXTRA:
        runs = results.get(key, ())
        out.append(f"| {label} | {_cell(runs)} | {_lat(runs)} | {_cpu(runs):,.0f} |")
    if sum(split):
        out += ["", "The split of the /api/me cache-hit requests between the broker's workers: "
                + " / ".join(f"{100 * n / sum(split):.0f} %" for n in split) + "."]
    wrk = [f"{key} {statistics.median(r.wrk_cpu_us for r in runs):,.0f}" for key, runs in results.items() if runs]
    out += ["", "The load generator's own CPU µs per request (wrk shares the 2 cores with the servers): "
            + ", ".join(wrk) + "."]
    up = [f"{key} {statistics.median(r.emulator_cpu_us for r in runs):,.0f}" for key, runs in results.items()
          if runs and any(r.emulator_cpu_us for r in runs)]
    if up:
        out += ["", "The emulators' CPU µs per request (Entra + ACS, on the same 2 cores; in neither CPU "
                "column above): " + ", ".join(up) + "."]
    errors = sum(r.errors for runs in results.values() for r in runs)
    total = sum(r.requests for runs in results.values() for r in runs)
    out += ["", f"Errors (non-2xx, socket errors, timeouts): {errors:,} of {total:,} requests. "
                f"Every target holds: {'yes' if holds_all and not errors else 'no'}"
                + (f" — not held: {'; '.join(failed)}." if failed else "."), "",
            f"Cache events in the broker's own `/metrics` (both workers) during the timed runs; the "
            f"distinct-token lists hold {tokens:,} tokens each (per-worker caches: 10,000 entries):", "",
            "| scenario | cache | hits | misses |", "|---|---|---:|---:|"]
    for key in ["me_hit", "teams_hit", "obo_hit", *MUST_MISS]:
        c = counters.get(key, {})
        caches = sorted({name for name, _ in c} | ({MUST_MISS[key]} if key in MUST_MISS else set()))
        for cache in caches:
            out.append(f"| {key} | {cache} | {c.get((cache, 'hit'), 0):,.0f} | {c.get((cache, 'miss'), 0):,.0f} |")
    out += ["", "RSS per broker worker after the distinct-token runs (caches full): "
            + ", ".join(f"{m:.0f} MiB" for m in rss) + "."]
    return "\n".join(out) + "\n"
