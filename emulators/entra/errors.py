"""AADSTS error bodies, shaped like Entra's token endpoint answers. TEST ONLY."""

from __future__ import annotations

import datetime as dt
import uuid

from aiohttp import web

# AADSTS code -> (OAuth error, HTTP status, default message)
KNOWN: dict[int, tuple[str, int, str]] = {
    65001: ("invalid_grant", 400, "The user or administrator has not consented to use the application."),
    50079: ("interaction_required", 400, "Due to a configuration change made by your administrator, "
            "or because you moved to a new location, you must enroll in multi-factor authentication."),
    50076: ("interaction_required", 400, "Due to a configuration change made by your administrator, "
            "you must use multi-factor authentication to access the resource."),
    50013: ("invalid_grant", 400, "Assertion failed signature validation."),
    500133: ("invalid_grant", 400, "Assertion is not within its valid time range."),
    54005: ("invalid_grant", 400, "OAuth2 Authorization code was already redeemed."),
    70008: ("invalid_grant", 400, "The provided authorization code or refresh token has expired."),
    70000: ("invalid_grant", 400, "The provided value for the 'code' parameter is not valid."),
    9002313: ("invalid_request", 400, "Invalid request. Request is malformed or invalid."),
    501481: ("invalid_grant", 400, "The Code_Verifier does not match the code_challenge supplied in "
             "the authorization request."),
    7000215: ("invalid_client", 401, "Invalid client secret provided."),
    7000218: ("invalid_client", 401, "The request body must contain the following parameter: "
              "'client_assertion' or 'client_secret'."),
    700027: ("invalid_client", 401, "Client assertion failed signature validation."),
    700024: ("invalid_client", 401, "Client assertion is not within its valid time range."),
    700025: ("invalid_client", 401, "Client is public so neither 'client_assertion' nor 'client_secret' "
             "should be presented."),
    700016: ("unauthorized_client", 400, "Application was not found in the directory."),
    70011: ("invalid_scope", 400, "The provided request must include a 'scope' input parameter. "
            "The provided value for the input parameter 'scope' is not valid."),
    1002012: ("invalid_scope", 400, "The provided value for scope is not valid. Client credential "
              "flows must have a scope value with /.default suffixed to the resource identifier."),
    700022: ("invalid_scope", 400, "The provided value for the input parameter scope is not valid "
             "because it contains more than one resource."),
    500011: ("invalid_resource", 400, "The resource principal was not found in the tenant."),
    900144: ("invalid_request", 400, "The request body must contain the following parameter."),
    90002: ("invalid_request", 400, "Tenant not found."),
    70003: ("unsupported_grant_type", 400, "The app requested an unsupported grant type."),
    50011: ("invalid_request", 400, "The redirect URI specified in the request does not match the "
            "redirect URIs configured for the application."),
    70021: ("invalid_request", 400, "No matching federated identity record found for presented assertion."),
    50173: ("invalid_grant", 400, "The provided grant has expired due to it being revoked."),
    50020: ("invalid_request", 400, "User account does not exist in tenant."),
    90009: ("invalid_request", 400, "Application is requesting a token for itself."),
    50058: ("invalid_grant", 400, "A silent sign-in request was sent but no user is signed in."),
}


class EntraError(Exception):
    """An Entra error answer; `render()` gives the JSON response."""

    def __init__(self, code: int, message: str | None = None, *, error: str | None = None,
                 status: int | None = None, suberror: str | None = None, claims: str | None = None,
                 retry_after: int | None = None) -> None:
        default_error, default_status, default_message = KNOWN.get(code, ("invalid_request", 400, ""))
        self.code = code
        self.error = error or default_error
        self.status = status or default_status
        self.message = message or default_message
        self.suberror = suberror
        self.claims = claims
        self.retry_after = retry_after
        super().__init__(f"AADSTS{code}: {self.message}")

    def body(self, correlation_id: str | None) -> dict:
        trace_id = str(uuid.uuid4())
        correlation = correlation_id or str(uuid.uuid4())
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body: dict = {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.message}\r\nTrace ID: {trace_id}\r\n"
                                 f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [self.code], "timestamp": stamp, "trace_id": trace_id,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        if self.suberror:
            body["suberror"] = self.suberror
        if self.claims:
            body["claims"] = self.claims
        return body

    def render(self, request: web.Request) -> web.Response:
        correlation = request.headers.get("client-request-id") or request.headers.get("x-ms-client-request-id")
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.status == 401 and "authorization" in request.headers:
            headers["WWW-Authenticate"] = 'Basic realm="emulator"'
        return web.json_response(self.body(correlation), status=self.status, headers=headers)
