"""Entra ID On-Behalf-Of: a user's token for the broker → a token for a downstream API.

This is Entra's `urn:ietf:params:oauth:grant-type:jwt-bearer` call with
`requested_token_use=on_behalf_of` (RFC 7523 style), NOT RFC 8693 token exchange; our own
RFC 8693 endpoint lives in `grants/`.

One `OnBehalfOfCredential` (azure-identity aio, truly async) per Entra call, in the
assertion's own tenant (`tid`), over the app's shared aiohttp session (its CA bundle and
pool), with azure-core retries off; `retry.call_with_deadline` retries transient failures
within `entra.timeout`. azure-identity's own OBO cache lives in each credential instance, so
the results are cached here instead: keyed by (assertion hash, tenant, downstream scopes),
single-flight, refreshed `REFRESH_MARGIN` seconds before expiry and never kept past the
assertion's own `exp`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from azure.core.exceptions import AzureError, HttpResponseError
from azure.identity.aio import OnBehalfOfCredential

from ..errors import BrokerError, ConsentRequired, DownstreamError
from ..logs import current_request_id, get_logger
from ..metrics import Metrics
from ..settings import EntraSettings, OboSettings
from ..telemetry import span
from .cache import SingleFlightCache
from .entra_credentials import BrokerCredential, CredentialUnavailable, pipeline_kwargs
from .entra_errors import EntraFailure, classify, parse_failure, timed_out, translate
from .retry import DeadlineExceeded, call_with_deadline
from .shared_cache import Codec, SharedTier, two_level

log = get_logger("tokenbroker.downstream.entra_obo")

REFRESH_MARGIN = 300        # refresh a cached token this many seconds before it expires
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class OboToken:
    access_token: str = field(repr=False)
    expires_on: int            # epoch seconds, as granted by Entra
    scope: str


@dataclass(frozen=True)
class OboCaller:
    """Who asks (for the audit event and the Entra tenant); no token in here."""
    tid: str
    oid: str
    app_id: str
    token_hash: str            # sha256 hex of the incoming assertion
    assertion_exp: int


OBO_CODEC: Codec[OboToken] = Codec(
    dump=lambda t: {"t": t.access_token, "e": t.expires_on, "s": t.scope},
    load=lambda d: OboToken(str(d["t"]), int(d["e"]), str(d["s"])))


class _Outcome:
    """Collects what one exchange learned, for the audit event."""

    def __init__(self) -> None:
        self.called = False
        self.failure: EntraFailure | None = None


class EntraOboClient:
    def __init__(self, entra: EntraSettings, downstreams: Mapping[str, OboSettings],
                 session: aiohttp.ClientSession, credential: BrokerCredential, *, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time, max_entries: int = MAX_ENTRIES,
                 shared: SharedTier | None = None) -> None:
        self._entra = entra
        self._downstreams = dict(downstreams)
        self._session = session
        self._credential = credential
        self._metrics = metrics
        self._clock = clock
        local: SingleFlightCache[OboToken] = SingleFlightCache(
            "obo", max_entries=max_entries, metrics=metrics, clock=clock)
        # with a Redis store: shared by every replica (shared_cache.py), else in-process only
        self._cache = two_level(local, shared, OBO_CODEC, namespace="obo", wait=entra.timeout + 3)

    def downstream(self, name: str) -> OboSettings | None:
        return self._downstreams.get(name)

    async def exchange(self, downstream: OboSettings, assertion: str, caller: OboCaller, *,
                       trace: dict[str, Any] | None = None) -> OboToken:
        """A token for `downstream` on behalf of the assertion's user, cached when possible.

        `trace` (the caller's audit trace) receives what Entra said: `status`, `aadsts`,
        `correlation_id` (Entra's, for Microsoft support) and `cache` (hit/miss/coalesced)."""
        scopes = tuple(downstream.scopes)
        key = f"{caller.token_hash}|{caller.tid}|{' '.join(scopes)}"
        found = self._cache.hit(key)
        if found is not None:   # the common case: no closures, no single-flight machinery
            if trace is not None:
                trace.update(status=200, aadsts=None, correlation_id=None, cache="hit")
            return found
        outcome = _Outcome()
        note: dict[str, bool] = {}

        async def factory() -> OboToken:
            outcome.called = True
            return await self._fetch(scopes, assertion, caller.tid, outcome)

        def ttl(token: OboToken) -> float:
            now = self._clock()
            lifetime = token.expires_on - now
            refresh_at = token.expires_on - min(REFRESH_MARGIN, lifetime / 2)
            return min(refresh_at, caller.assertion_exp) - now

        issued, error = False, None
        try:
            token = await self._cache.get_or_create(key, factory, ttl, note=note)
            issued = True
            return token
        except BrokerError as exc:
            error = exc
            raise
        finally:
            failure = outcome.failure
            if failure is None and error is not None and isinstance(error.__cause__, AzureError):
                failure = parse_failure(error.__cause__)   # a coalesced waiter: same exception
            if trace is not None:
                trace.update(status=error.status if error else (200 if issued else None),
                             aadsts=failure.aadsts if failure else None,
                             correlation_id=failure.correlation_id if failure else None,
                             cache="miss" if outcome.called else "shared" if note.get("shared") else "coalesced")

    async def _fetch(self, scopes: tuple[str, ...], assertion: str, tenant: str,
                     outcome: _Outcome) -> OboToken:
        """One Entra exchange with retries inside the deadline; BrokerError on failure."""
        request_id = current_request_id()

        async def attempt() -> OboToken:
            with span("entra.obo", service="entra", tenant=tenant):   # telemetry (no-op when off)
                return await self._call_once(scopes, assertion, tenant, request_id)

        try:
            return await call_with_deadline(attempt, deadline=self._entra.timeout, classify=classify,
                                            operation="entra.obo")
        except CredentialUnavailable as exc:  # e.g. the federated token file is missing
            log.error("obo.credentials_unreadable", credential=self._credential.kind, problem=str(exc))
            raise DownstreamError("The broker could not authenticate to Entra ID.", status=502,
                                  service="entra", reason="credentials_unreadable") from exc
        except DeadlineExceeded as exc:
            log.warning("obo.timeout", tenant=tenant, deadline=self._entra.timeout)
            raise timed_out() from exc
        except Exception as exc:  # noqa: BLE001 - azure-identity's, and whatever it raises on an
            # unreadable answer (KeyError, TypeError, AttributeError, OverflowError): never a 500
            failure = parse_failure(exc)
            outcome.failure = failure
            error = translate(failure, authority=self._entra.authority, tenant=tenant,
                              client_id=self._entra.client_id, home_tenant=self._entra.tenant_id)
            if isinstance(error, ConsentRequired):
                log.warning("obo.consent_required", tenant=tenant, home_tenant=self._entra.tenant_id,
                            client_id=self._entra.client_id, aadsts=failure.aadsts,
                            correlation_id=failure.correlation_id, consent_url=error.consent_url,
                            hint="an administrator of this tenant must consent to the broker app "
                                 "(open consent_url) before its users can use this downstream API")
            elif failure.credentials_refused:
                log.error("obo.credentials_refused", tenant=tenant, client_id=self._entra.client_id,
                          credential=self._credential.kind, aadsts=failure.aadsts, error=failure.error,
                          correlation_id=failure.correlation_id)
            else:
                log.info("obo.refused", tenant=tenant, status=failure.status, error=failure.error,
                         aadsts=failure.aadsts, correlation_id=failure.correlation_id,
                         answer=error.status)
            raise error from exc

    async def _call_once(self, scopes: tuple[str, ...], assertion: str, tenant: str,
                         request_id: str) -> OboToken:
        started = time.perf_counter()
        outcome = "error"
        answered: dict[str, int] = {}

        def seen(response: Any) -> None:   # the status Entra answered with, even if unreadable
            answered["status"] = response.http_response.status_code

        try:
            credential = OnBehalfOfCredential(
                tenant, self._entra.client_id, user_assertion=assertion, authority=self._entra.authority,
                raw_response_hook=seen, **await self._credential.obo_kwargs(),
                **pipeline_kwargs(self._session, timeout=self._entra.timeout))
            async with credential:
                # Entra reads `client-request-id`; azure-core's RequestIdPolicy sets x-ms-client-request-id.
                kwargs: dict[str, Any] = {"headers": {"client-request-id": request_id},
                                          "request_id": request_id} if request_id else {}
                token = await credential.get_token(*scopes, **kwargs)
            if not isinstance(token.token, str) or not token.token:
                raise ValueError("Entra answered without an access token")
            outcome = "success"
            return OboToken(token.token, int(token.expires_on), " ".join(scopes))
        except (TimeoutError, asyncio.CancelledError):   # the deadline cancels the attempt
            outcome = "timeout"
            raise
        except AzureError as exc:
            if isinstance(exc, HttpResponseError) and exc.response is None and "status" in answered:
                # azure-identity drops a response it cannot read ("Unexpected response"): keep
                # its status, so a gateway's HTML 503 is still transient and a 200 is not
                exc.status_code = answered["status"]
            failure = parse_failure(exc)
            outcome = "transient" if failure.transient else "rejected"
            raise
        finally:
            if self._metrics is not None:
                m = self._metrics
                m.child(m.downstream_requests_total, "entra", "obo", outcome).inc()
                m.child(m.downstream_seconds, "entra", "obo").observe(time.perf_counter() - started)

    async def close(self) -> None:
        """Nothing to release: credentials are per call and the session belongs to the app."""

