"""The directory an Entra emulator serves: tenants, users and app registrations. TEST ONLY.

Parsed from a JSON seed (see `seeds/demo.json`):

    {"tenants": [{"id", "domains": [...], "display_name"}],
     "users": [{"oid", "tenant", "upn", "name", "email", "guest_of": [tid...],
                "app_roles": {"<resource client id>": ["Role"]}}],
     "apps": [{"client_id", "display_name", "public_client", "secrets": [...],
               "certificates": ["<PEM>"], "federated_credentials": [{"issuer", "subject",
               "audience", "jwks_uri"}], "redirect_uris": [...], "app_id_uri", "scopes": [...],
               "app_roles": [...], "access_token_version": 1|2, "admin_consent_only": bool,
               "mfa_required": bool, "service_principal_oid", "role_assignments": {...},
               "managed_identity": "system" | "user", "home_tenant": tid (default: the first
               tenant), "first_party": bool, "claims_mapping": bool}],
     "consents": [{"tenant", "user": oid | null (admin, tenant-wide), "client_id", "resource",
                   "scopes": [...]}],
     "service_principals": [{"tenant", "client_id"}],
     "managed_identity_header": "<IDENTITY_HEADER of the managed-identity endpoint>"}

Apps are multi-tenant registrations, but like on real Entra an app can only get tokens in a
tenant where it has a service principal: its home tenant, every tenant for first-party
(Microsoft) apps, a tenant listed in `service_principals`, and any tenant where a consent names
it (consenting provisions the client's and the resource's service principals). Elsewhere the
token endpoint answers AADSTS700016 (client) or 500011 (resource). Apps with `claims_mapping`
sign their tokens with an app-specific key, published only at `.../keys?appid=<client id>`.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unpad(value: str) -> str:
    """msal pads x5t values with '='; compare thumbprints without padding."""
    return value.rstrip("=")


@dataclass
class Tenant:
    id: str
    domains: list[str] = field(default_factory=list)
    display_name: str = ""


@dataclass
class User:
    oid: str
    tenant: str
    upn: str
    name: str
    email: str = ""
    guest_of: list[str] = field(default_factory=list)
    app_roles: dict[str, list[str]] = field(default_factory=dict)
    mfa_required: bool = False

    @property
    def username_prefix(self) -> str:
        return self.upn.split("@", 1)[0].lower()

    def in_tenant(self, tid: str) -> bool:
        return tid == self.tenant or tid in self.guest_of


@dataclass
class Certificate:
    x5t: str          # unpadded b64url SHA-1 of the DER
    x5t_s256: str     # unpadded b64url SHA-256 of the DER
    public_key: object

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Certificate:
        cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(b64url(hashlib.sha1(der).digest()), b64url(hashlib.sha256(der).digest()),
                   cert.public_key())


@dataclass
class FederatedCredential:
    issuer: str
    subject: str
    audience: str = TOKEN_EXCHANGE_AUDIENCE
    jwks_uri: str = ""


@dataclass
class App:
    client_id: str
    display_name: str = ""
    public_client: bool = False
    secrets: list[str] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    federated_credentials: list[FederatedCredential] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)
    app_id_uri: str = ""
    scopes: list[str] = field(default_factory=list)
    app_roles: list[str] = field(default_factory=list)
    access_token_version: int = 1
    admin_consent_only: bool = False
    mfa_required: bool = False
    service_principal_oid: str = ""
    role_assignments: dict[str, list[str]] = field(default_factory=dict)
    managed_identity: str = ""      # "system" | "user": a managed identity (managed_identity.py)
    home_tenant: str = ""           # "" = the seed's first tenant
    first_party: bool = False       # a Microsoft app: a service principal in every tenant
    claims_mapping: bool = False    # tokens for it are signed with its own key (?appid=)

    def __post_init__(self) -> None:
        if not self.service_principal_oid:
            self.service_principal_oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{self.client_id}"))

    def identifiers(self) -> set[str]:
        ids = {self.client_id.lower()}
        if self.app_id_uri:
            ids.add(self.app_id_uri.rstrip("/").lower())
        return ids


@dataclass(frozen=True)
class Consent:
    tenant: str
    user: str | None   # None: admin consent for the whole tenant
    client_id: str
    resource: str      # the resource's client id
    scopes: frozenset[str]


def parse_app(raw: dict) -> App:
    return App(
        client_id=raw["client_id"], display_name=raw.get("display_name", ""),
        public_client=bool(raw.get("public_client", False)), secrets=list(raw.get("secrets", [])),
        certificates=[Certificate.from_pem(p) for p in raw.get("certificates", [])],
        federated_credentials=[FederatedCredential(**f) for f in raw.get("federated_credentials", [])],
        redirect_uris=list(raw.get("redirect_uris", [])), app_id_uri=raw.get("app_id_uri", ""),
        scopes=list(raw.get("scopes", [])), app_roles=list(raw.get("app_roles", [])),
        access_token_version=int(raw.get("access_token_version") or 1),
        admin_consent_only=bool(raw.get("admin_consent_only", False)),
        mfa_required=bool(raw.get("mfa_required", False)),
        service_principal_oid=raw.get("service_principal_oid", ""),
        role_assignments={k: list(v) for k, v in raw.get("role_assignments", {}).items()},
        managed_identity=str(raw.get("managed_identity", "")),
        home_tenant=str(raw.get("home_tenant", "")), first_party=bool(raw.get("first_party", False)),
        claims_mapping=bool(raw.get("claims_mapping", False)),
    )


def parse_seed(seed: dict) -> tuple[list[Tenant], list[User], list[App], list[Consent]]:
    tenants = [Tenant(t["id"], list(t.get("domains", [])), t.get("display_name", ""))
               for t in seed.get("tenants", [])]
    users = [User(oid=u["oid"], tenant=u["tenant"], upn=u["upn"], name=u.get("name", u["upn"]),
                  email=u.get("email", ""), guest_of=list(u.get("guest_of", [])),
                  app_roles={k: list(v) for k, v in u.get("app_roles", {}).items()},
                  mfa_required=bool(u.get("mfa_required", False)))
             for u in seed.get("users", [])]
    apps = [parse_app(a) for a in seed.get("apps", [])]
    consents = [Consent(c["tenant"], c.get("user"), c["client_id"], c["resource"],
                        frozenset(c.get("scopes", []))) for c in seed.get("consents", [])]
    return tenants, users, apps, consents
