"""`payment-platform query ...`, `payment-platform hbase ...` and `payment-platform api` (registered by
payment_platform.cli). Services come from the environment, as for every command (`payment-platform stack env`)."""
from __future__ import annotations

import csv
import json
import sys

from payment_platform.errors import UsageError

FORMAT_HELP = "output: a table (default), --json or --csv"


def register(subparsers) -> None:
    query = subparsers.add_parser("query", help="look payments up: by id, by party or window, daily totals, "
                                                "quarantine, backup",
                                  description="Reads the payments from HBase (Postgres when HBase does not answer).")
    actions = query.add_subparsers(dest="query_command", metavar="ACTION", required=True)

    one = actions.add_parser("payment", help="one payment by id")
    one.add_argument("payment_id")
    _formats(one)
    one.set_defaults(func=query_payment)

    many = actions.add_parser("list", help="payments newest first: one party's, or every party's in a window")
    many.add_argument("--originator", help="originator party id")
    many.add_argument("--beneficiary", help="beneficiary party id")
    many.add_argument("--from", dest="created_from", help="window start, ISO 8601 (inclusive; UTC unless a zone)")
    many.add_argument("--to", dest="created_to", help="window end, ISO 8601 (exclusive)")
    many.add_argument("--type", dest="payment_type", help="rail: ACH, WIRE, RTP, SEPA, CARD, DIRECT_DEBIT, CHECK")
    many.add_argument("--currency", help="ISO 4217 code")
    many.add_argument("--status", help="ISO 20022 status code")
    many.add_argument("--min-amount", help="smallest amount (decimal, inclusive)")
    many.add_argument("--max-amount", help="largest amount (decimal, inclusive)")
    many.add_argument("--limit", default=None, help="page size (default 50, at most 1000)")
    many.add_argument("--cursor", help="continue after the page that printed this cursor")
    _formats(many)
    many.set_defaults(func=query_list)

    stats = actions.add_parser("stats", help="count and sum per UTC day x rail x currency (Postgres)")
    stats.add_argument("--from", dest="created_from", help="window start, ISO 8601 (inclusive)")
    stats.add_argument("--to", dest="created_to", help="window end, ISO 8601 (exclusive)")
    stats.add_argument("--type", dest="payment_type", help="only this rail")
    stats.add_argument("--currency", help="only this currency")
    stats.add_argument("--by-status", action="store_true", help="one row per status too")
    _formats(stats)
    stats.set_defaults(func=query_stats)

    quarantine = actions.add_parser("quarantine", help="quarantined messages newest first")
    quarantine.add_argument("--limit", default=None)
    quarantine.add_argument("--cursor")
    _formats(quarantine)
    quarantine.set_defaults(func=query_quarantine)

    backup = actions.add_parser("backup", help="the failed-payment backup per store")
    backup.add_argument("--limit", default=None, help="items listed per store (default 50)")
    _formats(backup)
    backup.set_defaults(func=query_backup)

    marker = actions.add_parser(
        "pan-fingerprint", help="the marker a full card number is redacted to (match a customer's report)",
        description="Reads card numbers on standard input, one per line (never on the command line: shell history "
                    "would keep them), and prints for each the `[PAN REDACTED hmac:...]` marker that replaced it "
                    "wherever the platform stored or showed it (keyed by PAN_HASH_KEY).")
    marker.set_defaults(func=query_pan_fingerprint)

    hbase = subparsers.add_parser("hbase", help="look inside HBase: tables, describe, count, get, scan; "
                                                "backfill-index",
                                  description="HBase shell habits over happybase (HBASE_HOST/HBASE_PORT): works "
                                              "against the embedded gateway and a real HBase Thrift server.")
    hactions = hbase.add_subparsers(dest="hbase_command", metavar="ACTION", required=True)
    hactions.add_parser("tables", help="list the tables").set_defaults(func=hbase_tables)
    d = hactions.add_parser("describe", help="a table's column families and regions")
    d.add_argument("table")
    d.set_defaults(func=hbase_describe)
    c = hactions.add_parser("count", help="number of rows of a table (a key-only scan)")
    c.add_argument("table")
    c.set_defaults(func=hbase_count)
    g = hactions.add_parser("get", help="one row")
    g.add_argument("table")
    g.add_argument("row")
    g.add_argument("--columns", nargs="+", help="family:qualifier ... (default: all)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=hbase_get)
    s = hactions.add_parser("scan", help="rows of a table in key order (a range, a prefix, newest first)")
    s.add_argument("table")
    s.add_argument("--prefix", help="only rows whose key starts with this")
    s.add_argument("--start", help="first row key (inclusive; the highest with --reverse)")
    s.add_argument("--stop", help="row key to stop before (exclusive)")
    s.add_argument("--columns", nargs="+", help="family:qualifier ... (default: all)")
    s.add_argument("--limit", default="20", help="rows at most (default 20)")
    s.add_argument("--reverse", action="store_true", help="descending key order")
    s.add_argument("--json", action="store_true", help="one JSON object per row")
    s.set_defaults(func=hbase_scan)
    b = hactions.add_parser("backfill-index", help="write the party indexes of payments stored before they existed")
    b.add_argument("--batch-size", default="2000")
    b.set_defaults(func=hbase_backfill)

    api = subparsers.add_parser("api", help="serve the read-only REST API (uvicorn)",
                                description="Serves the REST API over the services in the environment. "
                                            "Set PAYMENT_API_TOKEN to require `Authorization: Bearer <token>`.")
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    api.add_argument("--port", default="8000", help="port (default 8000)")
    api.set_defaults(func=serve_api)


def _formats(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="JSON")
    group.add_argument("--csv", action="store_true", help="CSV (one row per payment)")


def _queries():
    from payment_platform.config import endpoints_from_env
    from payment_platform.serving.queries import PaymentQueries

    return PaymentQueries.from_endpoints(endpoints_from_env())


# The query module names the API's parameters; on the command line the option the person typed is named instead.
OPTION_OF_PARAMETER = {
    "originator_id": "--originator", "beneficiary_id": "--beneficiary", "created_from": "--from",
    "created_to": "--to", "payment_type": "--type", "currency": "--currency", "status": "--status",
    "min_amount": "--min-amount", "max_amount": "--max-amount", "limit": "--limit", "cursor": "--cursor",
    "payment_id": "PAYMENT_ID",
}


def _run(work):
    """Run a query; a malformed option, a store that did not answer, or an unknown id is one line on stderr and
    exit 2."""
    from payment_platform.serving.params import InvalidParameter
    from payment_platform.serving.queries import NotFound, StoreUnavailable

    try:
        return work()
    except InvalidParameter as error:
        option = OPTION_OF_PARAMETER.get(error.parameter, error.parameter)
        raise UsageError(f"{option}: {error.problem.replace(error.parameter, option)}") from None
    except (NotFound, StoreUnavailable) as error:
        raise UsageError(str(error)) from None


def _print_json(body) -> None:
    print(json.dumps(body, indent=2, ensure_ascii=False, default=str))


def _print_table(rows: list[dict], columns: list[str], out=None) -> None:
    out = out or sys.stdout  # looked up per call: a default bound at import keeps a replaced stream
    if not rows:
        print("(nothing)", file=out)
        return
    text = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [min(48, max(len(c), *(len(t[i]) for t in text))) for i, c in enumerate(columns)]

    def cut(value: str, width: int) -> str:
        return value if len(value) <= width else value[:width - 1] + "…"
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(), file=out)
    for t in text:
        print("  ".join(cut(v, w).ljust(w) for v, w in zip(t, widths)).rstrip(), file=out)


