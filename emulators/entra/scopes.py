"""Scope parsing the way Entra's v2.0 endpoint does it. TEST ONLY.

A request names at most one resource (`api://x/a api://x/b`, `<guid>/.default`) plus the
OIDC scopes msal adds (`openid profile offline_access`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import EntraError
from .model import App
from .state import EmulatorState

OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
GRAPH = "https://graph.microsoft.com"


@dataclass
class ScopeRequest:
    resource: App | None            # None: only OIDC scopes were asked for
    prefix: str = ""                # how the resource was named (client id or App ID URI)
    names: list[str] = field(default_factory=list)   # short names; [".default"] for /.default
    oidc: set[str] = field(default_factory=set)
    bare: bool = False              # Graph scopes asked for without a resource ("User.Read")

    @property
    def is_default(self) -> bool:
        return self.names == [".default"]

    def full_names(self, short: list[str]) -> list[str]:
        """What the response's `scope` lists: full names, except for bare Graph scopes (as Entra)."""
        if self.bare:
            return list(short) + sorted(self.oidc - {"offline_access"})
        return [f"{self.prefix}/{s}" for s in short]

    @property
    def requested_via_uri(self) -> bool:
        return bool(self.resource and self.resource.app_id_uri
                    and self.prefix.rstrip("/").lower() == self.resource.app_id_uri.rstrip("/").lower())


def parse_scopes(state: EmulatorState, scope: str | None, *, required: bool = True) -> ScopeRequest:
    items = (scope or "").split()
    if not items and required:
        raise EntraError(900144, "The request body must contain the following parameter: 'scope'.")
    req = ScopeRequest(resource=None)
    for item in items:
        if item.lower() in OIDC_SCOPES:
            req.oidc.add(item.lower())
            continue
        if "/" not in item:
            if state.app(GRAPH) is None:
                raise EntraError(70011, f"The provided value for the input parameter 'scope' is not valid. "
                                        f"The scope {item} is not valid.")
            req.bare = True
            item = f"{GRAPH}/{item}"
        prefix, name = item.rsplit("/", 1)
        app = state.app(prefix)
        if app is None:
            raise EntraError(500011, f"The resource principal named {prefix} was not found in the tenant.")
        if req.resource is not None and req.resource.client_id != app.client_id:
            raise EntraError(700022)
        if req.resource is None:
            req.resource, req.prefix = app, prefix.rstrip("/")
        if name == ".default":
            req.names = [".default"] if not req.names else req.names
            if req.names != [".default"]:
                raise EntraError(70011, f"The scope {item} is not valid: .default cannot be combined.")
            continue
        if req.is_default:
            raise EntraError(70011, f"The scope {item} is not valid: .default cannot be combined.")
        if name not in app.scopes:
            raise EntraError(70011, f"The provided value for the input parameter 'scope' is not valid. "
                                    f"The scope {item} is not valid.")
        if name not in req.names:
            req.names.append(name)
    return req


def effective_scopes(state: EmulatorState, req: ScopeRequest, tenant: str, user_oid: str,
                     client_id: str) -> list[str]:
    """The short scope names a delegated token will carry (`.default` = everything consented)."""
    assert req.resource is not None
    if req.is_default:
        granted = state.consented(tenant, user_oid, client_id, req.resource.client_id)
        return [s for s in req.resource.scopes if s in granted]
    return list(req.names)
