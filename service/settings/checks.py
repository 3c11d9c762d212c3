"""Small reusable checks for the settings builders: URLs, origins, files, GUIDs, numbers.

Each check appends problems of the form "<key path>: <what is wrong>" to a shared `Checks`
object and never raises, so one load reports every problem at once. Messages never quote a
value that could be a secret.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Checks:
    base_dir: Path
    problems: list[str] = field(default_factory=list)
    sources: Mapping[str, str] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def file(self, path: str, value: str) -> str:
        """A named file: resolved against the config folder; must exist. "" stays ""."""
        if not value:
            return ""
        resolved = Path(value).expanduser()
        if not resolved.is_absolute():
            resolved = self.base_dir / resolved
        resolved = resolved.absolute()
        if not resolved.is_file():
            self.add(path, f"file not found: {resolved}")
        return str(resolved)

    def directory(self, value: str) -> Path:
        resolved = Path(value).expanduser()
        return (resolved if resolved.is_absolute() else self.base_dir / resolved).absolute()

    def at_least(self, path: str, value: int, low: int, high: int | None = None) -> None:
        if value < low or (high is not None and value > high):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.add(path, f"must be {span} (got {value})")

    def guid(self, path: str, value: str) -> None:
        if not GUID.match(value):
            self.add(path, "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")

    def url(self, path: str, value: str, *, what: str = "URL", origin_only: bool = False,
            allow_path: bool = True) -> None:
        """An absolute https URL (http only for 127.0.0.1/localhost)."""
        problem = url_problem(value, origin_only=origin_only, allow_path=allow_path)
        if problem:
            self.add(path, f"{what} {problem}")

    def base64(self, path: str, value: str) -> None:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.add(path, "must be valid base64")

    def strings_nonblank(self, path: str, values: tuple[str, ...] | list[str]) -> None:
        if any(not v.strip() for v in values):
            self.add(path, "entries must be non-empty strings")


def is_local(host: str | None) -> bool:
    return (host or "").lower() in LOCAL_HOSTS


def url_problem(value: str, *, origin_only: bool = False, allow_path: bool = True,
                allow_http: bool = False) -> str:
    """Why `value` is not an acceptable URL, or "" when it is."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.scheme == "http" and not (allow_http or is_local(parts.hostname)):
        return "must use https (http only for 127.0.0.1/localhost)"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return "must not have a query or fragment"
    if origin_only and parts.path not in ("", "/"):
        return "must be scheme://host[:port] only, without a path"
    if not allow_path and parts.path not in ("", "/"):
        return "must not have a path"
    return ""


def origin_problem(value: str) -> str:
    """CORS: an exact origin `scheme://host[:port]`: no path, no trailing slash, no wildcard."""
    if "*" in value:
        return "wildcards are not allowed; list exact origins"
    problem = url_problem(value, origin_only=True, allow_http=True)
    if problem:
        return problem
    if value.endswith("/"):
        return "must not end with '/' (an origin has no path)"
    return ""


def resource_of(scope: str) -> str:
    """The resource part of a scope: everything before the last '/' ("" for short names)."""
    return scope.rsplit("/", 1)[0] if "/" in scope else ""
