"""A minimal MSAL web client for the broker (demo and test aid, not part of the product).

`create_app(config)` builds the aiohttp app; `load_config(...)`/`load_config_file(...)` read the
TOML file and `MINIMAL_CLIENT_*` variables. Run it with `python -m minimal_client serve`.
"""

from .app import create_app
from .config import ClientConfig, ConfigError, load_config, load_config_file

__all__ = ["ClientConfig", "ConfigError", "create_app", "load_config", "load_config_file"]