def _print_csv(rows: list[dict], columns: list[str]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


LIST_COLUMNS = ["created_at", "payment_id", "payment_type", "amount", "currency", "status", "originator_id",
                "originator_name", "beneficiary_id", "beneficiary_name"]


def query_payment(args) -> int:
    queries = _queries()
    try:
        view = _run(lambda: queries.payment(args.payment_id))
    finally:
        queries.close()
    if args.json:
        _print_json(view.as_dict())
    elif args.csv:
        _print_csv([view.flat()], list(view.flat()))
    else:
        for key, value in view.flat().items():
            print(f"{key:<18} {'' if value is None else value}")
        for role, party in (("originator", view.originator), ("beneficiary", view.beneficiary)):
            for name, value in party.identifiers.items():
                print(f"{role + '.' + name:<18} {value}")
        if view.degraded:
            print(f"DEGRADED: {view.degraded}")
    return 0


def query_list(args) -> int:
    queries = _queries()
    try:
        page = _run(lambda: queries.list_payments(
            originator_id=args.originator, beneficiary_id=args.beneficiary, created_from=args.created_from,
            created_to=args.created_to, payment_type=args.payment_type, currency=args.currency, status=args.status,
            min_amount=args.min_amount, max_amount=args.max_amount, limit=args.limit, cursor=args.cursor))
    finally:
        queries.close()
    if args.json:
        _print_json(page.as_dict())
        return 0
    rows = [p.flat() for p in page.items]
    if args.csv:
        _print_csv(rows, list(rows[0]) if rows else LIST_COLUMNS)
    else:
        _print_table(rows, LIST_COLUMNS)
        print(f"{len(rows)} payments from {page.source}"
              + (f" (DEGRADED: {page.degraded})" if page.degraded else ""))
    if page.next_cursor and not args.csv:
        print(f"next page: --cursor {page.next_cursor}")
    elif page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def query_stats(args) -> int:
    queries = _queries()
    try:
        totals = _run(lambda: queries.daily_totals(created_from=args.created_from, created_to=args.created_to,
                                                   payment_type=args.payment_type, currency=args.currency,
                                                   by_status=args.by_status))
    finally:
        queries.close()
    columns = ["day", "payment_type", "currency"] + (["status"] if args.by_status else []) + ["count", "amount"]
    rows = totals.to_frame().to_dict("records")
    if args.json:
        _print_json(totals.as_dict())
    elif args.csv:
        _print_csv(rows, columns)
    else:
        _print_table(rows, columns)
    return 0


def query_quarantine(args) -> int:
    queries = _queries()
    try:
        page = _run(lambda: queries.quarantine(limit=args.limit, cursor=args.cursor))
    finally:
        queries.close()
    if args.json:
        _print_json(page.as_dict())
        return 0
    rows = page.to_frame().to_dict("records")
    columns = ["id", "quarantined_at", "kafka_position", "reason", "raw_text"]
    _print_csv(rows, columns) if args.csv else _print_table(rows, columns)
    if page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}", file=sys.stderr if args.csv else sys.stdout)
    return 0


