"""The broker's one error tree, mapped to RFC 6749 §5.2 / RFC 6750 / RFC 8693 answers.

    BrokerError                 base; never rendered as-is
    ├─ OAuthError               RFC 6749 §5.2 body {"error","error_description"}
    │  ├─ InvalidRequest        400 invalid_request (also: unacceptable subject/actor token, RFC 8693)
    │  ├─ InvalidClient         401 invalid_client (+ WWW-Authenticate when Basic was used)
    │  ├─ InvalidGrant          400 invalid_grant
    │  ├─ UnauthorizedClient    400 unauthorized_client
    │  ├─ UnsupportedGrantType  400 unsupported_grant_type
    │  ├─ UnsupportedTokenType  400 unsupported_token_type (revocation, RFC 7009)
    │  ├─ InvalidScope          400 invalid_scope
    │  ├─ InvalidTarget         400 invalid_target
    │  ├─ NotFound              404 not_found
    │  ├─ MethodNotAllowed      405 method_not_allowed
    │  ├─ UnsupportedMediaType  415 invalid_request (a Content-Encoding we cannot decode)
    │  ├─ RequestTimeout        408 invalid_request (body slower than server.body_timeout)
    │  ├─ ConsentRequired       403 consent_required (+ consent_url; AADSTS65001/700016/500011 on OBO)
    │  ├─ TooManyAttempts       429 too_many_attempts + Retry-After (brute-force throttle)
    │  └─ InvalidTeamsToken     400/403 invalid_teams_token (the teams-user-aad-token header)
    ├─ BearerError              RFC 6750: 401/403 + WWW-Authenticate
    │  ├─ MissingCredentials    401, challenge without an error attribute
    │  ├─ InvalidToken          401 invalid_token
    │  ├─ InsufficientScope     403 insufficient_scope
    │  ├─ AccessDenied          403 access_denied (app or tenant refused by policy)
    │  └─ InteractionRequired   401 insufficient_claims, Microsoft's claims-challenge form
    ├─ TokenValidationError     an inbound JWT was rejected; callers translate it
    │  ├─ TokenInvalid          signature, issuer, audience, lifetime, shape
    │  ├─ TokenScopeMissing     valid, but a required scope is absent
    │  └─ TokenPolicyRefused    valid, but its tenant or calling app is refused
    ├─ DownstreamError          Entra/ACS failed: 502/503/504 (+ Retry-After)
    └─ ConfigurationError       startup only; lists every problem, each naming its key

`description` is public (printable ASCII, no quote or backslash); `detail` is private and
only ever logged. The reason a token was refused stays out of responses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

_UNSAFE = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')


def safe_description(text: str) -> str:
    """RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E."""
    return _UNSAFE.sub("?", text)[:300]


class BrokerError(Exception):
    status: int = 500
    error: str = "server_error"
    default_description: str = "The server could not complete the request."

    def __init__(self, description: str | None = None, *, detail: str = "",
                 headers: Mapping[str, str] | None = None, reason: str = "") -> None:
        self.description = safe_description(description or self.default_description)
        self.detail = detail
        self.reason = reason or self.error
        self.extra_headers = dict(headers or {})
        super().__init__(detail or self.description)

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        return dict(self.extra_headers)

    def render(self) -> tuple[int, bytes, dict[str, str]]:
        """Framework-free rendering: (status, JSON body, headers)."""
        headers = {"Content-Type": "application/json", **self.headers()}
        return self.status, orjson.dumps(self.body()), headers


class ServerError(BrokerError):
    status, error = 500, "server_error"


# --- RFC 6749 §5.2 and friends ------------------------------------------------------------

class OAuthError(BrokerError):
    status, error = 400, "invalid_request"


class InvalidRequest(OAuthError):
    error = "invalid_request"
    default_description = "The request is missing a parameter or is otherwise malformed."


class InvalidClient(OAuthError):
    status, error = 401, "invalid_client"
    default_description = "Client authentication failed."

    def __init__(self, description: str | None = None, *, basic: bool = False, **kw: Any) -> None:
        super().__init__(description, **kw)
        if basic:
            self.extra_headers.setdefault("WWW-Authenticate", 'Basic realm="tokenbroker"')


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    default_description = "The grant is invalid, expired or revoked."


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"
    default_description = "The client may not use this grant type."


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    default_description = "The grant type is not supported."


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"
    default_description = "The token type is not supported."


class InvalidScope(OAuthError):
    error = "invalid_scope"
    default_description = "The requested scope is invalid or not allowed."


class InvalidTarget(OAuthError):
    error = "invalid_target"
    default_description = "The requested audience or resource is not allowed."


class NotFound(OAuthError):
    status, error = 404, "not_found"
    default_description = "Not found."


class MethodNotAllowed(OAuthError):
    status, error = 405, "method_not_allowed"
    default_description = "Method not allowed."


class PayloadTooLarge(OAuthError):
    status, error = 413, "invalid_request"
    default_description = "The request is too large."


class UnsupportedMediaType(OAuthError):
    """A Content-Encoding we cannot decode (RFC 7694: answer which ones we accept)."""
    status, error = 415, "invalid_request"
    default_description = "The Content-Encoding is not supported (use identity, gzip or deflate)."

    def __init__(self, description: str | None = None, **kw: Any) -> None:
        super().__init__(description, **kw)
        self.extra_headers["Accept-Encoding"] = "gzip, deflate"


class RequestTimeout(OAuthError):
    """The request body did not arrive within `server.body_timeout`; the connection is closed."""
    status, error = 408, "invalid_request"
    default_description = "The request body did not arrive in time."


class ConsentRequired(OAuthError):
    """`consent_url`: where an administrator of the user's tenant grants consent (in the body)."""
    status, error = 403, "consent_required"
    default_description = "The user or an administrator has not consented to the downstream API."

    def __init__(self, description: str | None = None, *, consent_url: str = "", **kw: Any) -> None:
        super().__init__(description, **kw)
        self.consent_url = consent_url

    def body(self) -> dict:
        body = super().body()
        if self.consent_url:
            body["consent_url"] = self.consent_url
        return body


