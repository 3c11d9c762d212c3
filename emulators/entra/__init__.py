"""A Microsoft Entra ID (v2.0 endpoint) emulator that unmodified msal and azure-identity work
against. TEST ONLY; never imports `service`.

`create_app(EntraConfig(base_url=...))` builds the aiohttp app; `demo` holds the demo seed's
ids and dev secrets; the control plane lives under `/_emulator/` (see `control.py`).
"""

from .app import create_app, tenant_id_of
from .state import EntraConfig

__all__ = ["EntraConfig", "create_app", "tenant_id_of"]
