"""`tokenbroker accounts` as operators run it: a real child process on a SQLite file or Redis,
JSON lines out, audit events on stderr, exit 2 on every kind of bad input."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path

import pytest

from service.grants.linking import Accounts
from service.storage import open_store
from tests.support.store_keys import STORE_KEY_LINE

ROOT = Path(__file__).resolve().parents[1]
TENANT = "32f56351-9165-4d79-9c8b-af73271abdc0"
OID = "7534753f-9276-449b-9488-06090584adce"


def config_toml(store_url: str) -> str:
    return f"""
[store]
url = "{store_url}"
{STORE_KEY_LINE}

[entra]
tenant_id = "{TENANT}"
client_id = "broker"

[[trusted_issuers]]
name = "partner"
issuer = "https://partner.example"
secret = "partner-hmac-secret-of-at-least-32-bytes!"
audiences = ["https://broker.example"]
algorithms = ["HS256"]
"""


class Cli:
    def __init__(self, config: Path) -> None:
        self.config = config

    async def raw(self, *args: str) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", "accounts", "--config", str(self.config), *args, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out, err

    async def __call__(self, *args: str) -> tuple[int, list[dict], list[dict]]:
        rc, out, err = await self.raw(*args)
        lines = lambda b: [json.loads(x) for x in b.decode().splitlines() if x.strip()]  # noqa: E731
        return rc, lines(out), lines(err)


@pytest.fixture(name="cli")
def _cli(tmp_path) -> Cli:
    path = tmp_path / "broker.toml"
    path.write_text(config_toml("sqlite:///state.db"))
    return Cli(path)


async def test_create_link_show_list_and_unlink_on_a_sqlite_store(cli, tmp_path):
    rc, out, err = await cli("create", "--attr", "email=ann@x.example", "--attr", "name=Ann")
    assert rc == 0 and out[0]["attributes"] == {"email": "ann@x.example", "name": "Ann"}
    account = out[0]["id"]
    assert [e["event"] for e in err if e.get("audit")] == ["account.created"]

    rc, out, err = await cli("link", account, "--issuer", "partner", "--subject", "ann-ext")
    assert rc == 0 and out[0]["links"] == [{"issuer": "partner", "subject": "ann-ext"}]
    linked = [e for e in err if e.get("event") == "account.linked"]
    assert linked and linked[0]["account"] == account and linked[0]["subject"] != "ann-ext"   # hashed

    rc, out, _ = await cli("link", account, "--issuer", "entra", "--subject", f"{TENANT}/{OID}".upper())
    assert rc == 0 and {"issuer": "entra", "subject": f"{TENANT}/{OID}"} in out[0]["links"]

    rc, out, _ = await cli("show", account)
    assert rc == 0 and out[0]["id"] == account and len(out[0]["links"]) == 2
    rc, out, _ = await cli("list")
    assert rc == 0 and [a["id"] for a in out] == [account]

    rc, out, err = await cli("unlink", "--issuer", "partner", "--subject", "ann-ext")
    assert rc == 0 and out == [{"account": account, "issuer": "partner", "subject": "ann-ext", "unlinked": True}]
    assert [e["event"] for e in err if e.get("audit")] == ["account.unlinked"]

    store = open_store(f"sqlite:///{tmp_path}/state.db")      # the same file the broker would read
    try:
        assert await Accounts(store).linked("entra", f"{TENANT}/{OID}") == account
        assert await Accounts(store).linked("partner", "ann-ext") is None
    finally:
        await store.close()


async def test_a_link_held_by_another_account_is_refused(cli):
    _, a, _ = await cli("create", "--attr", "name=A")
    _, b, _ = await cli("create", "--attr", "name=B")
    assert (await cli("link", a[0]["id"], "--issuer", "partner", "--subject", "s"))[0] == 0
    rc, out, err = await cli("link", b[0]["id"], "--issuer", "partner", "--subject", "s")
    assert rc == 2 and out == [] and err[-1]["error"] == "conflict"


@pytest.mark.parametrize(("args", "error"), [
    (("create",), "bad_attribute"),
    (("create", "--attr", "email"), "bad_attribute"),
    (("create", "--attr", "=x"), "bad_attribute"),
    (("create", "--attr", "a=1", "--attr", "a=2"), "bad_attribute"),
    (("show", "no-such-account"), "unknown_account"),
    (("link", "no-such-account", "--issuer", "partner", "--subject", "s"), "unknown_account"),
    (("link", "x", "--issuer", "ghost", "--subject", "s"), "unknown_issuer"),
    (("link", "x", "--issuer", "entra", "--subject", "alice@contoso.example"), "bad_subject"),
    (("unlink", "--issuer", "partner", "--subject", "never-linked"), "not_linked"),
])
async def test_bad_input_exits_2_with_a_json_error(cli, args, error):
    rc, out, err = await cli(*args)
    assert rc == 2 and out == [] and err[-1]["error"] == error


async def test_a_second_account_with_a_taken_attribute_value_is_refused(cli):
    assert (await cli("create", "--attr", "email=dup@x.example"))[0] == 0
    rc, _, err = await cli("create", "--attr", "email=DUP@x.example")
    assert rc == 2 and err[-1]["error"] == "conflict"
    assert len((await cli("list"))[1]) == 1


async def test_a_memory_store_is_refused(tmp_path):
    path = tmp_path / "memory.toml"
    path.write_text(config_toml("memory://"))
    rc, out, err = await Cli(path)("list")
    assert rc == 2 and out == [] and err[-1]["error"] == "memory_store"


async def test_usage_errors_and_invalid_configuration_exit_2(tmp_path, cli):
    rc, out, err = await cli.raw("frobnicate")
    assert rc == 2 and out == b"" and b"usage:" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[store]\nurl = "sqlite:///state.db"\nunknown = 1\n')
    rc, out, err = await Cli(bad).raw("list")
    assert rc == 2 and out == b"" and b"store.unknown" in err


async def test_accounts_live_in_redis_too(tmp_path):
    prefix = f"tbtest-accounts-{secrets.token_hex(4)}:"
    url = f"redis://127.0.0.1:6379/11?prefix={prefix}"
    path = tmp_path / "redis.toml"
    path.write_text(config_toml(url))
    cli = Cli(path)
    store = open_store(url)
    try:
        rc, out, _ = await cli("create", "--attr", "name=Rita")
        assert rc == 0
        assert (await cli("link", out[0]["id"], "--issuer", "partner", "--subject", "rita"))[0] == 0
        assert await Accounts(store).linked("partner", "rita") == out[0]["id"]
    finally:
        for ns in ("account:", "link:", "attr:"):
            for key, _ in await store.scan(ns):
                await store.delete(key)
        await store.close()