class TooManyAttempts(OAuthError):
    """Too many failed attempts from this client id or address: locked for `retry_after` seconds."""
    status, error = 429, "too_many_attempts"
    default_description = "Too many failed attempts; try again later."

    def __init__(self, description: str | None = None, *, retry_after: int, **kw: Any) -> None:
        super().__init__(description, **kw)
        self.retry_after = max(1, int(retry_after))
        self.extra_headers["Retry-After"] = str(self.retry_after)


class InvalidTeamsToken(OAuthError):
    """The `teams-user-aad-token` header was refused: 400 (malformed/invalid) or 403 (policy)."""
    error = "invalid_teams_token"
    default_description = "The teams-user-aad-token header is missing a valid Teams token."

    def __init__(self, description: str | None = None, *, status: int = 400, **kw: Any) -> None:
        super().__init__(description, **kw)
        self.status = status


# --- RFC 6750 -----------------------------------------------------------------------------

REALM = "tokenbroker"


class BearerError(BrokerError):
    status, error = 401, "invalid_token"

    def challenge(self) -> str:
        return f'Bearer realm="{REALM}", error="{self.error}", error_description="{self.description}"'

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge(), **self.extra_headers}


class MissingCredentials(BearerError):
    status, error = 401, "invalid_request"
    default_description = "Bearer credentials are required."

    def challenge(self) -> str:
        return f'Bearer realm="{REALM}"'

    def body(self) -> dict:
        return {"error": "invalid_request", "error_description": self.description}


class InvalidToken(BearerError):
    status, error = 401, "invalid_token"
    default_description = "The access token is invalid."


class InsufficientScope(BearerError):
    status, error = 403, "insufficient_scope"
    default_description = "The access token lacks a required scope."

    def __init__(self, description: str | None = None, *, scope: Iterable[str] = (), **kw: Any) -> None:
        super().__init__(description, **kw)
        self.scope = " ".join(scope)

    def challenge(self) -> str:
        base = super().challenge()
        return f'{base}, scope="{self.scope}"' if self.scope else base


class AccessDenied(BearerError):
    status, error = 403, "access_denied"
    default_description = "The calling application or tenant is not allowed."


class InteractionRequired(BearerError):
    """Entra asked for interaction (MFA, conditional access): Microsoft's claims challenge."""
    status, error = 401, "insufficient_claims"
    default_description = "The user must sign in again to satisfy a claims challenge."

    def __init__(self, *, authorization_uri: str, claims_b64: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.authorization_uri = authorization_uri
        self.claims_b64 = claims_b64

    def challenge(self) -> str:
        return (f'Bearer realm="", authorization_uri="{self.authorization_uri}", '
                f'error="insufficient_claims", claims="{self.claims_b64}"')


# --- inbound token validation (callers translate) -----------------------------------------

class TokenValidationError(BrokerError):
    """An inbound JWT was refused. `reason` is a short machine code for logs and metrics."""
    status, error = 401, "invalid_token"
    context: dict[str, str]      # what is known about the token (kid, tid, app_id, oid), for the log

    def __init__(self, reason: str, detail: str = "", **kw: Any) -> None:
        super().__init__(detail=detail, reason=reason, **kw)
        self.context = {}


class TokenInvalid(TokenValidationError):
    pass


class TokenScopeMissing(TokenValidationError):
    def __init__(self, reason: str = "missing_scope", detail: str = "", *, missing: Iterable[str] = (),
                 **kw: Any) -> None:
        super().__init__(reason, detail, **kw)
        self.missing = tuple(missing)


class TokenPolicyRefused(TokenValidationError):
    pass


# --- downstream services ------------------------------------------------------------------

class DownstreamError(BrokerError):
    """Entra or ACS failed. 502 bad answer / refused credentials, 503 unavailable, 504 timeout."""
    status, error = 502, "temporarily_unavailable"
    default_description = "A downstream service failed."

    def __init__(self, description: str | None = None, *, status: int = 502,
                 retry_after: int | None = None, service: str = "", **kw: Any) -> None:
        super().__init__(description, **kw)
        self.status = status
        self.service = service
        self.retry_after = retry_after
        if status == 502:
            self.error = "bad_gateway"
        elif status == 504:
            self.error = "gateway_timeout"
        else:
            self.error = "temporarily_unavailable"
        if retry_after is not None:
            self.extra_headers["Retry-After"] = str(max(0, int(retry_after)))


# --- configuration ------------------------------------------------------------------------

class ConfigurationError(BrokerError):
    """Startup only. `problems` lists every problem, each naming its key."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration", detail="; ".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)
