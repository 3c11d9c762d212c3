"""ACS failures: which are transient (retry layer), and what each becomes for our client.

ACS answers 401 both for the broker's own credentials (a bad HMAC signature or bearer) and,
on the Teams exchange, for a refused Teams token; the status alone cannot tell them apart.
We decide by `error.code`: `CREDENTIAL_CODES` name the broker's credentials (the emulator and,
as far as is known, real ACS say `Denied`), every other 400/401/403 code on the Teams exchange
names the Teams token (real ACS: 401 `InvalidAccessToken`, 400 `ValidationError` with `target`
`appId`/`userId`).
Ambiguity, documented: should real ACS refuse a bad key with an unlisted code on the Teams
exchange, the client would see 400 `invalid_teams_token` instead of a 502 — the broker checks
the Teams token locally first, so that answer would be rare and still logged with the code.
Failures of the broker's Entra credential (azure-identity, before ACS is reached) are always
credentials problems.

    Teams token refused             400 / 403 invalid_teams_token
    broker credentials refused      502 bad_gateway + log `acs.credentials_refused`
    Entra 429/503 (resp. 408/504, other 5xx) while getting the broker's ACS token
                                    503 + Retry-After (resp. 504, 502), reason entra_unavailable
    404 (identity gone)             404 not_found
    429                             503 + Retry-After (ACS's, else 1)
    503                             503 (+ Retry-After when ACS sent one)
    504, deadline exceeded          504
    other 5xx, other 4xx, garbage   502
    connection failed               503
"""

from __future__ import annotations

import binascii
import email.utils
import math
import re
import time
from collections.abc import Mapping

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)

from service.errors import BrokerError, DownstreamError, InvalidTeamsToken, NotFound
from service.logs import get_logger

from .entra_credentials import CredentialUnavailable
from .retry import Transient

log = get_logger("tokenbroker.downstream.acs")

CREDENTIAL_CODES = frozenset({"Denied", "AuthenticationFailed", "InvalidAuthenticationInfo",
                              "Unauthorized", "InvalidSignature"})
TEAMS_EXCHANGE = "get_token_for_teams_user"
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_ENTRA_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """`retry-after-ms` / `x-ms-retry-after-ms` / `Retry-After` (seconds or an HTTP date)."""
    if not headers:
        return None
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when - (time.time() if now is None else now))


def _reason(code: str) -> str:
    return "acs_" + re.sub(r"[^A-Za-z0-9_]", "_", code)[:40]


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None) if isinstance(exc, HttpResponseError) else None


def _code(exc: BaseException) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else ""


def _headers(exc: BaseException) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    return getattr(response, "headers", None)


def _from_acs(exc: BaseException, endpoint: str) -> bool:
    """Did this error come from an ACS response (not from Entra, via the credential)?"""
    response = getattr(exc, "response", None)
    request = getattr(response, "request", None)
    url = str(getattr(request, "url", "") or "")
    return bool(url) and url.lower().startswith(endpoint.lower())


def classify(exc: BaseException, *, idempotent: bool) -> Transient | None:
    """Transient failures for the retry layer. POSTs that create state retry only when ACS
    cannot have processed them (connection not made, 429, 503)."""
    if isinstance(exc, ServiceRequestError):
        return Transient()
    if isinstance(exc, ServiceResponseError):
        return Transient() if idempotent else None
    status = _status(exc)
    if status == 429 or status == 503:
        return Transient(retry_after_seconds(_headers(exc)))
    if status in _RETRY_STATUSES and idempotent:
        return Transient(retry_after_seconds(_headers(exc)))
    return None


def credentials_refused(operation: str, kind: str, *, status: int | None, code: str,
                        detail: str) -> DownstreamError:
    log.error("acs.credentials_refused", operation=operation, auth=kind, status=status,
              code=code or None, hint="ACS or Entra refused the broker's own credentials: check "
              "acs.access_key / acs.connection_string, or the [entra] credential or managed "
              "identity and its ACS role")
    return DownstreamError("Azure Communication Services refused the broker's credentials.",
                           status=502, service="acs", reason="credentials_refused", detail=detail)


