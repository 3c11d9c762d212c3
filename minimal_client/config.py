"""Configuration of the minimal client: a small TOML file and/or `MINIMAL_CLIENT_*` variables.

Every key may come from the file or from the environment variable `MINIMAL_CLIENT_<KEY>`
(upper case); the environment wins. A variable's value is read as a TOML literal when it
parses as one (`["a", "b"]`, `true`, `8000`), else as a plain string. Unknown keys are an
error. Only the entry point (`__main__`) reads `os.environ`; everything else gets a mapping.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "MINIMAL_CLIENT_"
TEAMS_SCOPES = (
    "https://auth.msft.communication.azure.com/Teams.ManageCalls",
    "https://auth.msft.communication.azure.com/Teams.ManageChats",
)


class ConfigError(ValueError):
    """Invalid configuration; `problems` names each offending key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ClientConfig:
    """Everything the minimal client needs. Build it directly in tests."""

    authority: str                       # scheme+host[:port] only, e.g. https://127.0.0.1:9443
    tenant: str
    client_id: str
    client_secret: str = field(repr=False)
    broker_url: str
    broker_app_id: str = ""              # used for the default broker scope
    broker_scopes: tuple[str, ...] = ()  # default: (f"api://{broker_app_id}/user_impersonation",)
    teams_scopes: tuple[str, ...] = TEAMS_SCOPES
    obo_names: tuple[str, ...] = ("workspace",)
    public_url: str = ""                 # base URL the browser uses; "" = taken from each request
    redirect_path: str = "/auth/callback"
    ca_bundle: str = ""                  # PEM trusted for Entra and the broker; "" = system CAs only
    cookie_secure: bool | None = None    # None = on unless the page is served over plain http
    host: str = "127.0.0.1"
    port: int = 8000
    session_ttl: int = 8 * 3600
    timeout: float = 15.0

    def __post_init__(self) -> None:
        problems = validate(self)
        if problems:
            raise ConfigError(problems)
        if not self.broker_scopes:
            object.__setattr__(self, "broker_scopes", (f"api://{self.broker_app_id}/user_impersonation",))
        object.__setattr__(self, "authority", self.authority.rstrip("/"))
        object.__setattr__(self, "broker_url", self.broker_url.rstrip("/"))
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))

    @property
    def authority_url(self) -> str:
        """The msal authority: host plus tenant."""
        return f"{self.authority}/{self.tenant}"

    def redirect_uri(self, origin: str) -> str:
        """The redirect URI for a page served at `origin` (public_url wins when set)."""
        return f"{self.public_url or origin.rstrip('/')}{self.redirect_path}"

    def secure_cookie(self, origin: str) -> bool:
        """Secure cookies unless configured off or the client is served over plain http."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return urlsplit(self.public_url or origin).scheme == "https"


def validate(cfg: ClientConfig) -> list[str]:
    problems: list[str] = []
    for key in ("authority", "tenant", "client_id", "client_secret", "broker_url"):
        if not getattr(cfg, key):
            problems.append(f"{key}: required")
    parts = urlsplit(cfg.authority)
    if cfg.authority and (parts.scheme != "https" or not parts.netloc or parts.path.strip("/")):
        problems.append("authority: must be https://host[:port] with no path (msal needs https)")
    if cfg.broker_url and urlsplit(cfg.broker_url).scheme not in ("http", "https"):
        problems.append("broker_url: must be an http(s) URL")
    if cfg.public_url and urlsplit(cfg.public_url).scheme not in ("http", "https"):
        problems.append("public_url: must be an http(s) URL")
    if not cfg.redirect_path.startswith("/"):
        problems.append("redirect_path: must start with /")
    if not cfg.broker_scopes and not cfg.broker_app_id:
        problems.append("broker_scopes: required (or set broker_app_id for the default scope)")
    if cfg.ca_bundle and not Path(cfg.ca_bundle).is_file():
        problems.append(f"ca_bundle: file not found: {cfg.ca_bundle}")
    for name in cfg.obo_names:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            problems.append(f"obo_names: {name!r} must be letters, digits, - or _")
    return problems


_TUPLES = {"broker_scopes", "teams_scopes", "obo_names"}
_KEYS = {f for f in ClientConfig.__dataclass_fields__}


def _literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(toml_text: str = "", environ: Mapping[str, str] | None = None,
                *, base_dir: Path | None = None) -> ClientConfig:
    """Build a ClientConfig from TOML text overlaid with `MINIMAL_CLIENT_*` variables."""
    problems: list[str] = []
    try:
        raw: dict[str, Any] = dict(tomllib.loads(toml_text)) if toml_text else {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"config file: not valid TOML: {e}"]) from e
    for name, value in (environ or {}).items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX):].lower()
            if key == "config":
                continue
            raw[key] = _literal(value)
    for key in sorted(set(raw) - _KEYS):
        problems.append(f"{key}: unknown key")
    values: dict[str, Any] = {}
    for key in _KEYS & set(raw):
        value = raw[key]
        if key in _TUPLES:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{key}: must be a list of strings")
                continue
            value = tuple(value)
        elif key == "cookie_secure":
            if not isinstance(value, bool):
                problems.append(f"{key}: must be true or false")
                continue
        elif key in ("port", "session_ttl"):
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(f"{key}: must be an integer")
                continue
        elif key == "timeout":
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"{key}: must be a number")
                continue
            value = float(value)
        elif not isinstance(value, str):
            value = str(value)
        if key == "ca_bundle" and value and base_dir and not Path(value).is_absolute():
            value = str((base_dir / value).resolve())
        values[key] = value
    for key in ("authority", "tenant", "client_id", "client_secret", "broker_url"):
        values.setdefault(key, "")
    try:
        cfg = ClientConfig(**values)
    except ConfigError as e:        # report every problem at once, each naming its key
        raise ConfigError(problems + e.problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config_file(path: str | Path | None, environ: Mapping[str, str]) -> ClientConfig:
    """`path` may be None: then the environment alone configures the client."""
    if path is None:
        return load_config("", environ)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"config file: cannot read {p}: {e.strerror}"]) from e
    return load_config(text, environ, base_dir=p.parent.resolve())
