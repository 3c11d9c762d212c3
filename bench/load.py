"""One bounded `wrk` run against one scenario, with the server's CPU time around it.

`wrk -t1 -c32` (one load-generator thread, keep-alive) drives `rotate.lua`, which takes the
next token from the scenario's token file for every request (a one-line file repeats one
token). Each run is bounded: `wrk -d`, `--timeout`, and a subprocess timeout on top.
"""

from __future__ import annotations

import json
import resource
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .procs import cpu_seconds

LUA = Path(__file__).with_name("rotate.lua")


@dataclass
class Scenario:
    key: str                     # short id, e.g. "me_hit"
    url: str
    method: str = "GET"
    headers: tuple[str, ...] = ()       # "Name: value", "{T}" = the next token
    body: str = ""                      # "{T}" = the next token
    tokens: Path | None = None          # one token per line; None = no token
    pids: Callable[[], Sequence[int]] = lambda: ()   # the server processes whose CPU is counted
    cursor: list[int] = field(default_factory=lambda: [0])   # shared by scenarios of one token list
    emulators: Callable[[], Sequence[int]] = lambda: ()   # upstream processes whose CPU is reported apart


@dataclass
class Run:
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_us: float                # server CPU per request
    wrk_cpu_us: float = 0.0      # the load generator's own CPU per request (it shares the cores)
    emulator_cpu_us: float = 0.0  # the emulators' CPU per request (they share the cores too)


def wrk_run(s: Scenario, *, seconds: float, connections: int = 32) -> Run:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(LUA),
            s.url, "--", str(s.tokens) if s.tokens else "-", str(s.cursor[0]), s.method, s.body,
            *s.headers]
    pids = list(s.pids())
    upstream = list(s.emulators())
    cpu_before, wrk_before, up_before = cpu_seconds(pids), _children_cpu(), cpu_seconds(upstream)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu, wrk_cpu = cpu_seconds(pids) - cpu_before, _children_cpu() - wrk_before
    up_cpu = cpu_seconds(upstream) - up_before
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed for {s.key}: {done.stderr.strip() or done.stdout.strip()}"[:500])
    r = json.loads(line[len("WRKJSON "):])
    n = int(r["requests"])
    # every request sent advances the token list (in-flight ones too), so the next run starts fresh
    s.cursor[0] += n + connections
    errors = sum(int(r[k]) for k in ("connect", "read", "write", "status", "timeout"))
    return Run(rps=n / (r["duration_us"] / 1e6), requests=n, errors=errors,
               p50_ms=r["p50_us"] / 1000, p99_ms=r["p99_us"] / 1000,
               cpu_us=cpu * 1e6 / n if n else 0.0, wrk_cpu_us=wrk_cpu * 1e6 / n if n else 0.0,
               emulator_cpu_us=up_cpu * 1e6 / n if n else 0.0)


def _children_cpu() -> float:
    """utime+stime of the finished children waited for (each wrk run is one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_wrk() -> None:
    try:
        subprocess.run(["wrk", "--version"], capture_output=True, timeout=10, check=False)
    except FileNotFoundError:
        raise SystemExit("bench: `wrk` is not installed — run `make system-deps` (as root) first") from None
