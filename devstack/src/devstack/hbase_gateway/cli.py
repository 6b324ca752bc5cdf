"""`payment-platform hbase-gateway` (registered through the entry point group `payment_platform.commands`,
devstack/pyproject.toml), and `python -m devstack.hbase_gateway` for the gateway on its own."""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = ("Embedded HBase: a Thrift1 server happybase cannot tell apart from HBase's own, "
               "storing tables in DATA_DIR. Serves until SIGTERM/SIGINT.")


def register(subparsers) -> None:
    """Adds this room's subcommands; each sets `func=handler` where handler(args) -> exit status."""
    parser = subparsers.add_parser(
        "hbase-gateway",
        help="serve HBase's Thrift1 API (what happybase speaks) over a durable local store",
        description=DESCRIPTION,
    )
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", required=True, help="TCP port to listen on (HBase's default is 9090)")
    parser.add_argument("--data-dir", required=True, help="folder holding the store (created if missing)")
    parser.add_argument("--framed", action="store_true", help="framed transport (default: buffered)")
    parser.add_argument("--compact", action="store_true", help="compact protocol (default: binary)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    # Imported here: other subcommands must not pay for Thrift and SQLite at start-up.
    from devstack.hbase_gateway.server import UsageError, run

    try:
        return run(args.host, args.port, args.data_dir, args.framed, args.compact)
    except UsageError as error:
        print(f"hbase-gateway: error: {error}", file=sys.stderr)
        return 2
