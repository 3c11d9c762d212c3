"""The bare baselines: the same work as the broker's routes with nothing else around it.

    python -m bench.baseline --port P --workers N --entra-url URL --tenant TID --acs-url URL
                             --acs-key KEY --ca PEM --audience AUD [--audience AUD ...]

A plain aiohttp app (the same event loop as `tokenbroker serve`: uvloop when installed), N
processes on one port (SO_REUSEPORT), no middleware, no logging, no metrics:
  GET  /hello     {"hello": "world"}
  GET  /verify    PyJWT RS256 verify of the bearer token (key by kid, fetched once)
  GET  /upstream  verify the Teams token + one HTTPS call: the ACS Teams exchange (HMAC-signed)
  POST /sign      verify the form's subject_token + PyJWT ES256 sign of a small token
Prints one JSON `server.started` line (with its pid) per worker.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

TEAMS_PATH = "/teamsUser/:exchangeAccessToken?api-version=2023-10-01"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.baseline")
    for name in ("--entra-url", "--tenant", "--acs-url", "--acs-key", "--ca"):
        p.add_argument(name, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--audience", action="append", required=True)
    p.add_argument("--teams-audience", default="https://auth.msft.communication.azure.com")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p


def _bearer(request: web.Request) -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ")


def build_app(args: argparse.Namespace, keys: dict[str, Any]) -> web.Application:
    ssl_ctx = ssl.create_default_context(cafile=args.ca)
    signing_key = ec.generate_private_key(ec.SECP256R1())
    acs_host = urlsplit(args.acs_url).netloc
    acs_key = base64.b64decode(args.acs_key)

    def verify(token: str, audience: str | list[str]) -> dict[str, Any]:
        kid = jwt.get_unverified_header(token)["kid"]
        return jwt.decode(token, keys[kid], algorithms=["RS256"], audience=audience)

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    async def verified(request: web.Request) -> web.Response:
        claims = verify(_bearer(request), args.audience)
        return web.json_response({"oid": claims["oid"], "tid": claims["tid"]})

    async def upstream(request: web.Request) -> web.Response:
        claims = verify(request.headers["teams-user-aad-token"], args.teams_audience)
        body = json.dumps({"token": request.headers["teams-user-aad-token"], "appId": claims["appid"],
                           "userId": claims["oid"]}).encode()
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        date = formatdate(usegmt=True)
        to_sign = f"POST\n{TEAMS_PATH}\n{date};{acs_host};{digest}"
        signature = base64.b64encode(hmac.new(acs_key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers = {"x-ms-date": date, "x-ms-content-sha256": digest, "Content-Type": "application/json",
                   "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
                                    f"&Signature={signature}"}
        async with request.app["http"].post(f"{args.acs_url}{TEAMS_PATH}", data=body, headers=headers,
                                            ssl=ssl_ctx) as resp:
            answer = await resp.json()
            if resp.status != 200:
                return web.json_response(answer, status=502)
        return web.json_response({"token": answer["token"], "expiresOn": answer["expiresOn"]}, status=201)

    async def sign(request: web.Request) -> web.Response:
        form = await request.post()
        claims = verify(str(form["subject_token"]), args.audience)
        now = int(time.time())
        token = jwt.encode({"iss": "http://baseline", "sub": claims["oid"], "aud": "dashboard", "iat": now,
                            "exp": now + 600, "jti": uuid.uuid4().hex, "scope": "read"},
                           signing_key, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"})
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": 600})

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app["http"] = aiohttp.ClientSession()
        yield
        await app["http"].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.add_routes([web.get("/hello", hello), web.get("/verify", verified), web.get("/upstream", upstream),
                    web.post("/sign", sign)])
    return app


def _keys(args: argparse.Namespace) -> dict[str, Any]:
    import urllib.request
    ctx = ssl.create_default_context(cafile=args.ca)
    url = f"{args.entra_url}/{args.tenant}/discovery/v2.0/keys"
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        return {k["kid"]: jwt.PyJWK(k).key for k in json.loads(resp.read())["keys"]}


async def _serve(args: argparse.Namespace) -> None:
    app = build_app(args, _keys(args))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port, reuse_port=True, backlog=1024).start()
    # one write per line: the workers share stdout, and with PYTHONUNBUFFERED print() writes the
    # newline separately, so two workers' lines could interleave as `{…}{…}\n\n`
    sys.stdout.write(json.dumps({"event": "server.started", "pid": os.getpid(), "port": args.port}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child or args.workers == 1:
        try:
            import uvloop  # the same loop `tokenbroker serve` uses when the [speed] extra is installed
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
        asyncio.run(_serve(args))
        return 0
    argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    children = [subprocess.Popen([sys.executable, "-m", "bench.baseline", *argv, "--child"])
                for _ in range(args.workers)]
    signal.signal(signal.SIGTERM, lambda *_: [c.terminate() for c in children])
    return max(c.wait() for c in children)


if __name__ == "__main__":
    sys.exit(main())
