"""`python -m minimal_client serve [--config FILE] [--host H] [--port P]`.

Without `--config` (and without `MINIMAL_CLIENT_CONFIG`), the `MINIMAL_CLIENT_*` environment
variables alone configure the client. Exit code 2 on a configuration problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from dataclasses import replace

from aiohttp import web

from .app import create_app
from .config import ClientConfig, ConfigError, load_config_file


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minimal_client",
                                description="Minimal MSAL web client for the tokenbroker.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web client")
    serve.add_argument("--config", help="TOML file (default: $MINIMAL_CLIENT_CONFIG, else env only)")
    serve.add_argument("--host", help="bind address (default: config host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: config port, 8000)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        cfg = load_config_file(args.config or os.environ.get("MINIMAL_CLIENT_CONFIG"), os.environ)
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        if overrides:
            cfg = replace(cfg, **overrides)
    except ConfigError as e:
        for problem in e.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    asyncio.run(_serve(cfg))
    return 0


async def _serve(cfg: ClientConfig) -> None:
    """Bind, announce the real port (`--port 0` works), run until SIGINT/SIGTERM."""
    runner = web.AppRunner(create_app(cfg), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    port = runner.addresses[0][1]
    url = cfg.public_url or f"http://{cfg.host}:{port}"
    print(json.dumps({"event": "server.started", "host": cfg.host, "port": port, "url": url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
