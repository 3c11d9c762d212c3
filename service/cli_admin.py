"""Operator commands: `keys rotate`, `explain`, `accounts` (filled in by their features)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from .settings import Settings

#: `cli.load_from_args`: the settings of the command's --config (exits 2 when invalid)
LoadSettings = Callable[[argparse.Namespace], Settings]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_admin_commands(sub: Subcommands, load_from_args: LoadSettings) -> None:
    keys = sub.add_parser("keys", help="signing keys of our own tokens")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    p = keys_sub.add_parser("rotate", help="add a next key (published now, signing after the delay)")
    p.add_argument("--config")
    p.set_defaults(func=lambda args: _keys_rotate(args, load_from_args))
    from .cli_explain import add_explain_command
    add_explain_command(sub, load_from_args)
    from .cli_accounts import add_accounts_command
    add_accounts_command(sub, load_from_args)


def _keys_rotate(args: argparse.Namespace, load_from_args: LoadSettings) -> int:
    import time

    from .issuing.keyring import rotate_keys

    settings = load_from_args(args)
    iss = settings.issuer
    max_ttl = max([iss.access_token_ttl, *[c.access_token_ttl for c in settings.clients]])
    kid = rotate_keys(iss.keys_dir, iss.signing_alg, now=time.time(),
                      activation_delay=iss.key_activation_delay, max_token_ttl=max_ttl)
    print(kid)
    return 0
