"""`tokenbroker accounts`: local accounts and their links, on the configured store.

    tokenbroker accounts --config FILE list
    tokenbroker accounts --config FILE create --attr email=a@b.example [--attr name=Alice ...]
    tokenbroker accounts --config FILE link ACCOUNT_ID --issuer NAME --subject SUB
    tokenbroker accounts --config FILE unlink --issuer NAME --subject SUB
    tokenbroker accounts --config FILE show ACCOUNT_ID

`NAME` is a `[[trusted_issuers]]` name or `entra`; for `entra`, `SUB` is `<tid>/<oid>`.
Results are JSON lines on stdout; audit events (`account.created`, `account.linked`,
`account.unlinked`) and errors are JSON lines on stderr. Exit 0 on success, 2 on bad input
(unknown account or issuer, a malformed attribute, a link or attribute held by another
account, a `memory://` store — which a separate process can never see).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .cli_admin import LoadSettings, Subcommands

if TYPE_CHECKING:
    from .grants.linking import Account, Accounts
    from .settings import Settings

_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ENTRA_SUBJECT = re.compile(rf"^{_GUID}/{_GUID}$")


class BadInput(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_accounts_command(sub: Subcommands, load_from_args: LoadSettings) -> None:
    p = sub.add_parser("accounts", help="local accounts and their links (account linking)")
    p.add_argument("--config")
    acc = p.add_subparsers(dest="accounts_command", required=True)
    acc.add_parser("list", help="every account, one JSON line each")
    c = acc.add_parser("create", help="a new account with attributes")
    c.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE")
    s = acc.add_parser("show", help="one account")
    s.add_argument("account_id")
    li = acc.add_parser("link", help="link an external identity to an account")
    li.add_argument("account_id")
    u = acc.add_parser("unlink", help="remove the link of an external identity")
    for q in (li, u):
        q.add_argument("--issuer", required=True, help="trusted issuer name or 'entra'")
        q.add_argument("--subject", required=True, help="external sub; '<tid>/<oid>' for entra")
    for q in (acc.choices.values()):
        q.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=lambda args: run_accounts(args, load_from_args))


def _emit(value: dict[str, Any], stream: TextIO | None = None) -> None:
    print(json.dumps(value, ensure_ascii=False, sort_keys=True), file=stream or sys.stdout, flush=True)


def run_accounts(args: argparse.Namespace, load_from_args: LoadSettings) -> int:
    from .logs import configure_logging

    settings = load_from_args(args)
    configure_logging(json=True, stream=sys.stderr)
    try:
        if settings.store.url.lower().startswith("memory:"):
            raise BadInput("memory_store", "store.url is memory://: accounts would vanish with this process; "
                                           "configure sqlite:///... or redis://... (the broker's own store)")
        return asyncio.run(_run(args, settings))
    except BadInput as e:
        _emit({"error": e.code, "message": str(e)}, sys.stderr)
        return 2


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from .grants.linking import Accounts
    from .storage import open_store

    base = settings.config_path.parent if settings.config_path else Path.cwd()
    store = open_store(settings.store.url, base_dir=base)
    try:
        if not await store.ping():
            raise BadInput("store_unavailable", "store.url: the store does not answer")
        return await _command(args, settings, Accounts(store))
    finally:
        await store.close()


async def _command(args: argparse.Namespace, settings: Settings, accounts: Accounts) -> int:
    from .grants.linking import AccountConflict, link_event
    from .logs import audit

    cmd = args.accounts_command
    if cmd == "list":
        for account in await accounts.list():
            _emit(account.as_json())
        return 0
    if cmd == "create":
        try:
            account = await accounts.create(_attributes(args.attr))
        except AccountConflict as e:
            raise BadInput("conflict", str(e)) from None
        audit("account.created", account=account.id, method="cli")
        _emit(account.as_json())
        return 0
    if cmd == "show":
        _emit((await _account(accounts, args.account_id)).as_json())
        return 0
    issuer, subject = _identity(settings, args.issuer, args.subject)
    if cmd == "link":
        await _account(accounts, args.account_id)
        holder = await accounts.link(args.account_id, issuer, subject)
        if holder != args.account_id:
            raise BadInput("conflict", f"{issuer} subject is already linked to account {holder}; unlink it first")
        event, fields = link_event("account.linked", holder, issuer, subject, method="cli")
        audit(event, **fields)
        _emit((await _account(accounts, holder)).as_json())
        return 0
    account_id = await accounts.unlink(issuer, subject)
    if account_id is None:
        raise BadInput("not_linked", f"no link for that {issuer} subject")
    event, fields = link_event("account.unlinked", account_id, issuer, subject, method="cli")
    audit(event, **fields)
    _emit({"account": account_id, "issuer": issuer, "subject": subject, "unlinked": True})
    return 0


async def _account(accounts: Accounts, account_id: str) -> Account:
    account = await accounts.get(account_id) if account_id.strip() else None
    if account is None:
        raise BadInput("unknown_account", f"no account {account_id[:80]!r}")
    return account


def _attributes(items: list[str]) -> dict[str, str]:
    if not items:
        raise BadInput("bad_attribute", "create needs at least one --attr NAME=VALUE")
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _ATTR_NAME.match(name) or not value.strip():
            raise BadInput("bad_attribute", f"--attr {item[:80]!r}: expected NAME=VALUE (NAME: letters, "
                                            "digits, _ . -; VALUE non-empty)")
        if name in out:
            raise BadInput("bad_attribute", f"--attr {name} given twice")
        out[name] = value.strip()
    return out


def _identity(settings: Settings, issuer: str, subject: str) -> tuple[str, str]:
    names = {t.name for t in settings.trusted_issuers} | ({"entra"} if settings.entra is not None else set())
    if issuer not in names:
        raise BadInput("unknown_issuer", f"--issuer {issuer[:80]!r} is not a trusted issuer name"
                                         + (" or 'entra'" if settings.entra is not None else ""))
    if not subject.strip():
        raise BadInput("bad_subject", "--subject must not be empty")
    if issuer == "entra":
        if not _ENTRA_SUBJECT.match(subject):
            raise BadInput("bad_subject", "--subject for entra is '<tid>/<oid>' (two GUIDs)")
        subject = subject.lower()
    return issuer, subject


__all__ = ["add_accounts_command", "run_accounts"]
