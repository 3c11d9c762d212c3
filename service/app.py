"""The app factory: `create_app(settings)` builds the whole broker.

Everything with a lifetime is a `cleanup_ctx`, in dependency order (only the steps that
started are torn down): outgoing HTTP session → JWKS cache and validators → store → shared
downstream cache (Redis) → keyring and issuer → downstream clients → grants, which receive the
real objects built above.
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
from .downstream.entra_credentials import BrokerCredential, load_broker_credential
from .downstream.entra_obo import EntraOboClient
from .downstream.redis_entra import redis_credential_provider
from .downstream.sealing import SealingKeys
from .downstream.shared_cache import SharedTier
from .errors import ConfigurationError
from .grants import TokenService
from .http.middlewares import MIDDLEWARES
from .http.routes import setup_routes
from .http.tracing import client_trace_configs, install_tracing, traced_store
from .issuing import Keyring, TokenIssuer
from .logs import get_logger
from .metrics import Metrics
from .settings import Settings
from .storage import open_store
from .storage.acs_identity_map import AcsIdentityMap
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
    SHARED_CACHE,
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
                                    proxy=settings.tls.proxy or None, json_serialize=_json_dumps,
                                    trace_configs=client_trace_configs(app))
    app[HTTP] = session
    yield
    await session.close()


async def _entra_validation(app: web.Application) -> AsyncIterator[None]:
    """JWKS cache (shared by every validator) and the Entra bearer validator."""
    overrides = app[OVERRIDES]
    entra = app[SETTINGS].entra
    jwks = overrides.get("jwks") or JwksCache(app[HTTP], timeout=entra.timeout if entra else 5,
                                              metrics=app[METRICS])
    app[JWKS] = jwks
    if entra is not None:
        validator = overrides.get("entra_validator") or EntraValidator(entra, jwks, metrics=app[METRICS])
        app[ENTRA_VALIDATOR] = validator
        app[READY_CHECKS]["jwks"] = validator.warm_up
    yield
    await jwks.close()


async def _redis_options(app: web.Application) -> dict[str, Any]:
    """TLS CAs, `store.password` and the Entra ID credential provider of a Redis store."""
    settings = app[SETTINGS]
    store = settings.store
    options: dict[str, Any] = {"ca_bundle": settings.tls.ca_bundle, "password": store.password.reveal()}
    if store.entra_auth:
        broker = None if store.managed_identity else await _broker_credential(app)
        options["credential_provider"] = redis_credential_provider(
            store, settings.entra, ca_bundle=settings.tls.ca_bundle, broker=broker)
    return options


async def _store(app: web.Application) -> AsyncIterator[None]:
    """The state store (ACS identity map, refresh tokens, revocations, replay cache, ...)."""
    settings, overrides = app[SETTINGS], app[OVERRIDES]
    store = overrides.get("store")
    if store is None:
        base = settings.config_path.parent if settings.config_path else Path.cwd()
        options = await _redis_options(app) if settings.store.is_redis else {}
        store = open_store(settings.store.url, clock=app[CLOCK], base_dir=base,
                           dev=bool(overrides.get("dev")), **options)
        if not await store.ping():
            await store.close()
            why = getattr(store, "last_error", "")
            raise ConfigurationError([f"store.url: the store at {settings.store.url.split('@')[-1]} "
                                      "does not answer" + (f" ({why})" if why else "")])
    app[STORE] = traced_store(app, store)
    app[READY_CHECKS]["store"] = store.ping
    yield
    await store.close()


async def _shared_cache(app: web.Application) -> AsyncIterator[None]:
    """With a Redis store: the encrypted Redis level of the OBO, Teams and identity token caches."""
    store = app[SETTINGS].store
    app[SHARED_CACHE] = None
    if store.is_redis and store.encryption_key:
        app[SHARED_CACHE] = SharedTier(app[STORE], SealingKeys.from_settings(store), metrics=app[METRICS])
    yield


async def _issuing(app: web.Application) -> AsyncIterator[None]:
    """Our signing keys (created on first start, reloaded on SIGHUP and every
    `issuer.key_reload_interval` seconds)."""
    settings, clock = app[SETTINGS], app[CLOCK]
    ring: Keyring | None = app[OVERRIDES].get("keyring")
    if ring is None:
        ring = await asyncio.to_thread(Keyring.load_or_create, settings.issuer.keys_dir,
                                       settings.issuer.signing_alg, now=clock())
    app[KEYRING] = ring
    app[TOKEN_ISSUER] = TokenIssuer(settings.server.public_url, ring)
    app[RELOAD_HOOKS].append(ring.reload)

    async def keys_ok() -> bool:
        return ring.has_signing_key(clock())

    async def watch() -> None:
        while True:
            await asyncio.sleep(settings.issuer.key_reload_interval)
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
                                     clock=app[CLOCK], entra=app.get(ENTRA_VALIDATOR),
                                     acs=app.get(ACS_CLIENT), obo=app.get(OBO_CLIENT))
    yield


async def _broker_credential(app: web.Application) -> BrokerCredential:
    """The broker's own Entra credential from [entra], read once (in a thread) for OBO and ACS."""
    overrides, entra = app[OVERRIDES], app[SETTINGS].entra
    if entra is None:
        raise ConfigurationError(["entra: the broker's credential needs [entra]"])
    if overrides.get("broker_credential") is None:
        overrides["broker_credential"] = await asyncio.to_thread(load_broker_credential, entra)
    credential: BrokerCredential = overrides["broker_credential"]
    return credential


async def _obo_client(app: web.Application) -> AsyncIterator[None]:
    """Entra On-Behalf-Of for the [obo.<name>] downstreams (the certificate is read in a thread)."""
    settings = app[SETTINGS]
    if settings.entra is not None and settings.obo:
        credential = await _broker_credential(app)
        app[OBO_CLIENT] = EntraOboClient(settings.entra, settings.obo, app[HTTP], credential,
                                         metrics=app[METRICS], clock=app[CLOCK], shared=app[SHARED_CACHE])
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
            acs, entra, app[HTTP], broker=broker, metrics=app[METRICS], clock=app[CLOCK],
            shared=app[SHARED_CACHE])
        app[ACS_CLIENT] = client
        app[ACS_IDENTITIES] = AcsIdentities(client, AcsIdentityMap(app[STORE]), metrics=app[METRICS],
                                            shared=app[SHARED_CACHE], clock=app[CLOCK])
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
    install_tracing(app)   # telemetry on: outermost middleware + TracerProvider; off: nothing
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_entra_validation)
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_shared_cache)
    app.cleanup_ctx.append(_issuing)
    app.cleanup_ctx.append(_obo_client)
    app.cleanup_ctx.append(_acs_client)
    app.cleanup_ctx.append(_grants)          # last: it receives every collaborator above
    setup_routes(app)
    return app
