"""The emulator's mutable state: directory, consents, codes, refresh tokens, keys, clock. TEST ONLY."""

from __future__ import annotations

import copy
import json
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .keys import KeyRing, SigningKey, make_key
from .model import App, Consent, Tenant, User, parse_seed

DEMO_SEED = Path(__file__).parent / "seeds" / "demo.json"
META_TENANTS = ("common", "organizations", "consumers")


@dataclass
class EntraConfig:
    base_url: str
    seed: dict | str | Path | None = None          # None: the demo seed
    clock: Callable[[], float] = time.time
    keys_path: Path | None = None                   # persist the first signing key here
    access_token_lifetime: int | None = None        # None: 60-90 minutes, varying like Entra's
    lifetime_seed: int | None = None                # seeds that variation (reproducible runs)
    code_lifetime: int = 600
    refresh_token_lifetime: int = 90 * 24 * 3600
    ca_bundle: str | None = None                    # trusted when fetching federated JWKS


@dataclass
class CodeGrant:
    client_id: str
    redirect_uri: str
    scope: str
    tenant: str
    user_oid: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    expires_at: float
    redeemed: bool = False
    mfa: bool = False            # the sign-in answered a claims challenge (step-up done)


@dataclass
class RefreshGrant:
    client_id: str
    tenant: str
    user_oid: str
    expires_at: float
    family: str = field(default_factory=lambda: str(uuid.uuid4()))
    mfa: bool = False


def load_seed(seed: dict | str | Path | None) -> dict:
    if isinstance(seed, dict):
        return copy.deepcopy(seed)
    return json.loads(Path(seed or DEMO_SEED).read_text())


