"""`python -m emulators entra [--host H] [--port P] [--pki DIR] [--seed FILE] [--token-lifetime S]
[--lifetime-seed N]` — TEST ONLY. The signing key is kept in DIR, so its `kid` survives restarts.

Prints one JSON line `{"event": "server.started", "port", "url", "ca_bundle", "tenant_id"}`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .._common import run_forever
from .app import create_app, tenant_id_of
from .state import EntraConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emulate entra", description="Entra ID emulator (TEST ONLY)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pki", default=None, help="CA/server certificate directory (created if missing)")
    parser.add_argument("--seed", default=None, help="seed JSON (default: the demo seed)")
    parser.add_argument("--token-lifetime", type=int, default=None,
                        help="fixed access-token lifetime in seconds (default: 60-90 minutes, like Entra)")
    parser.add_argument("--lifetime-seed", type=int, default=None, help="seed of the lifetime variation")
    args = parser.parse_args(argv)
    pki_dir = Path(args.pki) if args.pki else Path(tempfile.mkdtemp(prefix="entra-emulator-"))

    def make_app(base_url: str):
        return create_app(EntraConfig(base_url=base_url, seed=args.seed,
                                      keys_path=pki_dir / "entra-signing.key",
                                      access_token_lifetime=args.token_lifetime,
                                      lifetime_seed=args.lifetime_seed,
                                      ca_bundle=str(pki_dir / "ca.pem")))

    return run_forever(make_app, name="entra", host=args.host, port=args.port, pki_dir=pki_dir,
                       extra=lambda app: {"tenant_id": tenant_id_of(app)})
