"""What both emulators share: running an aiohttp app over HTTPS and announcing it."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from .pki import ensure_pki


def announce(**fields: object) -> None:
    print(json.dumps({"event": "server.started", **fields}), flush=True)


def run_forever(make_app: Callable[[str], web.Application], *, name: str, host: str, port: int,
                pki_dir: str | Path, extra: Callable[[web.Application], dict] | None = None) -> int:
    """Run one emulator until SIGINT/SIGTERM. `make_app(base_url)` builds the app."""
    pki = ensure_pki(pki_dir)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # The base URL (in issuers and metadata) needs the real port: bind the socket first.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        real_port = sock.getsockname()[1]
        hostpart = f"[{host}]" if ":" in host else host
        base_url = f"https://{hostpart}:{real_port}"
        app = make_app(base_url)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=pki.server_ssl_context())
        await site.start()
        print(f"{name} emulator — TEST ONLY — {base_url}", file=sys.stderr, flush=True)
        announce(name=name, host=host, port=real_port, url=base_url, ca_bundle=str(pki.ca_pem),
                 **(extra(app) if extra else {}))
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    return 0
