"""Benchmark: full reconciliation of N payments across HBase and Postgres, and one ingested-range check.

    .venv/bin/python payment_platform_tests/benchmarks/bench_reconciliation.py [--rows 1000000] [--range-sizes 2000,20000]

Starts its own embedded stack in a temp dir, loads N synthetic payments into both stores (bulk paths: HBase
batched puts of every cell ingestion writes, or with --cells lean only the cells reconciliation reads;
Postgres COPY), then measures in the same run:
- raw baselines: a plain full scan of each store (HBase scan of the same cells, Postgres SELECT of the same
  columns), nothing computed;
- the full reconciliation (segment checksums, totals, duplicates, rail validity) on consistent data, and
  again with 3 rows changed behind the platform (narrowing to the differing segments);
- the check of one ingested Kafka range (ids read back from Kafka, looked up in both stores and the backup),
  with its raw baseline (reading the same range from Kafka).
Targets: full reconciliation of 1,000,000 payments < 30 s; one range < 1 s. Each figure and each baseline is
the fastest of 2-3 runs (the machine is shared with other work).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

from figures import record_figures

RAILS = [("ACH", "USD", 2), ("WIRE", "USD", 2), ("WIRE", "EUR", 2), ("SEPA", "EUR", 2), ("RTP", "USD", 2),
         ("CARD", "GBP", 2), ("CHECK", "USD", 2), ("DIRECT_DEBIT", "EUR", 2)]


def synthetic(n: int, seed: int = 7):
    rng = random.Random(seed)
    for i in range(n):
        rail, currency, minor = RAILS[rng.randrange(len(RAILS))]
        amount = f"{rng.randint(100, 5_000_000) / 100:.{minor}f}"
        pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        stamp = f"202611{2 + i * 7 // n:02d}{(i * 86400 // n) // 3600 % 24:02d}{(i // 60) % 60:02d}{i % 60:02d}"
        yield pid, rail, currency, amount, stamp


def hbase_cells(pid, rail, currency, amount, stamp, full: bool, originator: str = "PTY-000042",
                beneficiary: str = "PTY-001377") -> dict[bytes, bytes]:
    """The cells of one payment row: `full` = every qualifier the platform writes (stores/hbase.py), the raw
    message included, as ingestion leaves them; otherwise only the three reconciliation reads (+ paymentId)."""
    cells = {b"cf:paymentId": pid.encode(), b"cf:paymentType": rail.encode(), b"cf:amountValue": amount.encode(),
             b"cf:amountCurrency": currency.encode()}
    if full:
        created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}.000000Z"
        raw = json.dumps({"schema_version": 1, "payment_id": pid, "payment_type": rail,
                          "amount": {"value": amount, "currency": currency},
                          "originator": {"party_id": originator, "name": "Acme Holdings LLC", "country": "US",
                                         "account_number": "000123456789", "routing_number": "021000021"},
                          "beneficiary": {"party_id": beneficiary, "name": "Globex GmbH", "country": "DE",
                                          "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
                          "created_at": created, "value_date": created[:10], "status": "ACSC",
                          "reference": f"E2E-{pid[:12]}", "remittance_info": "Invoice INV-2026-00042"})
        cells.update({b"cf:originatorId": originator.encode(), b"cf:originatorName": b"Acme Holdings LLC",
                      b"cf:beneficiaryId": beneficiary.encode(), b"cf:beneficiaryName": b"Globex GmbH",
                      b"cf:createdAt": created.encode(), b"cf:status": b"ACSC", b"cf:valueDate": created[:10].encode(),
                      b"cf:raw": raw.encode(), b"cf:kafkaTopic": b"payment-transactions",
                      b"cf:kafkaPartition": b"0", b"cf:kafkaOffset": str(abs(hash(pid)) % 10**7).encode()})
    return cells


def default_parties(i: int) -> tuple[str, str]:
    return "PTY-000042", "PTY-001377"


def load_hbase(store, rows, full: bool, batch=2000, parties=default_parties, party_index: bool = False) -> float:
    """Put the rows (and their `payments_by_id` entries; with `party_index`, their party index entries too, as
    ingestion writes them), one Thrift mutateRows per table and batch. `parties(i)` gives row i's (originator id,
    beneficiary id)."""
    from Hbase_thrift import BatchMutation, Mutation

    from payment_platform.domain.rowkeys import (PARTY_INDEX_TABLES, PAYMENTS_BY_ID_TABLE, PAYMENTS_TABLE,
                                                 party_index_key)
    started = time.perf_counter()
    client = store.connection().client
    names = {table: store.table(table).name for table in (PAYMENTS_TABLE, PAYMENTS_BY_ID_TABLE,
                                                          *PARTY_INDEX_TABLES.values())}
    for start in range(0, len(rows), batch):
        payments, by_id, by_party = [], [], {role: [] for role in PARTY_INDEX_TABLES}
        for n, (pid, rail, currency, amount, stamp) in enumerate(rows[start:start + batch]):
            originator, beneficiary = parties(start + n)
            key = f"{stamp}_{rail}_{originator}_{pid}".encode()
            cells = hbase_cells(pid, rail, currency, amount, stamp, full, originator, beneficiary)
            payments.append(BatchMutation(key, [Mutation(False, c, v, True) for c, v in cells.items()]))
            pointer = [Mutation(False, b"cf:rowKey", key, True)]
            by_id.append(BatchMutation(pid.encode(), pointer))
            if party_index:
                by_party["originator"].append(BatchMutation(party_index_key(originator, stamp, pid), pointer))
                by_party["beneficiary"].append(BatchMutation(party_index_key(beneficiary, stamp, pid), pointer))
        client.mutateRows(names[PAYMENTS_TABLE], payments, {})
        for role, mutations in by_party.items():
            if mutations:
                client.mutateRows(names[PARTY_INDEX_TABLES[role]], mutations, {})
        client.mutateRows(names[PAYMENTS_BY_ID_TABLE], by_id, {})
    return time.perf_counter() - started


def load_postgres(ledger, rows, parties=default_parties) -> float:
    import psycopg2
    started = time.perf_counter()
    buffer = io.StringIO()
    for i, (pid, rail, currency, amount, stamp) in enumerate(rows):
        created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}Z"
        originator, beneficiary = parties(i) if parties is not default_parties else ("PTY-1", "PTY-2")
        buffer.write(f"{pid}\t{rail}\t{amount}\t{currency}\t{originator}\tA\t{beneficiary}\tB\tACSC\t{created}\t"
                     f"{stamp}_{rail}_{originator}_{pid}\t{{}}\n")
    buffer.seek(0)
    connection = psycopg2.connect(ledger.dsn)
    with connection, connection.cursor() as cur:
        cur.copy_expert("COPY payments (payment_id, payment_type, amount, currency, originator_id, originator_name, "
                        "beneficiary_id, beneficiary_name, status, created_at, hbase_row_key, document) FROM STDIN",
                        buffer)
        cur.execute("ANALYZE payments")
    connection.close()
    return time.perf_counter() - started


def timed(fn, repeat: int = 1):
    """(value, seconds) of the fastest of `repeat` calls: the machine is shared, the best run is the signal."""
    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return value, best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cells", choices=("full", "lean"), default="full",
                        help="full: HBase rows with every cell ingestion writes (15, the raw message included); "
                             "lean: only the 4 reconciliation reads")
    parser.add_argument("--range-sizes", default="2000,20000",
                        help="sizes of the ingested ranges to check (the planner's ranges hold up to 20,000)")
    args = parser.parse_args()
    try:
        range_sizes = [int(x) for x in args.range_sizes.split(",")]
    except ValueError:
        parser.error(f"--range-sizes: expected comma-separated integers, got {args.range_sizes!r}")
    if any(not 1 <= size <= args.rows - 1000 for size in range_sizes):
        parser.error("--range-sizes: each must be between 1 and --rows minus 1000")

    from devstack.stack.manager import remove_data_dir, start_stack
    from payment_platform.reconciliation import evaluate
    from payment_platform.reconciliation.readers import HBaseReader, PostgresReader, RECORD_COLUMNS
    from payment_platform.domain.rowkeys import PAYMENTS_TABLE
    from payment_platform.stores import kafka
    from payment_platform.stores.backup import FailedPaymentBackup
    from payment_platform.stores.hbase import HBaseStore
    from payment_platform.stores.postgres import PostgresLedger

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="bench-xdg-"))
    work = Path(tempfile.mkdtemp(prefix="bench-reconciliation-"))
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_DSN", "HBASE_HOST",
                                                            "HBASE_PORT", "MONGO_URI", "REDIS_URL")}
    stack = start_stack(work / "stack", use_default_ports=False, owned=True, env=env, timeout=60)
    try:
        e = stack.endpoints
        hbase = HBaseStore(e.hbase_host, e.hbase_port, timeout_ms=120_000)
        ledger = PostgresLedger(e.postgres)
        hbase.ensure_schema()
        ledger.ensure_schema()
        rows = list(synthetic(args.rows))
        hbase_load = load_hbase(hbase, rows, full=args.cells == "full")
        pg_load = load_postgres(ledger, rows)
        print(f"loaded {args.rows:,} payments ({args.cells} HBase rows): HBase {hbase_load:.1f} s ({args.rows / hbase_load:,.0f} rows/s), "
              f"Postgres COPY {pg_load:.1f} s ({args.rows / pg_load:,.0f} rows/s)", flush=True)

        # raw baselines: a plain full scan of each store, nothing computed
        raw_hbase, raw_hbase_s = timed(lambda: sum(1 for _ in hbase.table(PAYMENTS_TABLE).scan(
            columns=RECORD_COLUMNS, batch_size=5000)), repeat=2)
        import psycopg2
        def raw_pg():
            connection = psycopg2.connect(e.postgres)
            with connection.cursor(name="raw") as cur:
                cur.itersize = 20000
                cur.execute("SELECT payment_id::text, payment_type, currency, amount FROM payments")
                n = sum(1 for _ in cur)
            connection.close()
            return n
        raw_postgres, raw_pg_s = timed(raw_pg, repeat=2)
        raw_total = raw_hbase_s + raw_pg_s
        print(f"raw full scan: HBase {raw_hbase:,} rows in {raw_hbase_s:.2f} s, Postgres {raw_postgres:,} rows in "
              f"{raw_pg_s:.2f} s (together {raw_total:.2f} s)", flush=True)

        hbase_reader, postgres_reader = HBaseReader.from_store(hbase), PostgresReader.from_ledger(ledger)
        report, full_s = timed(lambda: evaluate.full_reconciliation(hbase_reader, postgres_reader), repeat=2)
        assert report.consistent, report.describe()
        print(f"FULL RECONCILIATION: {report.rows['hbase']:,} HBase + {report.rows['postgres']:,} Postgres payments, "
              f"{report.segments_compared} segments, consistent, in {full_s:.2f} s "
              f"(target < 30 s at 1,000,000; {full_s / raw_total:.2f}x the raw scans)", flush=True)

        # three rows changed behind the platform: narrowing fetches only their segments
        changed = [rows[10][0], rows[args.rows // 2][0], rows[-5][0]]
        connection = psycopg2.connect(e.postgres)
        with connection, connection.cursor() as cur:
            cur.execute("UPDATE payments SET amount = amount + 1 WHERE payment_id = ANY(%s::uuid[])", (changed,))
        connection.close()
        report, narrowed_s = timed(lambda: evaluate.full_reconciliation(hbase_reader, postgres_reader))
        assert sorted(report.altered) == sorted(changed), report.describe()
        print(f"full reconciliation with 3 altered rows: named all 3 from {len(report.segments_differing)} differing "
              f"segments in {narrowed_s:.2f} s ({narrowed_s / raw_total:.2f}x the raw scans)", flush=True)

        # one ingested range: ids read back from Kafka, looked up in both stores and the backup
        from kafka import KafkaProducer
        backup = FailedPaymentBackup(e.mongo, work / "failed_payments")
        range_figures = {}
        for size in range_sizes:
            topic = f"bench-reconciliation-{size}"
            kafka.ensure_topic(e.kafka, topic, partitions=1)
            producer = KafkaProducer(bootstrap_servers=e.kafka, acks="all", linger_ms=5)
            for pid, rail, currency, amount, _ in rows[1000:1000 + size]:
                producer.send(topic, json.dumps({"payment_id": pid, "payment_type": rail,
                                                 "amount": {"value": amount, "currency": currency}}).encode())
            producer.flush()
            producer.close()
            ingested = evaluate.IngestedRange(1, topic, 0, 0, size)

            def read_raw(topic=topic, size=size):
                return sum(len(chunk) for chunk in kafka.read_range(e.kafka, topic, 0, 0, size))

            client = kafka.KafkaClient(e.kafka, topic)

            def check_range(ingested=ingested, client=client):
                return evaluate.range_report(ingested, hbase_reader, postgres_reader, backup, client)

            _, raw_kafka_s = timed(read_raw, repeat=3)
            outcome, range_s = timed(check_range, repeat=3)
            assert outcome["expected"] == size and not outcome["lost"]["hbase"] and not outcome["lost"]["postgres"]
            range_figures[size] = (range_s, raw_kafka_s)
            print(f"RANGE CHECK: one ingested range of {size:,} payments ({outcome['report'].rows['hbase']:,} in "
                  f"HBase, {outcome['report'].rows['postgres']:,} in Postgres) in {range_s:.3f} s (target < 1 s; "
                  f"raw Kafka read of the range alone {raw_kafka_s:.3f} s, ratio {range_s / raw_kafka_s:.2f}x)",
                  flush=True)
        print(json.dumps({"rows": args.rows, "cells": args.cells, "full_reconciliation_s": round(full_s, 2),
                          "full_vs_raw_scans": round(full_s / raw_total, 2), "raw_hbase_scan_s": round(raw_hbase_s, 2),
                          "raw_postgres_scan_s": round(raw_pg_s, 2), "narrowed_s": round(narrowed_s, 2),
                          "range_checks": {str(size): {"seconds": round(r, 3), "raw_kafka_read_s": round(k, 3),
                                                       "ratio": round(r / k, 2)}
                                           for size, (r, k) in range_figures.items()}}))
        record_figures(__file__, ["figure", "seconds", "raw baseline, same run", "ratio"], [
            (f"full reconciliation, {args.rows:,} payments ({args.cells} HBase rows)", f"{full_s:.2f}",
             f"plain full scans of both stores {raw_total:.2f} s", f"{full_s / raw_total:.2f}x"),
            ("full reconciliation naming 3 altered rows", f"{narrowed_s:.2f}", f"the same scans {raw_total:.2f} s",
             f"{narrowed_s / raw_total:.2f}x"),
            *[(f"one ingested range of {size:,} payments checked", f"{r:.3f}", f"raw Kafka read of the range {k:.3f} s",
               f"{r / k:.2f}x") for size, (r, k) in range_figures.items()],
        ], note="targets: full reconciliation < 30 s at 1,000,000 payments; a range check < 1 s")
        return 0
    finally:
        stack.stop()
        remove_data_dir(work)  # its Postgres cluster may live outside it (root, private /tmp folder)


if __name__ == "__main__":
    sys.exit(main())
