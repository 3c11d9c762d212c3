"""The ACS emulator's configuration and in-memory state (identities, faults, request log). TEST ONLY."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A fixed development key (base64 of 32 bytes). Never a real secret: the emulator is TEST ONLY.
DEV_ACCESS_KEY = "dGVzdC1vbmx5LWFjcy1lbXVsYXRvci1hY2Nlc3Mta2V5MDE="
DEV_RESOURCE_ID = "5b3c2d1e-0f9a-4b8c-8d7e-6f5a4b3c2d1e"
API_VERSIONS = frozenset({"2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01"})
# The Teams exchange exists from its preview (2021-10-31-preview) and GA (2022-06-01) on; the
# identity operations from 2021-03-07 on. An api-version is accepted per route, like the service.
TEAMS_API_VERSIONS = frozenset({"2021-10-31-preview", "2022-06-01", "2022-10-01", "2023-10-01"})


def api_versions(operation: str | None) -> frozenset[str]:
    return TEAMS_API_VERSIONS if operation == "get_token_for_teams_user" else API_VERSIONS


OPERATIONS = ("create_user", "create_user_and_token", "get_token", "revoke_tokens", "delete_user",
              "get_token_for_teams_user")


@dataclass(frozen=True)
class AcsConfig:
    """Everything `create_app` needs. `clock()` returns epoch seconds (injectable for tests)."""

    base_url: str
    access_key: str = DEV_ACCESS_KEY
    entra_url: str | None = None          # Entra emulator base URL: JWKS for bearer auth and Teams tokens
    ca_bundle: str | None = None          # CA to trust when talking to the Entra emulator
    resource_id: str = DEV_RESOURCE_ID
    resource_location: str = "unitedstates"
    token_secret: bytes = b"acs-emulator-token-signing-secret-TEST-ONLY"
    date_window: float = 15 * 60          # accepted x-ms-date skew, seconds
    clock: Callable[[], float] = time.time

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[-1].rstrip("/")

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.base_url.rstrip('/')}/;accesskey={self.access_key}"


@dataclass
class Identity:
    id: str
    created_at: float
    revoked_before: float = 0.0           # tokens issued at or before this instant are invalid


@dataclass
class Fault:
    """Applies to the next `count` matching calls: wait `delay` s, then (if `status`) fail."""

    operation: str | None = None
    path: str | None = None               # regular expression searched in the request path
    status: int | None = None
    code: str = "ServiceUnavailable"
    message: str = "Injected fault (emulator)."
    delay: float = 0.0
    retry_after: int | None = None
    count: int = 1

    def matches(self, operation: str | None, path: str) -> bool:
        if self.operation not in (None, "*") and self.operation != operation:
            return False
        return self.path is None or re.search(self.path, path) is not None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("operation", "path", "status", "code", "message", "delay",
                                              "retry_after", "count")}


@dataclass
class AcsState:
    config: AcsConfig
    identities: dict[str, Identity] = field(default_factory=dict)
    issued: dict[str, tuple[str, float]] = field(default_factory=dict)   # jti -> (identity id, issued at)
    faults: list[Fault] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)

    def new_identity(self) -> Identity:
        ident = Identity(f"8:acs:{self.config.resource_id}_{uuid.uuid4()}", self.config.clock())
        self.identities[ident.id] = ident
        return ident

    def take_fault(self, operation: str | None, path: str) -> Fault | None:
        """The first matching fault, with one use consumed (removed when spent)."""
        for fault in self.faults:
            if fault.matches(operation, path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def reset(self, *, identities: bool = False) -> None:
        self.faults.clear()
        self.log.clear()
        if identities:
            self.identities.clear()
            self.issued.clear()
