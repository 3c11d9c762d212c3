"""One long-lived msal ConfidentialClientApplication, with a token cache per user session.

msal binds one `token_cache` to an application. To keep a single app (one discovery, one
HTTP session) while giving every browser session its own cache, the app's cache is a thin
proxy that forwards to the cache of the session whose call is running — a contextvar set
inside the worker thread for the duration of that one call. msal is blocking, so every call
runs in `asyncio.to_thread`. Nothing here logs tokens or secrets.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msal
import requests

from .config import ClientConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

_CURRENT_CACHE: contextvars.ContextVar[msal.TokenCache] = contextvars.ContextVar("msal_cache")


def _current_cache() -> msal.TokenCache:
    try:
        return _CURRENT_CACHE.get()
    except LookupError:
        raise RuntimeError("msal used outside a session (no token cache bound)") from None


class _SessionCache:
    """Stands in for msal's TokenCache; forwards to the current session's cache.

    msal keeps bound methods of its cache (e.g. `remove_rt`) from construction on, so methods
    are resolved late, at call time; class-level constants (`CredentialType`) are shared."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(msal.SerializableTokenCache, name, None)
        if inspect.isfunction(attr):
            def late_bound(*args: Any, **kwargs: Any) -> Any:
                return getattr(_current_cache(), name)(*args, **kwargs)
            return late_bound
        if attr is not None:
            return attr
        return getattr(_current_cache(), name)


class _TimeoutSession(requests.Session):
    """msal ignores its own `timeout` when given an http_client; enforce one here."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        return super().request(*args, **kwargs)


def make_http_client(cfg: ClientConfig) -> requests.Session:
    """requests session for msal: trusts `ca_bundle`, ignores REQUESTS_CA_BUNDLE and proxies
    from the environment (they would override `verify`)."""
    s = _TimeoutSession(cfg.timeout)
    s.trust_env = False
    s.verify = cfg.ca_bundle or True
    return s


class Identity:
    """The msal side of the client. Built lazily (discovery needs Entra to be up)."""

    def __init__(self, cfg: ClientConfig, http_client: requests.Session) -> None:
        self._cfg = cfg
        self._http = http_client
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = asyncio.Lock()

    async def _application(self) -> msal.ConfidentialClientApplication:
        async with self._lock:
            if self._app is None:
                self._app = await asyncio.to_thread(self._build)
            return self._app

    def _build(self) -> msal.ConfidentialClientApplication:
        cfg = self._cfg
        return msal.ConfidentialClientApplication(
            cfg.client_id,
            client_credential=cfg.client_secret,
            authority=cfg.authority_url,
            instance_discovery=False,
            http_client=self._http,
            token_cache=_SessionCache(),  # type: ignore[arg-type]
        )

    async def _call(self, cache: msal.TokenCache, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        def run() -> T:
            token = _CURRENT_CACHE.set(cache)
            try:
                return fn(*args, **kw)
            finally:
                _CURRENT_CACHE.reset(token)

        return await asyncio.to_thread(run)

    async def start_flow(self, cache: msal.TokenCache, scopes: Sequence[str], redirect_uri: str,
                         **extra: Any) -> dict[str, Any]:
        """Auth code flow with PKCE (S256), state and nonce, answered by form_post (the code
        never sits in a URL); `auth_uri` is where to send the user."""
        app = await self._application()
        return await self._call(cache, app.initiate_auth_code_flow, list(scopes),
                                redirect_uri=redirect_uri, response_mode="form_post", **extra)

    async def finish_flow(self, cache: msal.TokenCache, flow: dict[str, Any],
                          auth_response: dict[str, str]) -> dict[str, Any]:
        """Redeem the code. Returns msal's result dict (`error` on failure); a state mismatch or
        a nonce mismatch become an `error` dict too."""
        app = await self._application()
        try:
            return await self._call(cache, app.acquire_token_by_auth_code_flow, flow, auth_response)
        except (ValueError, RuntimeError) as e:
            return {"error": "invalid_callback", "error_description": str(e)}

    async def accounts(self, cache: msal.TokenCache) -> list[dict[str, Any]]:
        app = await self._application()
        return await self._call(cache, app.get_accounts)

    async def account(self, cache: msal.TokenCache, home_account_id: str) -> dict[str, Any] | None:
        accounts = await self.accounts(cache)
        return next((a for a in accounts if a.get("home_account_id") == home_account_id), None)

    async def silent(self, cache: msal.TokenCache, scopes: Sequence[str],
                     home_account_id: str) -> dict[str, Any] | None:
        """A token from the session's cache (or its refresh token). None when there is
        nothing to go on; a dict with `error` when Entra refused (e.g. consent needed)."""
        account = await self.account(cache, home_account_id)
        if account is None:
            return None
        app = await self._application()
        return await self._call(cache, app.acquire_token_silent_with_error, list(scopes), account)
