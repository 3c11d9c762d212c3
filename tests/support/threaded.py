"""Run an aiohttp app over HTTPS on 127.0.0.1 in a background thread with its own loop.

Emulators started this way live for the whole test session, independent of each test's
event loop, and are real servers on real sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from emulators.pki import Pki


@dataclass
class ThreadedServer:
    url: str
    port: int
    app: web.Application
    loop: asyncio.AbstractEventLoop
    _thread: threading.Thread = field(repr=False)
    _runner: web.AppRunner = field(repr=False)

    def call(self, fn: Callable, *args, **kw):
        """Run a plain function on the server's loop thread and return its result."""
        fut: asyncio.Future = asyncio.run_coroutine_threadsafe(_wrap(fn, *args, **kw), self.loop)
        return fut.result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)


async def _wrap(fn, *args, **kw):
    res = fn(*args, **kw)
    if asyncio.iscoroutine(res):
        res = await res
    return res


def start_threaded(make_app: Callable[[str], web.Application], pki: Pki | None,
                   host: str = "127.0.0.1") -> ThreadedServer:
    """`make_app(base_url)` builds the app once the port is known. HTTPS when `pki` is given."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    url = f"{'https' if pki else 'http'}://{host}:{port}"
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def boot() -> None:
        app = make_app(url)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=pki.server_ssl_context() if pki else None)
        await site.start()
        holder["app"], holder["runner"] = app, runner

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(boot())
        except BaseException as exc:  # surfaced to the caller below
            holder["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name=f"emulator-{port}", daemon=True)
    thread.start()
    ready.wait(30)
    if "error" in holder:
        raise holder["error"]
    return ThreadedServer(url, port, holder["app"], loop, thread, holder["runner"])
