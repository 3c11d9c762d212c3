"""The minimal client's aiohttp application: `create_app(config)`.

Start it in-process on any port, e.g.::

    runner = web.AppRunner(create_app(cfg)); await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 8000).start()

The redirect URI is `{public_url}{redirect_path}`, or, when `public_url` is empty, built from
the origin each request arrived at (handy with port 0; set `public_url` behind a proxy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import actions, auth
from .broker import BrokerClient, make_session
from .config import ClientConfig
from .identity import Identity, make_http_client
from .pages import STATIC
from .security import error_middleware, header_hook
from .sessions import Handoffs, SessionStore
from .typedefs import BROKER, CONFIG, HANDOFFS, IDENTITY, SESSIONS


async def _clients(app: web.Application) -> AsyncIterator[None]:
    """One requests session for msal and one aiohttp session for the broker, per app."""
    cfg = app[CONFIG]
    http_client = make_http_client(cfg)
    session = make_session(cfg)
    app[IDENTITY] = Identity(cfg, http_client)
    app[BROKER] = BrokerClient(cfg, session)
    try:
        yield
    finally:
        await session.close()
        http_client.close()


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def create_app(config: ClientConfig) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[CONFIG] = config
    app[SESSIONS] = SessionStore(ttl=config.session_ttl)
    app[HANDOFFS] = Handoffs()
    app.cleanup_ctx.append(_clients)
    app.on_response_prepare.append(header_hook(config))
    app.router.add_get("/", auth.index, name="index")
    app.router.add_get("/login", auth.login, name="login")
    app.router.add_route("GET", config.redirect_path, auth.callback, name="callback")
    app.router.add_route("POST", config.redirect_path, auth.callback, name="callback_post")
    app.router.add_post("/logout", auth.logout, name="logout")
    actions.setup(app)
    app.router.add_static("/static", STATIC, name="static", append_version=False)
    app.router.add_get("/favicon.ico", _no_icon, name="favicon")
    return app
