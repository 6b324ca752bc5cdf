"""The `payment-platform` command line. Each room of the package registers its own subcommands; the local dev
stack (devstack/, a second distribution) adds its own through entry points when it is installed."""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from payment_platform import __version__
from payment_platform.config import ConfigError
from payment_platform.errors import UsageError

# Each module defines register(subparsers); a subcommand sets `func(args) -> int` as its handler.
COMMAND_MODULES = (
    "payment_platform.generation.cli",  # generate, produce
    "payment_platform.monitoring.cli",  # status
    "payment_platform.scaling.cli",  # scaling
    "payment_platform.serving.cli",  # query, hbase, api
)
# Other distributions add subcommands with an entry point in this group whose object is a register(subparsers).
COMMAND_GROUP = "payment_platform.commands"
# The local dev stack's subcommands (devstack/pyproject.toml): when it is not installed, each says how to get it.
DEV_STACK_COMMANDS = {
    "up": "the embedded stack plus dagster dev",
    "stack": "the embedded services: up, down, restart, status, gc, env",
    "demo": "the main flow, headless, on the embedded stack",
    "hbase-gateway": "serve HBase's Thrift1 API over a local store",
}
DEV_STACK_INSTALL = "pip install -e ./devstack (from the repository's root; `make install` does it)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payment-platform", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    failures = {}
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as error:  # a stale install (its folder removed): the product's commands still work
            failures[entry.name] = f"{entry.value}: {error}"
            continue
        register(subparsers)
    for name, summary in DEV_STACK_COMMANDS.items():
        if name not in subparsers.choices:
            _add_missing(subparsers, name, summary, "; ".join(failures.values()))
    return parser


def _add_missing(subparsers, name: str, summary: str, failure: str) -> None:
    """A stand-in for a dev-stack command that is not installed: any arguments, one clear line, exit 2."""
    message = f"`{name}` is part of the local dev stack: {DEV_STACK_INSTALL}"
    if failure:
        message += f" (its entry points did not load: {failure})"
    # no option characters: whatever follows the name (--data-dir, -h) is taken as is, never refused
    parser = subparsers.add_parser(name, help=f"{summary} (needs the local dev stack: devstack/)", add_help=False,
                                   prefix_chars="\0")
    parser.add_argument("args", nargs="*")

    def missing(_args) -> int:
        raise UsageError(message)

    parser.set_defaults(func=missing)


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
