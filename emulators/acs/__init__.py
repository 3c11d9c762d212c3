"""Azure Communication Services Identity emulator (api-version 2023-10-01). TEST ONLY.

`create_app(AcsConfig(base_url=...))` builds it; `python -m emulators acs` runs it alone.
Never imports `service` nor the Entra emulator: Entra keys are fetched over HTTPS.
"""

from .app import create_app
from .state import DEV_ACCESS_KEY, DEV_RESOURCE_ID, AcsConfig

__all__ = ["AcsConfig", "DEV_ACCESS_KEY", "DEV_RESOURCE_ID", "create_app"]
