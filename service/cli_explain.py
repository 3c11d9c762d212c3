"""`tokenbroker explain`: print which policy rule allows or denies a token request.

    tokenbroker explain --config FILE --client ID --issuer NAME --audience A [--audience B]
                        [--scope "a b"] [--subject-scopes "x y"] [--grant-type G] [--json]

Exit 0 when the request was evaluated (allowed or denied: the decision is the output), 2 on
bad input (invalid configuration, unknown client or issuer, malformed scope, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli_admin import LoadSettings, Subcommands
from .grants.base import TOKEN_EXCHANGE


def add_explain_command(sub: Subcommands, load_from_args: LoadSettings) -> None:
    p = sub.add_parser("explain", help="which policy rule allows or denies a token request",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="TOML file (default: $TOKENBROKER_CONFIG)")
    p.add_argument("--client", required=True, help="the requesting client's client_id")
    p.add_argument("--issuer", required=True, help='the subject token\'s issuer: "entra", "self" or a '
                                                  "[[trusted_issuers]] name")
    p.add_argument("--audience", action="append", required=True, help="a requested audience/resource "
                                                                      "(repeatable), e.g. acs:teams")
    p.add_argument("--scope", help="the requested scope parameter, space-separated")
    p.add_argument("--subject-scopes", help="the subject token's scp/scope (translated through the "
                                            "issuer's scope_map); without it the subject rule is skipped")
    p.add_argument("--grant-type", default=TOKEN_EXCHANGE, help="token-exchange (default) or refresh_token")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=lambda args: _explain(args, load_from_args))


def _explain(args: argparse.Namespace, load_from_args: LoadSettings) -> int:
    from .grants.explain import ExplainInputError, explain

    settings = load_from_args(args)          # exit 2 (with every problem) when invalid
    try:
        result = explain(settings, client_id=args.client, issuer=args.issuer, audiences=args.audience,
                         scope=args.scope, subject_scopes=args.subject_scopes, grant_type=args.grant_type)
    except ExplainInputError as e:
        print(f"explain: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.as_text())
    return 0
