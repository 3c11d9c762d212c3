"""The app factory: `create_app(settings)` builds the whole broker.

Everything with a lifetime is a `cleanup_ctx`, in dependency order (only the steps that
started are torn down): outgoing HTTP session → JWKS cache and validators → store →
keyring and issuer → downstream clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from .downstream.acs import AcsClient
from .downstream.acs_identities import AcsIdentities
from .downstream.entra_credentials import load_broker_credential
from .downstream.entra_obo import EntraOboClient
from .errors import ConfigurationError
from .grants import TokenService
from .http.middlewares import MIDDLEWARES
from .http.routes import setup_routes
from .issuing import Keyring, TokenIssuer
from .logs import get_logger
from .metrics import Metrics
from .settings import Settings
from .storage import open_store
from .storage.repos import AcsIdentityMap
from .typedefs import (
    ACS_CLIENT,
    ACS_IDENTITIES,
    CLOCK,
    ENTRA_VALIDATOR,
    GRANTS,
    HTTP,
    JWKS,
    KEYRING,
    METRICS,
    OBO_CLIENT,
    OVERRIDES,
    READY_CHECKS,
    RELOAD_HOOKS,
    SETTINGS,
    STORE,
    TOKEN_ISSUER,
    Clock,
)
from .validation import EntraValidator, JwksCache
from .validation.trusted_issuers import TrustedIssuerValidator

log = get_logger("tokenbroker.app")

# Bearer tokens up to 16 KB must reach the app (and be refused there with a JSON 401), so
# the HTTP parser's header limits sit well above aiohttp's 8 KB default.
HANDLER_ARGS = {"max_line_size": 65536, "max_field_size": 65536}
CLIENT_MAX_SIZE = 256 * 1024
KEY_RELOAD_INTERVAL = 5.0  # seconds; every replica reading one keys_dir converges this fast


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def outgoing_ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """System CAs plus the configured extra bundle."""
    ctx = ssl.create_default_context()
    if ca_bundle:
        ctx.load_verify_locations(cafile=ca_bundle)
    return ctx


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    connector = aiohttp.TCPConnector(ssl=outgoing_ssl_context(settings.tls.ca_bundle), limit=200,
                                     ttl_dns_cache=300)
    # Callers set per-call deadlines; this is the outer bound (aiohttp's default is 5 min).
    timeout = aiohttp.ClientTimeout(total=30, connect=5, sock_read=20)
    # trust_env=False: proxy variables and ~/.netrc are NOT read (aiohttp would look ~/.netrc up in a
    # thread on every call); the one proxy, if any, comes from `tls.proxy`.
    session = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                    proxy=settings.tls.proxy or None, json_serialize=_json_dumps)
    app[HTTP] = session
    yield
    await session.close()


async def _entra_validation(app: web.Application) -> AsyncIterator[None]:
    """JWKS cache (shared by every validator) and the Entra bearer validator."""
    overrides = app[OVERRIDES]
    jwks = overrides.get("jwks") or JwksCache(
        app[HTTP], timeout=app[SETTINGS].entra.timeout if app[SETTINGS].entra else 5,
        metrics=app[METRICS])
    app[JWKS] = jwks
    entra = app[SETTINGS].entra
    if entra is not None:
        validator = overrides.get("entra_validator") or EntraValidator(entra, jwks, metrics=app[METRICS])
        app[ENTRA_VALIDATOR] = validator
        app[READY_CHECKS]["jwks"] = validator.warm_up
    yield
    await jwks.close()


async def _store(app: web.Application) -> AsyncIterator[None]:
    """The state store (ACS identity map, refresh tokens, revocations, replay cache, ...)."""
    settings, overrides = app[SETTINGS], app[OVERRIDES]
    store = overrides.get("store")
    if store is None:
        base = settings.config_path.parent if settings.config_path else Path.cwd()
        store = open_store(settings.store.url, clock=app[CLOCK], base_dir=base,
                           dev=bool(overrides.get("dev")))
        if not await store.ping():
            await store.close()
            raise ConfigurationError([f"store.url: the store at {settings.store.url.split('@')[-1]} "
                                      "does not answer"])
    app[STORE] = store
    app[READY_CHECKS]["store"] = store.ping
    yield
    await store.close()


async def _issuing(app: web.Application) -> AsyncIterator[None]:
    """Our signing keys (created on first start, reloaded on SIGHUP and every few seconds)."""
    settings, clock = app[SETTINGS], app[CLOCK]
    ring = app[OVERRIDES].get("keyring") or await asyncio.to_thread(
        Keyring.load_or_create, settings.issuer.keys_dir, settings.issuer.signing_alg, now=clock())
    app[KEYRING] = ring
    app[TOKEN_ISSUER] = TokenIssuer(settings.server.public_url, ring)
    app[RELOAD_HOOKS].append(ring.reload)

    async def keys_ok() -> bool:
        return ring.has_signing_key(clock())

    async def watch() -> None:
        while True:
            await asyncio.sleep(KEY_RELOAD_INTERVAL)
            try:
                await asyncio.to_thread(ring.reload)
            except Exception:  # keep the last good keys; the keyring logs why
                log.warning("keyring.reload_error")

    app[READY_CHECKS]["keys"] = keys_ok
    task = asyncio.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _grants(app: web.Application) -> AsyncIterator[None]:
    """The token endpoint's grants, introspection and revocation (PEM files read in a thread)."""
    settings = app[SETTINGS]
    trusted = await asyncio.to_thread(TrustedIssuerValidator, settings.trusted_issuers, app[JWKS])
    app[GRANTS] = TokenService.build(settings, store=app[STORE], issuer=app[TOKEN_ISSUER], trusted=trusted,
                                     entra=lambda: app.get(ENTRA_VALIDATOR), clock=app[CLOCK],
                                     acs=lambda: app.get(ACS_CLIENT), obo=lambda: app.get(OBO_CLIENT))
    yield


