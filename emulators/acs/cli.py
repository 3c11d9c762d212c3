"""`python -m emulators acs [--host H] [--port P] [--pki DIR] [--entra-url URL] [--access-key KEY]`.

TEST ONLY. Prints one JSON line `{"event": "server.started", "port", "url", "ca_bundle",
"access_key", "connection_string", "resource_id"}` once listening (CONTRACT §4).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
import tempfile

from .._common import run_forever
from ..pki import ensure_pki
from .app import create_app
from .keys import STATE
from .state import DEV_ACCESS_KEY, DEV_RESOURCE_ID, AcsConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emulators acs",
                                description="Azure Communication Services Identity emulator (TEST ONLY).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--pki", metavar="DIR", help="read/generate ca.pem, server.pem, server.key here")
    p.add_argument("--entra-url", metavar="URL", help="Entra emulator base URL (JWKS for bearer and Teams tokens)")
    p.add_argument("--entra-ca", metavar="PEM", help="CA bundle for the Entra emulator (default: the --pki CA)")
    p.add_argument("--access-key", default=DEV_ACCESS_KEY, help="base64 HMAC key (default: a fixed dev key)")
    p.add_argument("--resource-id", default=DEV_RESOURCE_ID)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        base64.b64decode(args.access_key, validate=True)
    except (binascii.Error, ValueError):
        print("--access-key must be base64", file=sys.stderr)
        return 2
    pki_dir = args.pki or tempfile.mkdtemp(prefix="acs-emulator-pki-")
    pki = ensure_pki(pki_dir)

    def make_app(base_url: str):
        return create_app(AcsConfig(base_url=base_url, access_key=args.access_key, entra_url=args.entra_url,
                                    ca_bundle=args.entra_ca or str(pki.ca_pem), resource_id=args.resource_id))

    def extra(app) -> dict:
        cfg = app[STATE].config
        return {"access_key": cfg.access_key, "connection_string": cfg.connection_string,
                "resource_id": cfg.resource_id}

    return run_forever(make_app, name="acs", host=args.host, port=args.port, pki_dir=pki_dir, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
