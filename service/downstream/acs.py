"""`AcsClient`: the broker's one Azure Communication Services Identity client.

- ONE aio `CommunicationIdentityClient` per app, on the app's shared aiohttp session
  (`AioHttpTransport(session=..., session_owner=False)`: pooled keep-alive connections that
  trust `tls.ca_bundle`), with a minimal pipeline (acs_pipeline.py: no SDK retries, no HTTP
  logging or redaction, no tracing) and explicit
  connection/read timeouts; our retry layer (retry.py) puts one deadline, `acs.timeout`,
  over all attempts.
- Every call carries `x-ms-client-request-id` = the broker's request id, and records the ACS
  correlation id (`MS-CV`, else the echoed request id) into the caller's `trace` dict.
- azure-core exceptions are translated where they enter (acs_errors.map_error); callers only
  ever see the broker's error tree. `downstream_requests_total{service="acs",operation,outcome}`
  and `downstream_seconds` count every call (retries included in the latency).
- The Teams exchange is cached per Teams token (sha256) until shortly before it expires,
  single-flight (cache.py).
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import aiohttp
import orjson
from azure.communication.identity import CommunicationUserIdentifier
from azure.communication.identity.aio import CommunicationIdentityClient
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport

from service.digest import sha256_hex
from service.errors import BrokerError, DownstreamError
from service.logs import current_request_id, get_logger
from service.metrics import Metrics
from service.settings import AcsSettings, EntraSettings
from service.telemetry import traced

from .acs_auth import AcsAuth, build_auth
from .acs_errors import TEAMS_EXCHANGE, classify, map_error
from .acs_pipeline import acs_policies
from .cache import SingleFlightCache
from .retry import DEFAULT_POLICY, DeadlineExceeded, RetryPolicy, call_with_deadline
from .shared_cache import Codec, SharedTier, two_level

T = TypeVar("T")
log = get_logger("tokenbroker.downstream.acs")
SERVICE = "acs"
TEAMS_CACHE_MARGIN = 300.0   # stop serving a cached Teams exchange this long before it expires


def parse_expires_on(value: Any) -> datetime:
    """`AccessToken.expires_on` is the raw ISO 8601 string in SDK 1.5.0 (an int in others)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value, UTC)
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _expiry(value: Any, operation: str) -> datetime:
    """ACS's `expiresOn`, or 502: an unreadable answer is ACS's failure, never our 500."""
    try:
        return parse_expires_on(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DownstreamError("Azure Communication Services answered unexpectedly.", status=502,
                              service=SERVICE, reason="bad_answer",
                              detail=f"acs {operation}: unreadable expiresOn") from exc


def _text(value: Any, operation: str, field: str) -> str:
    """A token or identity id from ACS: a non-empty string, or 502 (never `null` to our client)."""
    if isinstance(value, str) and value:
        return value
    raise DownstreamError("Azure Communication Services answered unexpectedly.", status=502,
                          service=SERVICE, reason="bad_answer", detail=f"acs {operation}: no {field}")


def iso_utc(value: datetime) -> str:
    """The broker's one expiry format: seconds precision, UTC, `Z` (e.g. 2026-11-23T10:00:00Z).

    Memoised per second: a cached Teams exchange answers with the same expiry every time."""
    return _iso_seconds(math.floor(value.timestamp()))


def iso_utc_seconds(seconds: float) -> str:
    """`iso_utc` of a POSIX timestamp (no datetime built on the way)."""
    return _iso_seconds(math.floor(seconds))


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def teams_cache_ttl(expires_on: datetime, now: float) -> float:
    """Until 5 min before expiry, or half the remaining lifetime for short-lived tokens."""
    lifetime = expires_on.timestamp() - now
    return lifetime - min(TEAMS_CACHE_MARGIN, lifetime / 2)


TeamsEntry = tuple[str, datetime, str | None]     # (ACS token, expiresOn, ACS correlation id)
TEAMS_CODEC: Codec[TeamsEntry] = Codec(
    dump=lambda v: {"t": v[0], "e": v[1].timestamp(), "c": v[2]},
    load=lambda d: (str(d["t"]), datetime.fromtimestamp(float(d["e"]), UTC),
                    None if d.get("c") is None else str(d["c"])))


class AcsClient:
    def __init__(self, acs: AcsSettings, auth: AcsAuth, session: aiohttp.ClientSession, *,
                 metrics: Metrics | None = None, policy: RetryPolicy = DEFAULT_POLICY,
                 clock: Callable[[], float] = time.time, cache_size: int = 10_000,
                 shared: SharedTier | None = None) -> None:
        self.settings = acs
        self.auth = auth
        self.endpoint = auth.endpoint
        self._metrics = metrics
        self._policy = policy
        self._clock = clock
        transport = AioHttpTransport(session=session, session_owner=False,
                                     connection_timeout=min(5.0, acs.timeout), read_timeout=acs.timeout)
        self._client = CommunicationIdentityClient(auth.endpoint, auth.credential, transport=transport,
                                                   policies=acs_policies(auth.endpoint, auth.credential))
        # with a Redis store: shared by every replica (shared_cache.py), else in-process only
        self.teams_cache = two_level(
            SingleFlightCache("acs_teams", max_entries=cache_size, metrics=metrics), shared, TEAMS_CODEC,
            namespace="acs_teams", wait=acs.timeout + 3)

    @classmethod
    def from_settings(cls, acs: AcsSettings, entra: EntraSettings | None,
                      session: aiohttp.ClientSession, *, broker: Any = None, **kw: Any) -> AcsClient:
        """`broker`: the loaded [entra] credential, used when ACS has no key (acs_auth.py)."""
        return cls(acs, build_auth(acs, entra, session, broker=broker), session, **kw)

    async def close(self) -> None:
        await self._client.close()
        await self.auth.close()

    # --- operations ---------------------------------------------------------------------------

    async def exchange_teams_token(self, teams_token: str, client_id: str, user_object_id: str, *,
                                   trace: dict | None = None) -> tuple[str, datetime]:
        """ACS "Teams user" token for an Entra token with the Teams scopes (no cache)."""
        result = await self._call(TEAMS_EXCHANGE, partial(
            self._teams_operation, teams_token, client_id, user_object_id), idempotent=True, trace=trace)
        return _text(result.token, TEAMS_EXCHANGE, "token"), _expiry(result.expires_on, TEAMS_EXCHANGE)

    def _teams_operation(self, teams_token: str, client_id: str, user_object_id: str,
                         **kwargs: Any) -> Awaitable[Any]:
        """The SDK's generated exchange operation with the JSON body rendered by orjson: the public
        `get_token_for_teams_user` serialises a model (json.dumps escaping the 1.5 KB token) and
        adds a second tracing layer — ~5 % of a Teams miss. Same pipeline, request and errors;
        the public method when this SDK version has no generated client to reach."""
        generated = getattr(getattr(self._client, "_identity_service_client", None), "communication_identity", None)
        operation = getattr(generated, "exchange_teams_user_access_token", None)
        if operation is None:
            return self._client.get_token_for_teams_user(teams_token, client_id, user_object_id, **kwargs)
        body = orjson.dumps({"token": teams_token, "appId": client_id, "userId": user_object_id})
        return operation(body=body, content_type="application/json", **kwargs)

    async def exchange_teams_token_cached(self, teams_token: str, client_id: str, user_object_id: str,
                                          *, not_after: float | None = None,
                                          trace: dict | None = None,
                                          token_hash: str | None = None) -> tuple[str, datetime]:
        """As above, cached per (token hash, app, user) and single-flight, never past
        `not_after` (the Teams token's `exp`); `trace["cached"]` says whether this caller
        reused another call's answer. `token_hash`: the token's sha256 hex when the caller
        already has it (the validated principal's `token_hash`), saving a second hash."""
        key = f"{token_hash or sha256_hex(teams_token)}:{client_id}:{user_object_id}"
        found = self.teams_cache.hit(key)
        if found is not None:   # the common case: no closures, no single-flight machinery
            if trace is not None:
                trace["request_id"], trace["cached"], trace["correlation_id"] = current_request_id(), True, None
            return found[0], found[1]
        own: dict = {}

        async def factory() -> TeamsEntry:
            token, expires_on = await self.exchange_teams_token(teams_token, client_id, user_object_id,
                                                                trace=own)
            return token, expires_on, own.get("correlation_id")

        def ttl(value: TeamsEntry) -> float:
            expires_on = value[1]
            if not_after is not None:
                expires_on = min(expires_on, datetime.fromtimestamp(not_after, UTC))
            return teams_cache_ttl(expires_on, self._clock())

        token, expires_on, correlation = await self.teams_cache.get_or_create(key, factory, ttl)
        if trace is not None:
            trace["request_id"] = own.get("request_id") or current_request_id()
            trace["cached"] = not own
            trace["correlation_id"] = correlation if own else None
        return token, expires_on

    async def create_user(self, *, trace: dict | None = None) -> str:
        user = await self._call("create_user", self._client.create_user, idempotent=False, trace=trace)
        return _text(user.properties.get("id"), "create_user", "identity id")

    async def issue_token(self, user_id: str, scopes: tuple[str, ...] | list[str], minutes: int, *,
                          trace: dict | None = None) -> tuple[str, datetime]:
        result = await self._call("get_token", partial(
            self._client.get_token, CommunicationUserIdentifier(user_id), list(scopes),
            token_expires_in=timedelta(minutes=minutes)), idempotent=True, trace=trace)
        return _text(result.token, "get_token", "token"), _expiry(result.expires_on, "get_token")

    async def delete_user(self, user_id: str, *, trace: dict | None = None) -> bool:
        """Delete the identity at ACS; False when ACS did not know it (fine for the caller)."""
        async def delete(**kw: Any) -> bool:
            try:
                await self._client.delete_user(CommunicationUserIdentifier(user_id), **kw)
            except ResourceNotFoundError:
                return False
            return True
        return await self._call("delete_user", delete, idempotent=True, trace=trace)

    # --- the one call path --------------------------------------------------------------------

    async def _call(self, operation: str, fn: Callable[..., Awaitable[T]], *, idempotent: bool,
                    trace: dict | None) -> T:
        trace = trace if trace is not None else {}
        request_id = current_request_id() or str(uuid.uuid4())
        trace["request_id"] = request_id

        def hook(response: Any) -> None:
            headers = response.http_response.headers
            trace["correlation_id"] = headers.get("MS-CV") or headers.get("x-ms-client-request-id")
            trace["status"] = response.http_response.status_code

        kwargs = {"headers": {"x-ms-client-request-id": request_id}, "raw_response_hook": hook}
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call_with_deadline(
                lambda: traced(f"acs.{operation}", fn(**kwargs), service=SERVICE),  # telemetry
                deadline=float(self.settings.timeout),
                classify=partial(classify, idempotent=idempotent), policy=self._policy,
                operation=f"acs.{operation}", on_retry=lambda *_: self._count(operation, "retry"))
            outcome = "ok"
            return result
        except DeadlineExceeded as exc:
            outcome = "timeout"
            raise DownstreamError("Azure Communication Services did not answer in time.", status=504,
                                  service=SERVICE, reason="timeout", detail=str(exc)) from exc
        except BrokerError as exc:
            outcome = exc.reason
            raise
        except Exception as exc:  # noqa: BLE001 - foreign failures enter here: azure-core's, but
            # also the SDK's DeserializationError (a ValueError) / AttributeError on an unreadable
            # 2xx body, binascii.Error from a bad key, CredentialUnavailable — never a 500
            mapped = map_error(exc, operation=operation, endpoint=self.endpoint, auth_kind=self.auth.kind)
            outcome = mapped.reason
            log.info("acs.call_failed", operation=operation, status=trace.get("status"),
                     reason=mapped.reason, error=type(exc).__name__,
                     correlation_id=trace.get("correlation_id"))
            raise mapped from exc
        finally:
            elapsed = time.perf_counter() - started
            trace["latency_ms"] = round(elapsed * 1000, 2)
            self._count(operation, outcome)
            if self._metrics is not None:
                self._metrics.child(self._metrics.downstream_seconds, SERVICE, operation).observe(elapsed)

    def _count(self, operation: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.child(self._metrics.downstream_requests_total, SERVICE, operation, outcome).inc()