def query_backup(args) -> int:
    queries = _queries()
    try:
        report = _run(lambda: queries.backup_report(limit=args.limit))
    finally:
        queries.close()
    if args.json:
        _print_json(report.as_dict())
        return 0
    rows = report.to_frame().to_dict("records")
    if args.csv:
        _print_csv(rows, ["payment_id", "store", "attempts", "first_attempt_at", "last_attempt_at", "location", "error"])
        return 0
    for store in report.stores:
        age = f"{store.oldest_age_s:,.0f} s" if store.oldest_age_s is not None else "n/a"
        print(f"{store.store}: {store.size} payments waiting, oldest {age}")
    if report.mongo_error:
        print(f"MongoDB: {report.mongo_error} (the folder fallback was read)")
    _print_table(rows, ["store", "payment_id", "attempts", "first_attempt_at", "location", "error"])
    return 0


# -- hbase -------------------------------------------------------------------------------------------------
def _hbase():
    from payment_platform.config import endpoints_from_env
    from payment_platform.stores.hbase import HBaseStore, HBaseUnavailable

    e = endpoints_from_env()
    if not e.hbase:
        raise UsageError("HBASE_HOST: not set (point the shell at a stack: eval \"$(payment-platform stack env)\")")
    store = HBaseStore(e.hbase_host, e.hbase_port, e.hbase_transport, e.hbase_protocol, timeout_ms=30_000)
    try:
        store.connection()
    except HBaseUnavailable as error:
        raise UsageError(str(error)) from None
    return store


def _hbase_run(work):
    from payment_platform.serving.hbase_shell import UnknownTable

    store = _hbase()
    try:
        return work(store)
    except UnknownTable as error:
        raise UsageError(str(error)) from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    finally:
        store.close()


