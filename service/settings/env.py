"""Environment and command-line overrides, laid over the parsed TOML document.

Grammar (CONTRACT §2):

    TOKENBROKER_<SECTION>__<KEY>                     [server] port   -> TOKENBROKER_SERVER__PORT
    TOKENBROKER_OBO__<NAME>__<KEY>                   [obo.<name>]    (created when absent)
    TOKENBROKER_<ARRAY>__<ENTRY NAME>__<KEY>         [[clients]] by client_id, [[trusted_issuers]] by name

Entry names are compared after upper-casing and turning every character other than A-Z/0-9
into `_` (client "my-app.v2" is `MY_APP_V2`). Values are TOML literals when they parse as one,
else plain strings. `TOKENBROKER_CONFIG` is the config path and is not a setting.

Flags are dotted paths (`server.port`, `clients.portal.client_secret`) with ready values;
`None` means "not given". Precedence: flags > environment > file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from .schema import ARRAYS, NAMED_TABLES, SCHEMA, entry_path, parse_env_value

PREFIX = "TOKENBROKER_"
CONFIG_VARIABLE = "TOKENBROKER_CONFIG"


def env_name(name: str) -> str:
    """The form an entry name takes inside a variable name: `my-app` -> `MY_APP`."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def apply_overrides(raw: dict[str, Any], environ: Mapping[str, str], flags: Mapping[str, object],
                    problems: list[str]) -> dict[str, str]:
    """Apply env then flags onto `raw` in place; returns {key path: where the value came from}."""
    sources: dict[str, str] = {}
    for var in sorted(environ):
        if not var.startswith(PREFIX) or var == CONFIG_VARIABLE:
            continue
        parts = var[len(PREFIX):].split("__")
        text = environ[var]
        _apply(raw, parts, partial(parse_env_value, text=text), var, sources, problems, env=True)
    for key in sorted(flags):
        value = flags[key]
        if value is None:
            continue
        _apply(raw, key.split("."), partial(_given, value), key, sources, problems, env=False)
    return sources


def _given(value: object, kind: str) -> object:
    """A flag's value is ready-made, whatever the key's kind."""
    return value


def _apply(raw: dict[str, Any], parts: list[str], value_of: Callable[[str], Any], label: str,
           sources: dict[str, str], problems: list[str], *, env: bool) -> None:
    section = parts[0].lower()
    dotted = ".".join(p.lower() if env else p for p in parts)

    def unknown() -> None:
        if env:
            problems.append(f"{label}: unknown setting {dotted}")
        else:
            problems.append(f"{label}: unknown setting (command-line flag)")

    schema = SCHEMA.get(section)
    if schema is None or not all(parts):
        return unknown()
    key = parts[-1].lower()
    if key not in schema:
        return unknown()
    kind = schema[key][0]

    if section in ARRAYS:
        if len(parts) < 3:
            return unknown()
        name = "__".join(parts[1:-1]) if env else ".".join(parts[1:-1])
        entries = raw.get(section)
        entries = entries if isinstance(entries, list) else []
        found = _find_entries(entries, ARRAYS[section], name, exact=not env)
        if len(found) != 1:
            why = "matches several" if found else "names no"
            problems.append(f"{label}: {why} [[{section}]] entry ({ARRAYS[section]} {name!r})")
            return None
        index = found[0]
        target = entries[index]
        path = f"{entry_path(section, target, index)}.{key}"
    elif section in NAMED_TABLES:
        if len(parts) != 3:
            return unknown()
        tables = raw.setdefault(section, {})
        if not isinstance(tables, dict):
            return None      # the file's own shape error is reported by the builder
        name = _match_table(tables, parts[1]) if env else parts[1]
        target = tables.setdefault(name, {})
        if not isinstance(target, dict):
            return None
        path = f"{section}.{name}.{key}"
    else:
        if len(parts) != 2:
            return unknown()
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            return None
        path = f"{section}.{key}"

    target[key] = value_of(kind)
    sources[path] = label
    return None


def _find_entries(entries: list[Any], name_key: str, name: str, *, exact: bool) -> list[int]:
    names = [e.get(name_key) if isinstance(e, dict) else None for e in entries]
    if exact:
        hits = [i for i, n in enumerate(names) if n == name]
        if hits:
            return hits
    wanted = env_name(name)
    return [i for i, n in enumerate(names) if isinstance(n, str) and n and env_name(n) == wanted]


def _match_table(tables: dict[str, Any], name: str) -> str:
    """An existing [obo.<name>] whose env form matches, else the lower-cased name (created)."""
    for existing in tables:
        if env_name(existing) == env_name(name):
            return existing
    return name.lower()
