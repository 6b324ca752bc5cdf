"""Subcommands of this room (registered by payment_platform.cli): `payment-platform status`."""
from __future__ import annotations

import json
import sys
import time

from payment_platform.errors import UsageError


def register(subparsers) -> None:
    """Adds this room's subcommands; each sets `func=handler` where handler(args) -> exit status."""
    parser = subparsers.add_parser(
        "status", help="health of every service, Kafka lag, processing time, rate, errors, backup and quarantine",
        description="Prints each service's health and the live figures of the pipeline (services from the "
                    "environment: KAFKA_BOOTSTRAP_SERVERS, POSTGRES_DSN, HBASE_HOST/HBASE_PORT, MONGO_URI, "
                    "REDIS_URL; `payment-platform stack env` prints them for the embedded stack).")
    parser.add_argument("--watch", nargs="?", const="2", default=None, metavar="SECONDS",
                        help="refresh every SECONDS (default 2) until Ctrl+C")
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON (one object per refresh)")
    parser.add_argument("--timeout", default="3", metavar="SECONDS",
                        help="bound on each service probe (default 3)")
    parser.add_argument("--backup-dir", default=None,
                        help="the local failed-payment folder (default: as the backup resource: $FAILED_PAYMENTS_DIR, "
                             "else failed_payments/ in $PAYMENT_PLATFORM_DATA_DIR, else ./failed_payments)")
    parser.add_argument("--count", default=None, metavar="N", help="with --watch: stop after N refreshes")
    parser.set_defaults(func=status)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--watch: not a number of seconds: {text!r}") from None
    if not 0.2 <= value <= 3600:
        raise UsageError(f"--watch: refresh interval must be between 0.2 and 3600 seconds, got {text}")
    return value


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--timeout: not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 60:
        raise UsageError(f"--timeout: must be between 0.1 and 60 seconds, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--count: not an integer: {text!r}") from None
    if value < 1:
        raise UsageError(f"--count: must be >= 1, got {value}")
    return value


def status(args) -> int:
    from payment_platform.config import endpoints_from_env
    from payment_platform.monitoring.snapshot import Probes, collect, render

    watch = _interval(args.watch) if args.watch is not None else None
    timeout = _timeout(args.timeout)
    count = _count(args.count) if args.count is not None else None
    endpoints = endpoints_from_env()  # ConfigError names a malformed setting (exit 2)
    from payment_platform.stores.backup import default_fallback_dir

    probes = Probes.from_endpoints(endpoints, backup_dir=args.backup_dir or str(default_fallback_dir()),
                                   timeout_s=timeout)
    refreshes = 0
    try:
        while True:
            snapshot = collect(probes)
            if args.json:
                print(json.dumps(snapshot.as_dict(), default=str), flush=True)
            else:
                if watch and sys.stdout.isatty():
                    print("\033[2J\033[H", end="")
                print(render(snapshot), flush=True)
                if watch:
                    print(f"\n(refreshing every {watch:g} s; Ctrl+C to stop)", flush=True)
            refreshes += 1
            if not watch or (count is not None and refreshes >= count):
                return 0 if snapshot.healthy else 1
            time.sleep(watch)
    finally:
        probes.close()
