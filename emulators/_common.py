"""What both emulators share: running an aiohttp app over HTTPS and announcing it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from .pki import Pki, ensure_pki


async def start_site(app: web.Application, pki: Pki, host: str = "127.0.0.1",
                     port: int = 0) -> tuple[web.AppRunner, int]:
    """Start `app` over HTTPS; return the runner and the real port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=pki.server_ssl_context())
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    real_port = sockets[0].getsockname()[1] if sockets else port
    return runner, real_port


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
        holder: dict[str, web.Application] = {}

        # The base URL needs the real port; bind first with a placeholder app then swap is
        # messy, so bind a socket ourselves when port is 0.
        import socket
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        real_port = sock.getsockname()[1]
        hostpart = f"[{host}]" if ":" in host else host
        base_url = f"https://{hostpart}:{real_port}"
        app = make_app(base_url)
        holder["app"] = app
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
