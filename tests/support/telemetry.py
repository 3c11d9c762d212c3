"""Helpers of the telemetry tests: the full broker's configuration and W3C trace context."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from service.settings import Settings, load_settings
from tests.support.client_keys import ClientKeys
from tests.support.full_broker import PUBLIC_URL, SIGNER, full_toml


def broker_toml(entra, acs, tmp_path: Path, extra: str = "") -> str:
    """tests/support/full_broker's configuration (signer keys created in tmp_path) plus `extra`."""
    keys = ClientKeys.create(tmp_path, SIGNER, PUBLIC_URL)
    return full_toml(entra, acs, tmp_path / "keys", keys.path) + "\n" + extra


def broker_settings(entra, acs, tmp_path: Path, extra: str = "",
                    environ: Mapping[str, str] | None = None) -> Settings:
    return load_settings(broker_toml(entra, acs, tmp_path, extra), environ or {}, base_dir=tmp_path)


def new_traceparent() -> tuple[str, str, str]:
    """(trace id, parent span id, the sampled `traceparent` header naming them) of a caller."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-01"
