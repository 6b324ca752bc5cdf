"""`python -m devstack.hbase_gateway --port 9090 --data-dir DIR`: the gateway on its own, without payment_platform."""
from __future__ import annotations

import argparse
import sys

from devstack.hbase_gateway.cli import DESCRIPTION, add_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.hbase_gateway", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
