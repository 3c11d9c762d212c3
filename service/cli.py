"""`tokenbroker` — serve | dev | check-config | emulate | keys rotate | explain | accounts.

Exit codes: 0 success, 2 invalid configuration or arguments (before anything binds),
1 a runtime failure at startup.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import ConfigurationError
from .settings import Settings


def _config_path(args: argparse.Namespace) -> Path | None:
    value = getattr(args, "config", None) or os.environ.get("TOKENBROKER_CONFIG")
    return Path(value) if value else None


def load_from_args(args: argparse.Namespace, flags: dict[str, object] | None = None) -> Settings:
    """Settings from --config/TOKENBROKER_CONFIG + environment + flags; exit 2 when invalid."""
    from .settings import load_settings, load_settings_file

    path = _config_path(args)
    try:
        if path is None:
            return load_settings("", os.environ, base_dir=Path.cwd(), flags=flags or {})
        if not path.is_file():
            raise ConfigurationError([f"config: file not found: {path}"])
        return load_settings_file(path, os.environ, flags=flags or {})
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    load_from_args(args)
    print("ok")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import SharedListener, serve

    flags: dict = {}
    if args.host is not None:
        flags["server.host"] = args.host
    if args.port is not None:
        flags["server.port"] = args.port
    settings = load_from_args(args, flags)
    shared = None
    if args.listen_fd is not None:   # a worker of `serve --workers N`
        shared = SharedListener(args.listen_fd, args.balance_fd, args.worker_index, args.worker_count)
    return serve(settings, workers=args.workers, reuse_port=args.reuse_port, config=_config_path(args),
                 shared=shared)


def cmd_emulate(args: argparse.Namespace) -> int:
    try:
        from emulators.__main__ import main as emulate_main  # dev/test only, imported lazily
    except ImportError:
        print("emulators are not installed in this image (dev only)", file=sys.stderr)
        return 1
    argv = [args.which]
    if args.host:
        argv += ["--host", args.host]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    if args.pki:
        argv += ["--pki", args.pki]
    return emulate_main(argv + list(args.extra))


def cmd_dev(args: argparse.Namespace) -> int:
    from .devstack import run_dev

    try:
        import emulators  # noqa: F401  dev/test only: absent from the production image
        import minimal_client  # noqa: F401
    except ImportError:
        print("emulators are not installed in this image (dev only)", file=sys.stderr)
        return 1
    return run_dev(base_port=args.port, state_dir=Path(args.state_dir), trace=args.trace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenbroker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the broker (production)")
    p.add_argument("--config", help="TOML file (default: $TOKENBROKER_CONFIG)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1,
                   help="processes accepting from one shared socket, each new connection going to "
                        "the worker with the fewest open connections")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--listen-fd", "--balance-fd", "--worker-index", "--worker-count"):   # parent -> worker
        p.add_argument(hidden, type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("--config")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("dev", help="the embedded demo stack: emulators, broker, minimal client")
    p.add_argument("--port", type=int, default=8400, help="base port (default 8400)")
    p.add_argument("--state-dir", default=".dev", help="dev state folder (default .dev)")
    p.add_argument("--trace", action="store_true",
                   help="print each broker request's span tree (OpenTelemetry) to the console")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("emulate", help="run one emulator alone (TEST ONLY)")
    p.add_argument("which", choices=["entra", "acs"])
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--pki")
    p.add_argument("extra", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_emulate)

    from .cli_admin import add_admin_commands

    add_admin_commands(sub, load_from_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on bad usage
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
