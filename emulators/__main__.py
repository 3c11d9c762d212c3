"""`python -m emulators entra|acs [--port P] [--host H] [--pki DIR]` — TEST ONLY."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("entra", "acs"):
        print("usage: python -m emulators entra|acs [--host H] [--port P] [--pki DIR]", file=sys.stderr)
        return 2
    which, rest = args[0], args[1:]
    if which == "entra":
        from .entra.cli import main as run
    else:
        from .acs.cli import main as run
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
