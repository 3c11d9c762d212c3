"""OpenID discovery (v2.0 and v1) and the JWKS. TEST ONLY."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .errors import EntraError
from .state import META_TENANTS, STATE_KEY, EmulatorState
from .tokens import v1_issuer, v2_issuer


def _segment(state: EmulatorState, request: web.Request) -> tuple[str, str]:
    """(segment used in endpoint URLs, tenant id or the `{tenantid}` placeholder)."""
    seg = request.match_info["tenant"]
    if seg.lower() in META_TENANTS:
        return seg, "{tenantid}"
    tenant = state.tenant(seg)
    if tenant is None:
        raise EntraError(90002, f"Tenant '{seg}' not found.")
    return tenant.id, tenant.id


def _common(state: EmulatorState) -> dict:
    return {
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                             "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                             "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "request_uri_parameter_supported": False,
        "frontchannel_logout_supported": True, "http_logout_supported": True,
        "tenant_region_scope": "NA", "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
        "x_emulator": "TEST ONLY",
    }


Document = Callable[[EmulatorState, str, str, str], dict]


def _openid_configuration(build: Document) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A discovery route: resolve the tenant segment (unknown → AADSTS90002), then answer
    `build(state, seg, tid, base)` followed by the fields both versions share."""

    async def handler(request: web.Request) -> web.Response:
        state: EmulatorState = request.app[STATE_KEY]
        try:
            seg, tid = _segment(state, request)
        except EntraError as err:
            return err.render(request)
        return web.json_response({**build(state, seg, tid, f"{state.base_url}/{seg}"), **_common(state)})

    return handler


@_openid_configuration
def openid_v2(state: EmulatorState, seg: str, tid: str, base: str) -> dict:
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "issuer": v2_issuer(state, tid),
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "userinfo_endpoint": f"{state.base_url}/oidc/userinfo",
        "kerberos_endpoint": f"{base}/kerberos",
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
    }


@_openid_configuration
def openid_v1(state: EmulatorState, seg: str, tid: str, base: str) -> dict:
    return {
        "token_endpoint": f"{base}/oauth2/token",
        "jwks_uri": f"{base}/discovery/keys",
        "issuer": v1_issuer(tid),
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "end_session_endpoint": f"{base}/oauth2/logout",
        "userinfo_endpoint": f"{state.base_url}/{seg}/openid/userinfo",
        "scopes_supported": ["openid"],
    }


def _key_set(state: EmulatorState, request: web.Request, issuer: str | None) -> web.Response:
    """The global keys, or with `?appid=` of an app with claims mapping only that app's key."""
    app = state.app(request.query.get("appid"))
    if app is not None and app.claims_mapping:
        return web.json_response({"keys": [state.app_key(app.client_id).jwk(issuer)]})
    return web.json_response(state.keys.jwks(issuer))


async def keys_v2(request: web.Request) -> web.Response:
    """Like Entra: each key carries `issuer`, the tenant's concrete v2 issuer on a tenant's own
    document and the `{tenantid}` template only on `organizations`/`common`/`consumers`.
    Evidence: key documents captured from login.microsoftonline.com in minio's
    internal/config/identity/openid/jwks_test.go; Microsoft's access-token docs ("Validate the
    signing key issuer"); IdentityModel's AadTokenValidationParametersExtension, which substitutes
    `tid` into the key's issuer and compares it with the token's `iss`."""
    state: EmulatorState = request.app[STATE_KEY]
    try:
        _, tid = _segment(state, request)
    except EntraError as err:
        return err.render(request)
    return _key_set(state, request, v2_issuer(state, tid))


async def keys_v1(request: web.Request) -> web.Response:
    """v1 key documents carry no `issuer` on their keys (same captured documents as above)."""
    state: EmulatorState = request.app[STATE_KEY]
    try:
        _segment(state, request)
    except EntraError as err:
        return err.render(request)
    return _key_set(state, request, None)
