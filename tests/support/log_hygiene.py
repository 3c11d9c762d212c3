"""A session-wide log-hygiene check (a pytest plugin, registered in tests/conftest.py).

Every line the test session captures — each test's captured stdout/stderr and log records
(every phase, passed or failed), and every line a `tokenbroker serve` child printed
(tests/support/serve_process.py calls `observe`) — is scanned for:

- a JWT-shaped string (`eyJ….eyJ….`): a token presented to or issued by the broker;
- a configured secret: every module-level `*_SECRET`, `SECRETS`, `*_ACCESS_KEY` constant of the
  loaded test, emulator and dev-stack modules (the test configs' client and HMAC secrets, the
  emulators' app secrets and ACS dev key, the demo portal secret), and what `register(value)`
  adds (e.g. the ACS fixture's key and connection string).

Any hit fails the session (exit status 1) with the test id and the kind of leak — never the
secret itself.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

import pytest

JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
MIN_SECRET = 16            # shorter configured values are not distinctive enough to scan for

_registered: dict[str, str] = {}
_leaks: list[tuple[str, str, str]] = []    # (where, what, section)


def register(value: str, name: str = "registered secret") -> None:
    if value and len(value) >= MIN_SECRET:
        _registered[value] = name


_cache: tuple[tuple[int, int], dict[str, str]] | None = None


def _configured() -> dict[str, str]:
    """The secrets the test configs and emulators use, by name (recomputed when modules load)."""
    global _cache
    stamp = (len(sys.modules), len(_registered))
    if _cache is None or _cache[0] != stamp:
        _cache = (stamp, _collect())
    return _cache[1]


def _collect() -> dict[str, str]:
    found = _declared()
    found.update({name: value for value, name in _registered.items()})
    return {name: value for name, value in found.items() if value and len(value) >= MIN_SECRET}


_SECRET_NAME = re.compile(r"^(?!MIN_)[A-Z_]*(SECRETS?|SECRET_OF|ACCESS_KEY)$")
_SECRET_MODULES = ("tests.", "emulators.", "service.devstack")


def _declared() -> dict[str, str]:
    """Every module-level `*_SECRET`, `SECRETS`, `*_ACCESS_KEY` constant of the test, emulator and
    dev-stack modules loaded in this session (strings, or the string values of a dict or list);
    nothing is imported here, so a session that failed to import still finishes cleanly."""
    found: dict[str, str] = {}
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith(_SECRET_MODULES) or module is None:
            continue
        for attr, value in vars(module).items():
            if not _SECRET_NAME.match(attr):
                continue
            values = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
            for n, item in enumerate(values):
                if isinstance(item, str) and len(item) >= MIN_SECRET and not item.startswith("sha256:"):
                    found[f"{module_name}.{attr}[{n}]"] = item
    return found


def scan(text: str, where: str, section: str, secrets: dict[str, str] | None = None) -> None:
    if not text:
        return
    if JWT_SHAPED.search(text):
        _leaks.append((where, "a JWT-shaped string", section))
    for name, value in (secrets if secrets is not None else _configured()).items():
        if value in text:
            _leaks.append((where, name, section))


def observe(line: str, where: str = "tokenbroker serve") -> None:
    """A line printed by a process the tests started (scanned at the end of the session)."""
    _pending.append((line, where))


_pending: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    secrets = _configured()
    for section, text in report.sections:
        scan(text, report.nodeid, f"{report.when}: {section}", secrets)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    secrets = _configured()
    for line, where in _pending:
        scan(line, where, "process output", secrets)
    _pending.clear()
    if _leaks and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _leaks:
        return
    terminalreporter.section("log hygiene: tokens or secrets in captured logs", sep="=", red=True)
    for (where, what), section in _first(_leaks).items():
        terminalreporter.line(f"LEAK {what} in {where} ({section})", red=True)


def _first(items: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
    """One line per (place, kind of leak): the first section it was seen in."""
    first: dict[tuple[str, str], str] = {}
    for where, what, section in items:
        first.setdefault((where, what), section)
    return first
