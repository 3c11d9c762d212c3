"""`python -m bench [--seconds S] [--concurrency C] [--port P]` — throughput and latency.

Starts `tokenbroker dev` (broker + emulators in one process) on loopback, warms each
scenario once, then drives it from this process with C concurrent keep-alive connections for
S seconds, and prints a Markdown table (requests/s, p50/p95/p99 in ms, errors). Traffic only
goes to 127.0.0.1; every loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

MAX_REQUESTS = 200_000  # hard bound per scenario
COLD_TOKENS = 1500      # distinct tokens minted up front for the cache-miss scenarios


def _start_dev(port: int, state: Path) -> tuple[subprocess.Popen, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENBROKER_")}
    proc = subprocess.Popen([sys.executable, "-m", "service", "dev", "--port", str(port), "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("tokenbroker dev exited early")
        if line.startswith("{") and json.loads(line).get("event") == "server.started":
            # Keep reading its log so a full pipe never stalls the broker.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, json.loads(line)
    raise SystemExit("tokenbroker dev did not start")


async def _mint(http: aiohttp.ClientSession, entra: str, ssl_ctx, **body) -> str:
    async with http.post(f"{entra}/_emulator/token", json=body, ssl=ssl_ctx) as resp:
        return (await resp.json())["access_token"]


async def _drive(http, make_request, seconds: float, concurrency: int, limit: int = MAX_REQUESTS) -> dict:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at and len(latencies) + concurrency <= limit:
            started = time.perf_counter()
            method, url, kw, expect = make_request()
            async with http.request(method, url, **kw) as resp:
                await resp.read()
                if resp.status != expect:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    return {"rps": len(latencies) / elapsed, "p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
            "n": len(latencies), "errors": errors}


async def run(seconds: float, concurrency: int, port: int) -> str:
    from emulators.entra import demo

    state = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    proc, started = _start_dev(port, state)
    try:
        broker, entra = f"http://127.0.0.1:{port}", started["entra_url"]
        ssl_ctx = ssl.create_default_context(cafile=started["ca_bundle"])
        connector = aiohttp.TCPConnector(limit=concurrency * 2)
        async with aiohttp.ClientSession(connector=connector) as http:
            user = await _mint(http, entra, ssl_ctx, resource=demo.BROKER_CLIENT_ID, user=demo.ALICE_UPN,
                               client_id=demo.CLIENT_ID, scopes=["user_impersonation"])
            teams = await _mint(http, entra, ssl_ctx, resource=demo.ACS_APP_ID_URI, user=demo.ALICE_UPN,
                                client_id=demo.CLIENT_ID, scopes=["Teams.ManageCalls", "Teams.ManageChats"],
                                version=1)
            bearer = {"Authorization": f"Bearer {user}"}
            fresh = [await _mint(http, entra, ssl_ctx, resource=demo.BROKER_CLIENT_ID, user=demo.ALICE_UPN,
                                 client_id=demo.CLIENT_ID, scopes=["user_impersonation"], claims={"n": i})
                     for i in range(COLD_TOKENS)]
            fresh_teams = [await _mint(http, entra, ssl_ctx, resource=demo.ACS_APP_ID_URI, user=demo.ALICE_UPN,
                                       client_id=demo.CLIENT_ID, version=1, claims={"n": i},
                                       scopes=["Teams.ManageCalls", "Teams.ManageChats"])
                           for i in range(COLD_TOKENS)]
            first_sight, obo_cold, teams_cold = iter(fresh), iter(list(fresh)), iter(fresh_teams)
            basic = {"Authorization": "Basic " + base64.b64encode(b"demo-portal:demo-portal-secret-DEV-ONLY-not-for-prod").decode()}
            form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": user,
                    "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "audience": "dashboard", "scope": "read"}
            scenarios = {
                "GET /healthz (baseline)": lambda: ("GET", f"{broker}/healthz", {}, 200),
                "GET /api/me (local validation, verified-token cache hit)":
                    lambda: ("GET", f"{broker}/api/me", {"headers": bearer}, 200),
                "POST /api/token/obo/workspace (OBO cache hit)":
                    lambda: ("POST", f"{broker}/api/token/obo/workspace", {"headers": bearer}, 200),
                "GET /api/token/teams (ACS exchange cache hit)":
                    lambda: ("GET", f"{broker}/api/token/teams",
                             {"headers": {**bearer, "teams-user-aad-token": teams}}, 201),
                "POST /oauth2/token (RFC 8693: Entra token -> own ES256 JWT + refresh token in SQLite)":
                    lambda: ("POST", f"{broker}/oauth2/token", {"data": form, "headers": basic}, 200),
            }
            cold = {
                "GET /api/me (first sight of each token: RSA verify)":
                    lambda: ("GET", f"{broker}/api/me", {"headers": _bearer(next(first_sight))}, 200),
                "POST /api/token/obo/workspace (cache miss: Entra OBO round trip)":
                    lambda: ("POST", f"{broker}/api/token/obo/workspace", {"headers": _bearer(next(obo_cold))}, 200),
                "GET /api/token/teams (cache miss: ACS round trip)":
                    lambda: ("GET", f"{broker}/api/token/teams",
                             {"headers": {**bearer, "teams-user-aad-token": next(teams_cold)}}, 201),
            }
            rows = []
            for name, make in scenarios.items():
                method, url, kw, expect = make()
                async with http.request(method, url, **kw) as resp:  # warm caches
                    if resp.status != expect:
                        rows.append(f"| {name} | warm-up answered {resp.status} | | | | |")
                        continue
                r = await _drive(http, make, seconds, concurrency)
                rows.append(_row(name, r))
            for name, make in cold.items():
                r = await _drive(http, make, seconds, concurrency, limit=COLD_TOKENS - 1)
                rows.append(_row(name, r))
        header = ("| scenario | req/s | p50 ms | p95 ms | p99 ms | errors / requests |\n"
                  "|---|---:|---:|---:|---:|---:|")
        return header + "\n" + "\n".join(rows)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _row(name: str, r: dict) -> str:
    return (f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} "
                            f"| {r['errors']} / {r['n']} |")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=8700)
    args = parser.parse_args()
    print(f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPUs with {args.concurrency} connections, "
          f"{args.seconds:.0f} s per scenario (`python -m bench --seconds {args.seconds:g}`):\n")
    print(asyncio.run(run(args.seconds, args.concurrency, args.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
