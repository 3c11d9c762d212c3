"""Operator commands: `keys rotate`, `explain`, `accounts` (filled in by their features)."""

from __future__ import annotations

import argparse


def add_admin_commands(sub, load_from_args) -> None:
    keys = sub.add_parser("keys", help="signing keys of our own tokens")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    p = keys_sub.add_parser("rotate", help="add a next key (published now, signing after the delay)")
    p.add_argument("--config")
    p.set_defaults(func=lambda args: _keys_rotate(args, load_from_args))
    from .cli_explain import add_explain_command
    add_explain_command(sub, load_from_args)
    from .cli_accounts import add_accounts_command
    add_accounts_command(sub, load_from_args)


def _keys_rotate(args: argparse.Namespace, load_from_args) -> int:
    import time

    from .issuing.keyring import rotate_keys

    settings = load_from_args(args)
    iss = settings.issuer
    max_ttl = max([iss.access_token_ttl, *[c.access_token_ttl for c in settings.clients]])
    kid = rotate_keys(iss.keys_dir, iss.signing_alg, now=time.time(),
                      activation_delay=iss.key_activation_delay, max_token_ttl=max_ttl)
    print(kid)
    return 0
