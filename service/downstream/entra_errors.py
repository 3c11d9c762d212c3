"""Entra token-endpoint failures (azure-core/azure-identity exceptions) → the broker's answers.

Entra answers a refused token request with JSON `{"error", "error_description",
"error_codes": [AADSTS...], "suberror", "claims", "correlation_id", ...}`; azure-identity
raises `ClientAuthenticationError` whose `.response` still holds that body. `parse_failure`
reads it (never the token), `classify` says what is worth retrying, `translate` maps it:

    interaction_required / AADSTS50079, 50076     → 401 insufficient_claims + claims challenge
    invalid_grant + consent_required / 65001,
    resource not in the tenant 500011, and the
    broker app not in a PARTNER tenant 700016      → 403 consent_required + consent_url (the
                                                     tenant's admin-consent link)
    expired or rejected assertion 500133, 50013   → 401 invalid_token
    rejected broker credential (7000215, ...)     → 502 (operator: `obo.credentials_refused`)
    429 / 5xx / connection failures               → 503 + Retry-After
    deadline passed                                → 504 + Retry-After
    anything else                                  → 502
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from ..errors import BrokerError, ConsentRequired, DownstreamError, InteractionRequired, InvalidToken
from .retry import Transient

INTERACTION_CODES = frozenset({50079, 50076, 50074, 50158})
CONSENT_CODES = frozenset({65001, 500011})
APP_NOT_IN_TENANT = 700016     # in the home tenant: the broker's own registration is wrong (502)
ASSERTION_CODES = frozenset({500133, 50013})
CREDENTIAL_CODES = frozenset({7000215, 7000218, 7000222, 700027, 700024, 700025, 700016, 70021,
                              700023})
CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
DEFAULT_RETRY_AFTER = 5


@dataclass(frozen=True)
class EntraFailure:
    """What Entra said (or that it said nothing): safe to log, holds no token."""
    status: int | None                 # HTTP status; None when no answer came
    error: str = ""
    codes: tuple[int, ...] = ()
    suberror: str = ""
    claims: str = ""
    correlation_id: str = ""
    retry_after: int | None = None
    no_answer: bool = False            # the request failed before Entra answered (connection, I/O)

    @property
    def aadsts(self) -> int | None:
        return self.codes[0] if self.codes else None

    @property
    def transient(self) -> bool:
        # An answer azure-identity could not read (no status: ClientAuthenticationError
        # "Unexpected response", KeyError, ...) is not transient: it would not get better.
        if self.status is None:
            return self.no_answer
        return self.status in (408, 429) or self.status >= 500

    @property
    def credentials_refused(self) -> bool:
        return bool(CREDENTIAL_CODES.intersection(self.codes)) or (
            self.error in CREDENTIAL_ERRORS and not self.codes)


def _retry_after(response: Any) -> int | None:
    value = (response.headers.get("Retry-After") or "").strip() if response is not None else ""
    return int(value) if value.isdigit() else None


def _body(response: Any) -> dict[str, Any]:
    try:
        data = json.loads(response.text())
    except (ValueError, TypeError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_failure(exc: BaseException) -> EntraFailure:
    """Read an azure-core exception; connection failures become a status-less failure."""
    response = getattr(exc, "response", None) if isinstance(exc, HttpResponseError) else None
    if response is None:   # no answer, or one azure-identity could not read (status kept by the caller)
        status = getattr(exc, "status_code", None) if isinstance(exc, HttpResponseError) else None
        return EntraFailure(status=status if isinstance(status, int) else None, error=type(exc).__name__,
                            no_answer=isinstance(exc, ServiceRequestError | ServiceResponseError))
    body = _body(response)
    codes = tuple(c for c in body.get("error_codes") or () if isinstance(c, int))
    claims = body.get("claims")
    return EntraFailure(
        status=getattr(response, "status_code", None), error=str(body.get("error") or ""),
        codes=codes, suberror=str(body.get("suberror") or ""),
        claims=claims if isinstance(claims, str) else "",
        correlation_id=str(body.get("correlation_id") or ""), retry_after=_retry_after(response))


def classify(exc: BaseException) -> Transient | None:
    """The retry layer's predicate: 408/429/5xx answers and connection failures."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return Transient()
    if isinstance(exc, HttpResponseError):
        failure = parse_failure(exc)
        if failure.status is not None and failure.transient:
            return Transient(failure.retry_after)
    return None


def claims_b64(claims: str) -> str:
    """Entra's claims JSON string, base64 as the claims-challenge form wants it."""
    return base64.b64encode(claims.encode("utf-8")).decode("ascii")


def _detail(failure: EntraFailure) -> str:
    return (f"entra status={failure.status} error={failure.error} aadsts={failure.aadsts} "
            f"correlation_id={failure.correlation_id}")


def consent_url(authority: str, tenant: str, client_id: str) -> str:
    """Where an administrator of `tenant` consents to the broker app (and so provisions it)."""
    return f"{authority.rstrip('/')}/{tenant}/adminconsent?client_id={client_id}"


def needs_consent(failure: EntraFailure, *, tenant: str, home_tenant: str) -> bool:
    """No consent or no service principal in the user's tenant: not the broker's fault."""
    codes = set(failure.codes)
    if codes & CONSENT_CODES or failure.suberror == "consent_required" or failure.error == "consent_required":
        return True
    return APP_NOT_IN_TENANT in codes and tenant.lower() != home_tenant.lower()


def translate(failure: EntraFailure, *, authority: str, tenant: str, client_id: str = "",
              home_tenant: str = "") -> BrokerError:
    """The broker error for a final (not retried further) Entra failure."""
    codes = set(failure.codes)
    if failure.error == "interaction_required" or codes & INTERACTION_CODES:
        return InteractionRequired(authorization_uri=f"{authority}/{tenant}/oauth2/v2.0/authorize",
                                   claims_b64=claims_b64(failure.claims),
                                   reason="interaction_required", detail=_detail(failure))
    if needs_consent(failure, tenant=tenant, home_tenant=home_tenant or tenant):
        return ConsentRequired(reason="consent_required", detail=_detail(failure),
                               consent_url=consent_url(authority, tenant, client_id) if client_id else "")
    if codes & ASSERTION_CODES:
        return InvalidToken(reason="assertion_rejected", detail=_detail(failure))
    if failure.credentials_refused:
        return DownstreamError("The broker could not authenticate to Entra ID.", status=502,
                               service="entra", reason="credentials_refused", detail=_detail(failure))
    if failure.transient:
        return DownstreamError("Entra ID is unavailable, try again later.", status=503,
                               retry_after=failure.retry_after or DEFAULT_RETRY_AFTER,
                               service="entra", reason="unavailable", detail=_detail(failure))
    return DownstreamError("Entra ID refused the on-behalf-of request.", status=502,
                           service="entra", reason="rejected", detail=_detail(failure))


def timed_out() -> DownstreamError:
    return DownstreamError("Entra ID did not answer in time.", status=504,
                           retry_after=DEFAULT_RETRY_AFTER, service="entra", reason="timeout")