class EmulatorState:
    def __init__(self, config: EntraConfig) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.seed = load_seed(config.seed)
        self.keys = KeyRing.load_or_create(config.keys_path)
        self.app_keys: dict[str, SigningKey] = {}      # client id (lower) -> app-specific key
        self.clock_offset = 0.0
        self.access_token_lifetime = config.access_token_lifetime
        self._lifetimes = random.Random(config.lifetime_seed)
        self.reset()

    def reset(self) -> None:
        """Back to the seed (directory, consents, flags), forgetting codes, tokens, faults and
        the request log. Keys are kept."""
        tenants, users, apps, consents = parse_seed(self.seed)
        self.tenants: dict[str, Tenant] = {t.id: t for t in tenants}
        self.users: dict[str, User] = {u.oid: u for u in users}
        self.apps: dict[str, App] = {a.client_id.lower(): a for a in apps}
        self.consents: set[Consent] = set(consents)
        home = tenants[0].id if tenants else ""
        self.service_principals: set[tuple[str, str]] = set()
        for a in apps:
            for tid in ([t.id for t in tenants] if a.first_party else [a.home_tenant or home]):
                self.service_principals.add((tid.lower(), a.client_id.lower()))
        for sp in self.seed.get("service_principals", []):
            self.service_principals.add((sp["tenant"].lower(), sp["client_id"].lower()))
        for c in consents:
            self._provision(c.tenant, c.client_id, c.resource)
        self.codes: dict[str, CodeGrant] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.faults: list[dict] = []
        self.log: list[dict] = []
        self.clock_offset = 0.0
        self.access_token_lifetime = self.config.access_token_lifetime

    def now(self) -> float:
        return self.config.clock() + self.clock_offset

    def token_lifetime(self) -> int:
        """The fixed lifetime when one is set, else 3600-5400 s like Entra's (seedable)."""
        if self.access_token_lifetime:
            return int(self.access_token_lifetime)
        return self._lifetimes.randint(3600, 5400)

    def seed_lifetimes(self, seed: int) -> None:
        self._lifetimes.seed(seed)

    def signing_key_for(self, resource_client_id: str) -> SigningKey:
        """The key that signs tokens for this resource: its own with claims mapping."""
        app = self.app(resource_client_id)
        if app is None or not app.claims_mapping:
            return self.keys.signer
        return self.app_key(app.client_id)

    def app_key(self, client_id: str) -> SigningKey:
        key = self.app_keys.get(client_id.lower())
        if key is None:
            key = self.app_keys[client_id.lower()] = make_key()
        return key

    # -- service principals -------------------------------------------------------------
    def has_service_principal(self, tenant: str, client_id: str) -> bool:
        return (tenant.lower(), client_id.lower()) in self.service_principals

    def _provision(self, tenant: str, *client_ids: str) -> None:
        for cid in client_ids:
            self.service_principals.add((tenant.lower(), cid.lower()))

    # -- directory lookups -------------------------------------------------------------
    def tenant(self, segment: str) -> Tenant | None:
        seg = segment.lower()
        for t in self.tenants.values():
            if t.id.lower() == seg or seg in (d.lower() for d in t.domains):
                return t
        return None

    def default_tenant(self) -> Tenant:
        return next(iter(self.tenants.values()))

    def app(self, identifier: str | None) -> App | None:
        """By client id or App ID URI (case-insensitive, trailing slash ignored)."""
        if not identifier:
            return None
        ident = identifier.rstrip("/").lower()
        found = self.apps.get(ident)
        if found:
            return found
        return next((a for a in self.apps.values() if ident in a.identifiers()), None)

    def user(self, ref: str | None, tenant: str | None = None) -> User | None:
        """By oid, UPN, email or UPN prefix ("alice")."""
        if not ref:
            return None
        r = ref.lower()
        for u in self.users.values():
            if tenant and not u.in_tenant(tenant):
                continue
            if r in (u.oid.lower(), u.upn.lower(), u.email.lower(), u.username_prefix):
                return u
        return None

    def users_in(self, tenant: str | None) -> list[User]:
        return [u for u in self.users.values() if tenant is None or u.in_tenant(tenant)]

    # -- consent --------------------------------------------------------------------------
    def consented(self, tenant: str, user_oid: str, client_id: str, resource: str) -> set[str]:
        scopes: set[str] = set()
        for c in self.consents:
            if (c.tenant == tenant and c.client_id.lower() == client_id.lower()
                    and c.resource.lower() == resource.lower() and c.user in (None, user_oid)):
                scopes |= c.scopes
        return scopes

    def grant_consent(self, tenant: str, user: str | None, client_id: str, resource: str,
                      scopes: set[str]) -> None:
        self.consents.add(Consent(tenant, user, client_id, resource, frozenset(scopes)))
        self._provision(tenant, client_id, resource)   # consenting creates the service principals

    def revoke_consent(self, tenant: str, user: str | None, client_id: str, resource: str) -> int:
        gone = {c for c in self.consents if c.tenant == tenant and c.user == user
                and c.client_id.lower() == client_id.lower() and c.resource.lower() == resource.lower()}
        self.consents -= gone
        return len(gone)

    # -- codes and refresh tokens -------------------------------------------------------
    def new_code(self, grant: CodeGrant) -> str:
        code = "0.emu-code." + secrets.token_urlsafe(48)
        self.codes[code] = grant
        return code

    def new_refresh_token(self, client_id: str, tenant: str, user_oid: str,
                          family: str | None = None, mfa: bool = False) -> str:
        token = "1.emu-rt." + secrets.token_urlsafe(64)
        grant = RefreshGrant(client_id, tenant, user_oid, self.now() + self.config.refresh_token_lifetime,
                             mfa=mfa)
        if family:
            grant.family = family
        self.refresh_tokens[token] = grant
        return token

    def summary(self) -> dict:
        return {
            "base_url": self.base_url,
            "tenants": [{"id": t.id, "domains": t.domains, "display_name": t.display_name}
                        for t in self.tenants.values()],
            "users": [{"oid": u.oid, "tenant": u.tenant, "upn": u.upn, "name": u.name}
                      for u in self.users.values()],
            "apps": [{"client_id": a.client_id, "display_name": a.display_name, "app_id_uri": a.app_id_uri,
                      "scopes": a.scopes, "app_roles": a.app_roles,
                      "access_token_version": a.access_token_version, "public_client": a.public_client,
                      "mfa_required": a.mfa_required, "admin_consent_only": a.admin_consent_only}
                     for a in self.apps.values()],
            "consents": [{"tenant": c.tenant, "user": c.user, "client_id": c.client_id,
                          "resource": c.resource, "scopes": sorted(c.scopes)} for c in self.consents],
            "service_principals": [{"tenant": t, "client_id": c} for t, c in sorted(self.service_principals)],
            "signing_kid": self.keys.signer.kid,
        }



STATE_KEY = web.AppKey("entra_state", EmulatorState)
