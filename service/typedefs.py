"""Every `web.AppKey` of the broker, in one place (only app.py, cli.py and http/ import this)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:  # imported for annotations only: this module must stay import-cycle free
    from .metrics import Metrics
    from .settings import Settings

Clock = Callable[[], float]
ReadyCheck = Callable[[], Awaitable[bool]]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
READY_CHECKS: web.AppKey[dict[str, ReadyCheck]] = web.AppKey("ready_checks")
OVERRIDES: web.AppKey[dict[str, Any]] = web.AppKey("overrides")
RELOAD_HOOKS: web.AppKey[list[Callable[[], None]]] = web.AppKey("reload_hooks")  # run on SIGHUP

# Filled by the feature contexts in app.py.
JWKS: web.AppKey[Any] = web.AppKey("jwks")
ENTRA_VALIDATOR: web.AppKey[Any] = web.AppKey("entra_validator")
STORE: web.AppKey[Any] = web.AppKey("store")
KEYRING: web.AppKey[Any] = web.AppKey("keyring")
TOKEN_ISSUER: web.AppKey[Any] = web.AppKey("token_issuer")
ACS_CLIENT: web.AppKey[Any] = web.AppKey("acs_client")  # service.downstream.acs.AcsClient
ACS_IDENTITIES: web.AppKey[Any] = web.AppKey("acs_identities")  # downstream.acs_identities.AcsIdentities
OBO_CLIENT: web.AppKey[Any] = web.AppKey("obo_client")
GRANTS: web.AppKey[Any] = web.AppKey("grants")  # service.grants.TokenService
TELEMETRY: web.AppKey[Any] = web.AppKey("telemetry")  # service.telemetry.tracing.Tracing, only when on