def _columns(values) -> list[bytes] | None:
    if not values:
        return None
    for value in values:
        if ":" not in value:
            raise UsageError(f"--columns: {value!r} is not family:qualifier (or family:)")
    return [v.encode() for v in values]


def _cells(cells: dict[bytes, bytes]) -> dict[str, str]:
    from payment_platform.serving.hbase_shell import show_bytes

    return {show_bytes(k): show_bytes(v) for k, v in sorted(cells.items())}


def hbase_tables(args) -> int:
    from payment_platform.serving import hbase_shell

    for name in _hbase_run(hbase_shell.tables):
        print(name)
    return 0


def hbase_describe(args) -> int:
    from payment_platform.serving import hbase_shell

    _print_json(_hbase_run(lambda h: hbase_shell.describe(h, args.table)))
    return 0


def hbase_count(args) -> int:
    from payment_platform.serving import hbase_shell

    print(f"{_hbase_run(lambda h: hbase_shell.count(h, args.table)):,} rows in {args.table}")
    return 0


def hbase_get(args) -> int:
    from payment_platform.serving import hbase_shell

    columns = _columns(args.columns)
    cells = _hbase_run(lambda h: hbase_shell.get(h, args.table, args.row.encode(), columns))
    if not cells:
        raise UsageError(f"row {args.row!r} not found in {args.table}")
    if args.json:
        _print_json({"row": args.row, "cells": _cells(cells)})
    else:
        print(f"COLUMN{'':<26}CELL")
        for column, value in _cells(cells).items():
            print(f" {column:<30} value={value}")
    return 0


def hbase_scan(args) -> int:
    from payment_platform.config import parse_number
    from payment_platform.serving import hbase_shell

    limit = int(parse_number("--limit", args.limit, 1, 1_000_000, kind=int, unit="rows"))
    columns = _columns(args.columns)

    def enc(value):
        return value.encode() if value is not None else None

    def work(h):
        rows = 0
        for key, cells in hbase_shell.scan(h, args.table, prefix=enc(args.prefix), start=enc(args.start),
                                           stop=enc(args.stop), columns=columns, limit=limit, reverse=args.reverse):
            rows += 1
            if args.json:
                print(json.dumps({"row": hbase_shell.show_bytes(key), "cells": _cells(cells)}, ensure_ascii=False))
            else:
                for column, value in _cells(cells).items():
                    print(f" {hbase_shell.show_bytes(key)} column={column}, value={value}")
        return rows

    rows = _hbase_run(work)
    if not args.json:
        print(f"{rows} row(s)")
    return 0


def hbase_backfill(args) -> int:
    from payment_platform.config import parse_number
    from payment_platform.serving.backfill import backfill_party_index

    batch = int(parse_number("--batch-size", args.batch_size, 1, 100_000, kind=int, unit="rows"))

    def work(h):
        h.ensure_schema()
        return backfill_party_index(h, batch, progress=lambda n, s: print(f"  {n:,} payments indexed ({s:.1f} s)",
                                                                             flush=True))
    result = _hbase_run(work)
    print(f"party indexes written for {result['payments']:,} payments in {result['seconds']:.1f} s"
          + (f" ({result['skipped']} rows without party ids skipped)" if result["skipped"] else ""))
    return 0


# -- api ---------------------------------------------------------------------------------------------------
def serve_api(args) -> int:
    from payment_platform.config import parse_port
    from payment_platform.serving.server import run

    port = parse_port("--port", args.port)
    host = (args.host or "").strip()
    if not host:
        raise UsageError("--host: empty")
    return run(host, port)


def query_pan_fingerprint(args) -> int:
    import sys

    from payment_platform.config import pan_hash_key_from_env
    from payment_platform.domain.redaction import is_pan, marker

    key = pan_hash_key_from_env()  # ConfigError (exit 2, naming PAN_HASH_KEY) when malformed
    status = 0
    for number, line in enumerate(sys.stdin, start=1):
        text = line.strip()
        if not text:
            continue
        if not is_pan(text):
            print(f"line {number}: not a card number (13-19 digits passing Luhn; spaces and dashes allowed)",
                  file=sys.stderr)
            status = 2
            continue
        print(marker(text, key))
    return status
