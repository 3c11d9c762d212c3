"""`python -m bench [--quick] [--rounds N] [--seconds S]` — the broker next to bare baselines.

Starts, each in its own processes: the Entra and ACS emulators (`tokenbroker emulate`), the
broker (`tokenbroker serve --workers 2`, and a 1-worker one for the scaling row) and the bare
baselines (`python -m bench.baseline`, 2 workers). Mints the token lists (distinct lists are
longer than twice every per-worker cache), then runs every scenario with one `wrk -t1 -c32`,
in interleaved rounds, and prints the Markdown report on stdout (progress goes to stderr).
`make bench` writes it to bench/RESULTS.md and splices it into README.md.

Every wrk run is bounded, the whole run is bounded by an alarm, and every process started
here is stopped on the way out (also on errors and Ctrl-C). `--quick` is the smoke test:
small token lists, one short round, same code path.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .load import Run, Scenario, check_wrk, wrk_run
from .observe import Counters, cache_counters, delta
from .procs import Proc, Stack, rss_mib, worker_pids
from .report import render
from .scenarios import (
    BENCH_CLIENT,
    BENCH_SECRET,
    DISTINCT_TOKENS,
    MUST_MISS,
    ORDER,
    QUICK_TOKENS,
    broker_config,
    exchange_form,
)
from .tokens import distinct_copies, mint_template, write_list

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WALL_LIMIT = 15 * 60     # seconds; the whole bench stops (and cleans up) after this


def _say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token_list(work: Path, name: str, template: str, key_pem: bytes, count: int) -> Path:
    """A file of `count` distinct tokens like `template` (the emulator's kid changes with every
    start, so the lists are minted afresh on every run)."""
    started = time.monotonic()
    path = write_list(work / f"{name}.tokens", distinct_copies(template, key_pem, count, tag=name))
    _say(f"minted {count:,} {name} tokens in {time.monotonic() - started:.0f} s")
    return path


def _post(url: str, body: str, headers: dict[str, str]) -> dict:
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def _one(path: Path, token: str) -> Path:
    path.write_text(token + "\n")
    return path


def run(args: argparse.Namespace) -> str:
    from emulators.entra import demo

    work = Path(args.workdir).resolve() if args.workdir else ROOT / ".bench" / ("quick" if args.quick else "full")
    pki = work / "pki"
    work.mkdir(parents=True, exist_ok=True)
    count = QUICK_TOKENS if args.quick else DISTINCT_TOKENS
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with Stack(work) as stack:
        entra = stack.start("entra", [PY, "-m", "service", "emulate", "entra", "--pki", str(pki),
                                      "--token-lifetime", "86400"])
        entra_url, ca = entra.started[0]["url"], entra.started[0]["ca_bundle"]
        acs = stack.start("acs", [PY, "-m", "service", "emulate", "acs", "--pki", str(pki),
                                  "--entra-url", entra_url])
        acs_url, acs_key = acs.started[0]["url"], acs.started[0]["access_key"]
        brokers: dict[int, tuple[Proc, str]] = {}
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TOKENBROKER_")},
               "TOKENBROKER_STORE__URL": "memory://"}
        for workers in (2, 1):
            port = _free_port()
            config = work / f"bench-{workers}w.toml"     # next to pki/ (its paths are relative)
            config.write_text(broker_config(port=port, entra_url=entra_url, acs_url=acs_url, acs_key=acs_key,
                                            demo=demo))
            proc = stack.start(f"broker-{workers}w", [PY, "-m", "service", "serve", "--config", str(config),
                                                      "--workers", str(workers)], expect=workers, env=env)
            brokers[workers] = (proc, f"http://127.0.0.1:{port}")
        base_port = _free_port()
        baseline = stack.start("baseline", [
            PY, "-m", "bench.baseline", "--port", str(base_port), "--workers", "2", "--entra-url", entra_url,
            "--tenant", demo.TENANT_ID, "--acs-url", acs_url, "--acs-key", acs_key, "--ca", ca,
            "--audience", demo.BROKER_CLIENT_ID, "--audience", f"api://{demo.BROKER_CLIENT_ID}"], expect=2)
        base_url = f"http://127.0.0.1:{base_port}"

        _say("minting tokens")
        key_pem = (pki / "entra-signing.key").read_bytes()
        user = mint_template(entra_url, ca, {"resource": demo.BROKER_CLIENT_ID, "user": demo.ALICE_UPN,
                                             "client_id": demo.CLIENT_ID, "scopes": ["user_impersonation"]})
        teams = mint_template(entra_url, ca, {"resource": demo.ACS_APP_ID_URI, "user": demo.ALICE_UPN,
                                              "client_id": demo.CLIENT_ID, "version": 1,
                                              "scopes": ["Teams.ManageCalls", "Teams.ManageChats"]})
        users = _token_list(work, "user", user, key_pem, count)
        obo_users = _token_list(work, "obo", user, key_pem, count)
        teams_list = _token_list(work, "teams", teams, key_pem, count)
        one_user, one_teams = _one(work / "one-user.tokens", user), _one(work / "one-teams.tokens", teams)

        (b2, url2), (b1, url1) = brokers[2], brokers[1]
        basic = "Authorization: Basic " + base64.b64encode(f"{BENCH_CLIENT}:{BENCH_SECRET}".encode()).decode()
        form_headers = {"Authorization": basic.split(": ", 1)[1],
                        "Content-Type": "application/x-www-form-urlencoded"}
        ours = _post(f"{url2}/oauth2/token", exchange_form(user), form_headers)["access_token"]
        p2, p1, pb = (lambda: worker_pids(b2)), (lambda: worker_pids(b1)), (lambda: worker_pids(baseline))

        def ups() -> list[int]:   # the emulators' CPU, reported apart
            return [*entra.pids, *acs.pids]

        bearer = "Authorization: Bearer {T}"
        form = ("Content-Type: application/x-www-form-urlencoded", basic)
        user_cursor, base_user_cursor = [0], [0]
        s = {sc.key: sc for sc in [
            Scenario("hello", f"{base_url}/hello", pids=pb),
            Scenario("verify", f"{base_url}/verify", headers=(bearer,), tokens=users, pids=pb,
                     cursor=base_user_cursor),
            Scenario("upstream", f"{base_url}/upstream", headers=("teams-user-aad-token: {T}",),
                     tokens=teams_list, pids=pb, emulators=ups),
            Scenario("sign", f"{base_url}/sign", "POST", form, exchange_form("{T}"), users, pb,
                     base_user_cursor),
            Scenario("me_hit", f"{url2}/api/me", headers=(bearer,), tokens=one_user, pids=p2),
            Scenario("me_hit_1w", f"{url1}/api/me", headers=(bearer,), tokens=one_user, pids=p1),
            Scenario("teams_hit", f"{url2}/api/token/teams", headers=(f"Authorization: Bearer {user}",
                     "teams-user-aad-token: {T}"), tokens=one_teams, pids=p2),
            Scenario("me_distinct", f"{url2}/api/me", headers=(bearer,), tokens=users, pids=p2,
                     cursor=user_cursor),
            Scenario("teams_distinct", f"{url2}/api/token/teams", headers=(f"Authorization: Bearer {user}",
                     "teams-user-aad-token: {T}"), tokens=teams_list, pids=p2, emulators=ups),
            Scenario("oauth_repeat", f"{url2}/oauth2/token", "POST", form, exchange_form("{T}"), one_user, p2),
            Scenario("oauth_distinct", f"{url2}/oauth2/token", "POST", form, exchange_form("{T}"), users, p2,
                     user_cursor),
            Scenario("obo_hit", f"{url2}/api/token/obo/workspace", "POST", (bearer,), tokens=one_user, pids=p2),
            Scenario("obo_miss", f"{url2}/api/token/obo/workspace", "POST", (bearer,), tokens=obo_users,
                     pids=p2, emulators=ups),
            Scenario("introspect", f"{url2}/oauth2/introspect", "POST", form, "token={T}",
                     _one(work / "ours.tokens", ours), p2),
        ]}
        order_all = [k for k in ORDER if not args.only or k in args.only.split(",")]
        warm = 1.0
        _say(f"warming up every scenario ({warm:g} s each)")
        for key in order_all:
            run_ = wrk_run(s[key], seconds=warm, connections=args.connections)
            if run_.errors:
                raise SystemExit(f"bench: the warm-up of {key} had {run_.errors} errors of {run_.requests}; "
                                 f"see {work}/*.stderr")
        if args.profile:
            return profile(s, args.profile.split(","), work, seconds=args.seconds, connections=args.connections)
        results: dict[str, list[Run]] = {k: [] for k in order_all}
        counters: dict[str, Counters] = {}
        split: dict[int, float] = {}
        for rnd in range(args.rounds):
            order = order_all if rnd % 2 == 0 else order_all[::-1]
            _say(f"round {rnd + 1}/{args.rounds}")
            for key in order:
                watch = s[key].pids is p2
                split_before: dict[int, Counters] = {}
                split_after: dict[int, Counters] = {}
                before = cache_counters(url2, p2(), split_before) if watch else {}
                results[key].append(wrk_run(s[key], seconds=args.seconds, connections=args.connections))
                if watch:
                    d = delta(cache_counters(url2, p2(), split_after), before)
                    if key == "me_hit":   # every request is one entra_tokens hit: the workers' split
                        for pid, after in split_after.items():
                            hit = ("entra_tokens", "hit")
                            split[pid] = split.get(pid, 0.0) + after.get(hit, 0.0) - split_before[pid].get(hit, 0.0)
                    counters[key] = {k: counters.get(key, {}).get(k, 0.0) + d.get(k, 0.0)
                                     for k in set(d) | set(counters.get(key, {}))}
        rss = [rss_mib(pid) for pid in p2()]
    for key, cache in MUST_MISS.items():
        hits = counters.get(key, {}).get((cache, "hit"), 0.0)
        if hits and not args.quick:
            _say(f"WARNING: {key} hit the {cache} cache {hits:.0f} times")
    command = "python -m bench --quick" if args.quick else "make bench"
    return render(results, counters, rss, command=command, rounds=args.rounds, seconds=args.seconds,
                  connections=args.connections, tokens=count, started=started, split=list(split.values()))


def profile(s: dict[str, Scenario], keys: list[str], work: Path, *, seconds: float, connections: int) -> str:
    """py-spy (from the dev extra) on the first server process of each scenario, under load."""
    out = []
    for key in keys:
        pid = list(s[key].pids())[0]
        dest = work / f"profile-{key}.txt"
        spy = subprocess.Popen([str(Path(PY).parent / "py-spy"), "record", "--format", "raw", "-r", "200", "-d", f"{seconds:g}",
                                "-p", str(pid), "-o", str(dest)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = wrk_run(s[key], seconds=seconds, connections=connections)
        spy.wait(timeout=seconds + 60)
        out.append(f"{key}: {r.rps:,.0f} req/s, {r.cpu_us:,.0f} µs CPU/request, {r.errors} errors -> {dest}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="smoke test: small lists, one short round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workdir", help="state, token lists and server logs (default .bench/full or .bench/quick)")
    p.add_argument("--only", metavar="SCENARIO[,...]",
                   help="run only these scenarios (a partial table, for quick comparisons)")
    p.add_argument("--profile", metavar="SCENARIO[,...]", help="py-spy one worker per scenario; no table")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    check_wrk()

    def too_long(*_: object) -> None:
        raise SystemExit(f"bench: stopped after {WALL_LIMIT} s")

    signal.signal(signal.SIGALRM, too_long)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(WALL_LIMIT)
    print(run(args), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
