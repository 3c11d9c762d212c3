"""Every `web.AppKey` of the broker, in one place (only app.py, cli.py, server.py and http/ import this).

Each key is typed with what it holds, so mypy catches a handler that takes the wrong
collaborator. The classes are imported for annotations only (no import cycle at runtime); in
the layering test's rank table this module sits between http and grants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:  # imported for annotations only: this module must stay import-cycle free
    from .downstream.acs import AcsClient
    from .downstream.acs_identities import AcsIdentities
    from .downstream.entra_obo import EntraOboClient
    from .downstream.shared_cache import SharedTier
    from .grants import TokenService
    from .issuing import Keyring, TokenIssuer
    from .metrics import Metrics
    from .settings import Settings
    from .storage.base import Store
    from .telemetry.tracing import Tracing
    from .validation import EntraValidator, JwksCache

Clock = Callable[[], float]
ReadyCheck = Callable[[], Awaitable[bool]]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
READY_CHECKS: web.AppKey[dict[str, ReadyCheck]] = web.AppKey("ready_checks")
OVERRIDES: web.AppKey[dict[str, Any]] = web.AppKey("overrides")
RELOAD_HOOKS: web.AppKey[list[Callable[[], object]]] = web.AppKey("reload_hooks")  # run on SIGHUP

# Filled by the feature contexts in app.py.
JWKS: web.AppKey[JwksCache] = web.AppKey("jwks")
ENTRA_VALIDATOR: web.AppKey[EntraValidator] = web.AppKey("entra_validator")
STORE: web.AppKey[Store] = web.AppKey("store")
KEYRING: web.AppKey[Keyring] = web.AppKey("keyring")
TOKEN_ISSUER: web.AppKey[TokenIssuer] = web.AppKey("token_issuer")
ACS_CLIENT: web.AppKey[AcsClient] = web.AppKey("acs_client")
ACS_IDENTITIES: web.AppKey[AcsIdentities] = web.AppKey("acs_identities")
OBO_CLIENT: web.AppKey[EntraOboClient] = web.AppKey("obo_client")
SHARED_CACHE: web.AppKey[SharedTier | None] = web.AppKey("shared_cache")
GRANTS: web.AppKey[TokenService] = web.AppKey("grants")
TELEMETRY: web.AppKey[Tracing] = web.AppKey("telemetry")  # only when telemetry is on