def _entra_unavailable(exc: BaseException, status: int, detail: str) -> DownstreamError:
    """Entra failed (5xx/429/408) while the broker got its token for ACS: transient, ours to pass on."""
    wait = retry_after_seconds(_headers(exc))
    retry_after = math.ceil(wait) if wait is not None else (1 if status == 429 else None)
    answer = 504 if status in (408, 504) else 503 if status in (429, 503) else 502
    return DownstreamError("Entra ID, which authenticates the broker to Azure Communication Services, "
                           "is unavailable.", status=answer, retry_after=retry_after if answer == 503 else None,
                           service="acs", reason="entra_unavailable", detail=detail)


def map_error(exc: BaseException, *, operation: str, endpoint: str, auth_kind: str) -> BrokerError:
    """Translate an azure-core (or signing) failure into the broker's error tree."""
    status, code = _status(exc), _code(exc)
    detail = f"acs {operation}: {type(exc).__name__} status={status} code={code or '-'}"
    if isinstance(exc, CredentialUnavailable):
        return credentials_refused(operation, auth_kind, status=None, code="credential_unavailable",
                                   detail=f"acs {operation}: {exc}")
    if isinstance(exc, binascii.Error):
        return credentials_refused(operation, auth_kind, status=None, code="bad_key",
                                   detail=f"acs {operation}: the access key is not base64")
    if isinstance(exc, ClientAuthenticationError) and not _from_acs(exc, endpoint):
        if status in _ENTRA_TRANSIENT:   # Entra down or throttling: not the operator's secret
            return _entra_unavailable(exc, status, detail)
        return credentials_refused(operation, auth_kind, status=status, code=code, detail=detail)
    if status is not None:
        if operation == TEAMS_EXCHANGE and status in (400, 401, 403) and code not in CREDENTIAL_CODES:
            return InvalidTeamsToken("Azure Communication Services refused the Teams token.",
                                     status=403 if status == 403 else 400,
                                     reason=_reason(code or str(status)), detail=detail)
        if status in (401, 403):
            return credentials_refused(operation, auth_kind, status=status, code=code, detail=detail)
        if status == 404:
            return NotFound("The user's ACS identity does not exist.", reason="acs_identity_not_found",
                            detail=detail)
        wait = retry_after_seconds(_headers(exc))
        retry_after = math.ceil(wait) if wait is not None else None
        if status == 429:
            return DownstreamError("Azure Communication Services is throttling requests.", status=503,
                                   retry_after=retry_after if retry_after is not None else 1,
                                   service="acs", reason="throttled", detail=detail)
        if status == 503:
            return DownstreamError("Azure Communication Services is unavailable.", status=503,
                                   retry_after=retry_after, service="acs", reason="unavailable",
                                   detail=detail)
        if status == 504:
            return DownstreamError("Azure Communication Services timed out.", status=504,
                                   service="acs", reason="upstream_timeout", detail=detail)
        return DownstreamError("Azure Communication Services failed.", status=502, service="acs",
                               reason="bad_gateway" if status >= 500 else "rejected", detail=detail)
    if isinstance(exc, ServiceResponseTimeoutError):
        return DownstreamError("Azure Communication Services timed out.", status=504, service="acs",
                               reason="timeout", detail=detail)
    if isinstance(exc, ServiceRequestError):
        return DownstreamError("Azure Communication Services is unreachable.", status=503, service="acs",
                               reason="unreachable", detail=detail)
    if isinstance(exc, AzureError):
        return DownstreamError("Azure Communication Services failed.", status=502, service="acs",
                               reason="bad_gateway", detail=detail)
    return DownstreamError("Azure Communication Services failed.", status=502, service="acs",
                           reason="bad_gateway", detail=f"acs {operation}: {type(exc).__name__}")
