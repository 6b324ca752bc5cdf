"""Subcommands of this room (registered by payment_platform.cli): `payment-platform status`."""
from __future__ import annotations

import json
import sys
import time



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


def status(args) -> int:
    from payment_platform.config import endpoints_from_env, parse_number
    from payment_platform.monitoring.snapshot import Probes, collect, render

    watch = parse_number("--watch", args.watch, 0.2, 3600, what="refresh interval ") if args.watch is not None else None
    timeout = parse_number("--timeout", args.timeout, 0.1, 60)
    count = parse_number("--count", args.count, 1, kind=int) if args.count is not None else None
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