async def _broker_credential(app: web.Application):
    """The broker's own Entra credential from [entra], read once (in a thread) for OBO and ACS."""
    overrides = app[OVERRIDES]
    if overrides.get("broker_credential") is None:
        overrides["broker_credential"] = await asyncio.to_thread(load_broker_credential, app[SETTINGS].entra)
    return overrides["broker_credential"]


async def _obo_client(app: web.Application) -> AsyncIterator[None]:
    """Entra On-Behalf-Of for the [obo.<name>] downstreams (the certificate is read in a thread)."""
    settings = app[SETTINGS]
    if settings.entra is not None and settings.obo:
        credential = await _broker_credential(app)
        app[OBO_CLIENT] = EntraOboClient(settings.entra, settings.obo, app[HTTP], credential,
                                         metrics=app[METRICS], clock=app[CLOCK])
    yield


async def _acs_client(app: web.Application) -> AsyncIterator[None]:
    """One ACS Identity client on the shared session (only with [acs]), and the identity map."""
    settings = app[SETTINGS]
    if settings.acs is not None:
        acs, entra = settings.acs, settings.entra
        broker = None
        if not (acs.access_key or acs.connection_string or acs.managed_identity) and entra is not None:
            broker = await _broker_credential(app)
        client = app[OVERRIDES].get("acs_client") or AcsClient.from_settings(
            acs, entra, app[HTTP], broker=broker, metrics=app[METRICS], clock=app[CLOCK])
        app[ACS_CLIENT] = client
        app[ACS_IDENTITIES] = AcsIdentities(client, AcsIdentityMap(app[STORE]), metrics=app[METRICS])
        yield
        await client.close()
    else:
        yield


def create_app(settings: Settings, *, overrides: Mapping[str, Any] | None = None,
               clock: Clock = time.time) -> web.Application:
    app = web.Application(middlewares=MIDDLEWARES, handler_args=HANDLER_ARGS,
                          client_max_size=CLIENT_MAX_SIZE)
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[READY_CHECKS] = {}
    app[RELOAD_HOOKS] = []
    app[OVERRIDES] = dict(overrides or {})

    async def config_ok() -> bool:
        return True

    app[READY_CHECKS]["config"] = config_ok
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_entra_validation)
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_issuing)
    app.cleanup_ctx.append(_grants)
    app.cleanup_ctx.append(_obo_client)
    app.cleanup_ctx.append(_acs_client)
    setup_routes(app)
    return app
