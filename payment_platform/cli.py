"""The `payment-platform` command line. Each room of the package registers its own subcommands."""
from __future__ import annotations

import argparse
import importlib
import sys

from payment_platform import __version__
from payment_platform.config import ConfigError
from payment_platform.errors import UsageError

# Each module defines register(subparsers); a subcommand sets `func(args) -> int` as its handler.
COMMAND_MODULES = (
    "payment_platform.stack.cli",  # stack up/down/status/env, up
    "payment_platform.demo.cli",  # demo
    "payment_platform.hbase_gateway.cli",  # hbase-gateway
    "payment_platform.generation.cli",  # generate, produce
    "payment_platform.monitoring.cli",  # status
    "payment_platform.stack.scaling_cli",  # scaling
    "payment_platform.serving.cli",  # query, hbase, api
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payment-platform", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UsageError, ConfigError) as error:
        print(f"payment-platform {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
