"""The typed, frozen shape of the configuration (CONTRACT §2); `service.settings` re-exports it.

Every section is a frozen dataclass whose field names are the TOML key names. Sequences are
tuples, tables are read-only `MappingProxyType`s and secrets are `Secret`s, so a `Settings`
can be shared freely and printed without leaking anything. `__post_init__` normalises what a
test passes in by hand (lists, dicts, plain-string secrets) and fills the resolved defaults,
so `Settings(...)` built directly behaves like one loaded from a file.
"""

from __future__ import annotations

import dataclasses
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
REFRESH_TOKEN = "refresh_token"
MASK = "**********"


class Secret:
    """A string that never shows itself in repr/str/logs; `.reveal()` gives the value."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str = "") -> None:
        object.__setattr__(self, "_value", str(value))

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret('{MASK}')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return MASK if self._value else ""

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (Secret, (self._value,))


def _freeze(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _tuple(obj: object, *names: str) -> None:
    for name in names:
        value: Iterable[object] = getattr(obj, name)
        _freeze(obj, name, tuple(value))


def _secret(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, Secret):
            _freeze(obj, name, Secret(value or ""))


def _scope_map(value: Mapping[str, Iterable[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({str(k): tuple(v) for k, v in dict(value).items()})


def _empty_map() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""          # "" -> derived from host and port
    shutdown_grace: int = 15
    body_timeout: int = 30        # seconds for a request body to arrive (408 + close after)

    def __post_init__(self) -> None:
        if not self.public_url:
            host = f"[{self.host}]" if ":" in self.host else self.host
            _freeze(self, "public_url", f"http://{host}:{self.port}")


@dataclass(frozen=True)
class TlsSettings:
    ca_bundle: str = ""
    proxy: str = ""          # outgoing HTTP(S) proxy URL; "" = direct (proxy variables are not read)


@dataclass(frozen=True)
class EntraSettings:
    tenant_id: str
    client_id: str
    authority: str = "https://login.microsoftonline.com"
    allowed_tenants: tuple[str, ...] = ()
    client_secret: Secret = field(default_factory=Secret)
    client_certificate: str = ""
    federated_token_file: str = ""
    audiences: tuple[str, ...] = ()
    required_scopes: tuple[str, ...] = ("user_impersonation",)
    allowed_client_apps: tuple[str, ...] = ()
    allow_app_only: bool = False
    clock_skew: int = 120
    timeout: int = 10
    scope_map: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_map)
    linking: str = "none"                    # extension: account linking keyed on (tid, oid)
    lookup_attributes: tuple[str, ...] = ()  # extension: only "oid" (grants/linking.py)
    app_signing_keys: bool = False           # key document fetched with ?appid=<client_id>

    def __post_init__(self) -> None:
        _tuple(self, "allowed_tenants", "audiences", "required_scopes", "allowed_client_apps",
               "lookup_attributes")
        _secret(self, "client_secret")
        _freeze(self, "scope_map", _scope_map(self.scope_map))
        _freeze(self, "authority", self.authority.rstrip("/"))
        if not self.allowed_tenants:
            _freeze(self, "allowed_tenants", (self.tenant_id,))
        if not self.audiences:
            _freeze(self, "audiences", (self.client_id, f"api://{self.client_id}"))


@dataclass(frozen=True)
class AcsSettings:
    endpoint: str = ""
    access_key: Secret = field(default_factory=Secret)
    connection_string: Secret = field(default_factory=Secret)
    teams_scopes: tuple[str, ...] = ("Teams.ManageCalls", "Teams.ManageChats")
    allowed_teams_client_apps: tuple[str, ...] = ()
    verify_teams_token_signature: bool = True
    identity_scopes: tuple[str, ...] = ("chat", "voip")
    identity_token_ttl: int = 3600
    timeout: int = 10
    managed_identity: bool = False           # extension: azure-identity ManagedIdentityCredential
    managed_identity_client_id: str = ""     # extension: user-assigned identity; "" = system-assigned

    def __post_init__(self) -> None:
        _tuple(self, "teams_scopes", "allowed_teams_client_apps", "identity_scopes")
        _secret(self, "access_key", "connection_string")
        if not self.endpoint and self.connection_string:
            _freeze(self, "endpoint", connection_string_endpoint(self.connection_string.reveal()))


def parse_connection_string(text: str) -> dict[str, str]:
    """`endpoint=https://x/;accesskey=...` -> {"endpoint": ..., "accesskey": ...} (keys lower-cased)."""
    parts: dict[str, str] = {}
    for item in text.split(";"):
        if item.strip():
            key, sep, value = item.partition("=")
            if sep:
                parts[key.strip().lower()] = value.strip()
    return parts


def connection_string_endpoint(text: str) -> str:
    return parse_connection_string(text).get("endpoint", "").rstrip("/")


@dataclass(frozen=True)
class OboSettings:
    name: str
    scopes: tuple[str, ...]

    def __post_init__(self) -> None:
        _tuple(self, "scopes")


@dataclass(frozen=True)
class IssuerSettings:
    signing_alg: str = "ES256"
    keys_dir: Path = Path("keys")
    key_activation_delay: int = 600
    access_token_ttl: int = 900
    refresh_token_ttl: int = 86400
    key_reload_interval: int = 5     # seconds between re-reads of keys_dir (replicas converge this fast)

    def __post_init__(self) -> None:
        _freeze(self, "keys_dir", Path(self.keys_dir).absolute())


@dataclass(frozen=True)
class TrustedIssuer:
    name: str
    issuer: str
    jwks_uri: str = ""
    certificate: str = ""
    secret: Secret = field(default_factory=Secret)
    audiences: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS256",)
    max_token_age: int = 0
    replay_check: bool = False
    scope_map: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_map)
    linking: str = "none"
    lookup_attributes: tuple[str, ...] = ()
    mandate_linked: bool = False             # link_by_attribute without a match: refuse (True)

    def __post_init__(self) -> None:
        _tuple(self, "audiences", "algorithms", "lookup_attributes")
        _secret(self, "secret")
        _freeze(self, "scope_map", _scope_map(self.scope_map))


@dataclass(frozen=True)
class FederatedIdentity:
    issuer: str
    subject: str
    audience: str


@dataclass(frozen=True)
class ClientSettings:
    client_id: str
    client_secret: Secret = field(default_factory=Secret)
    jwks: str = ""
    grant_types: tuple[str, ...] = (TOKEN_EXCHANGE, REFRESH_TOKEN)
    allowed_issuers: tuple[str, ...] = ()
    allowed_audiences: tuple[str, ...] = ()
    allowed_scopes: tuple[str, ...] = ()
    refresh_tokens: bool = False
    access_token_ttl: int = 0      # resolved by Settings: 0 -> issuer.access_token_ttl
    token_format: str = "jwt"
    federated_identities: tuple[FederatedIdentity, ...] = ()

    def __post_init__(self) -> None:
        _tuple(self, "grant_types", "allowed_issuers", "allowed_audiences", "allowed_scopes")
        _secret(self, "client_secret")
        _freeze(self, "federated_identities", tuple(
            f if isinstance(f, FederatedIdentity) else FederatedIdentity(**f)
            for f in self.federated_identities))


_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)[^@/]*@", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Hide the password of `scheme://user:password@host` (e.g. a Redis URL)."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", url)


@dataclass(frozen=True)
class StoreSettings:
    url: str = field(default="memory://", repr=False)
    encryption_key: Secret = field(default_factory=Secret)      # base64 of 32 bytes (AES-256-GCM)
    previous_encryption_keys: tuple[Secret, ...] = ()           # still read during a rotation
    password: Secret = field(default_factory=Secret)            # instead of the URL's password
    entra_auth: bool = False                                    # Azure Cache for Redis + Entra ID
    managed_identity: bool = False                              # entra_auth with the managed identity
    managed_identity_client_id: str = ""                        # user-assigned; "" = system-assigned

    def __post_init__(self) -> None:
        _secret(self, "encryption_key", "password")
        _freeze(self, "previous_encryption_keys",
                tuple(k if isinstance(k, Secret) else Secret(k) for k in self.previous_encryption_keys))

    @property
    def is_redis(self) -> bool:
        return self.url.lower().startswith(("redis://", "rediss://"))

    def __repr__(self) -> str:
        return f"StoreSettings(url={mask_url(self.url)!r}, entra_auth={self.entra_auth})"


@dataclass(frozen=True)
class CorsSettings:
    allowed_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _tuple(self, "allowed_origins")


@dataclass(frozen=True)
class ThrottleSettings:
    """Brute-force protection (per replica): failures within `window` s before a `lockout` s lock."""
    max_failures: int = 0           # 0 (the default) disables
    window: int = 60
    lockout: int = 60


@dataclass(frozen=True)
class TelemetrySettings:
    """[telemetry], with the standard OTEL_* variables folded in (settings/telemetry.py)."""
    otlp_endpoint: str = ""                   # OTLP/HTTP collector base URL; "" = no OTLP export
    service_name: str = "tokenbroker"
    sample_ratio: float = 1.0                 # of new traces; a caller's sampled flag is followed
    traces_endpoint: str = ""                 # resolved: f"{otlp_endpoint}/v1/traces" (or OTEL_*)
    otlp_headers: Secret = field(default_factory=Secret)                # OTEL_EXPORTER_OTLP_HEADERS
    azure_monitor_connection_string: Secret = field(default_factory=Secret)  # APPLICATIONINSIGHTS_...
    resource_attributes: str = ""             # OTEL_RESOURCE_ATTRIBUTES (k=v,k2=v2)

    def __post_init__(self) -> None:
        _secret(self, "otlp_headers", "azure_monitor_connection_string")
        if self.otlp_endpoint and not self.traces_endpoint:
            _freeze(self, "traces_endpoint", f"{self.otlp_endpoint.rstrip('/')}/v1/traces")

    @property
    def enabled(self) -> bool:
        return bool(self.traces_endpoint or self.azure_monitor_connection_string)


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    entra: EntraSettings | None = None
    acs: AcsSettings | None = None
    obo: Mapping[str, OboSettings] = field(default_factory=lambda: MappingProxyType({}))
    issuer: IssuerSettings = field(default_factory=IssuerSettings)
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    clients: tuple[ClientSettings, ...] = ()
    store: StoreSettings = field(default_factory=StoreSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    config_path: Path | None = None

    def __post_init__(self) -> None:
        _freeze(self, "obo", MappingProxyType(dict(self.obo)))
        _tuple(self, "trusted_issuers")
        ttl = self.issuer.access_token_ttl
        _freeze(self, "clients", tuple(
            dataclasses.replace(c, access_token_ttl=ttl) if c.access_token_ttl == 0 else c
            for c in self.clients))

    def client(self, client_id: str) -> ClientSettings | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def trusted_issuer(self, name: str) -> TrustedIssuer | None:
        return next((t for t in self.trusted_issuers if t.name == name), None)
