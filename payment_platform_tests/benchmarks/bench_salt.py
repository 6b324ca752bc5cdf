"""HBase write and scan rates with salted row keys (HBASE_SALT_BUCKETS) against the unsalted layout, same run.

    .venv/bin/python payment_platform_tests/benchmarks/bench_salt.py [--count 20000] [--buckets 8] [--rounds 2]

Starts its own embedded HBase gateway. The same generated payments are written through `HBaseStore.write_payments`
(chunks of 2,000, every table: payments, both party indexes, payments_by_id) into fresh tables of each layout,
then read back through `HBaseStore.scan_time_window` (what every time reader uses): the whole table oldest first,
a 10% time window, and a 50-row page newest first (what the API asks for). The unsalted layout is the baseline:
each line prints the salted figure and its ratio to it. Each figure is the best of --rounds rounds (the rounds
alternate the layouts' order; the machine is shared).

What this measures is the price of salting on one server: a salted write is the same work, a salted time scan is
N scanners merged. The gain, writes spread over N regions instead of one hot region, needs a real multi-region
cluster and cannot show here (the gateway is one SQLite file, no regions).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hbase_gateway import start_gateway  # noqa: E402 - the gateway launcher of the gateway benchmark

CHUNK = 2000
PAGE = 50


def payment_records(count: int):
    from payment_platform.domain.validation import parse_and_validate
    from payment_platform.generation.generator import generate
    from payment_platform.generation.settings import GenerationSettings
    from payment_platform.stores.records import PaymentRecord

    records, seen = [], set()
    for message in generate(count, seed=14, settings=GenerationSettings(bad_fraction=0.0)):
        payment = parse_and_validate(message.value)
        if payment.payment_id not in seen:
            seen.add(payment.payment_id)
            records.append(PaymentRecord(payment, message.value))
    return records


def measure(port: int, buckets: int, records, window: tuple[bytes, bytes]) -> dict[str, float]:
    from payment_platform.reconciliation.readers import RECORD_COLUMNS
    from payment_platform.stores.hbase import HBaseStore

    store = HBaseStore("127.0.0.1", port, table_prefix=f"b{buckets}{uuid.uuid4().hex[:6]}", salt_buckets=buckets)
    store.ensure_schema()
    try:
        started = time.perf_counter()
        for i in range(0, len(records), CHUNK):
            store.write_payments(records[i:i + CHUNK])
        write = len(records) / (time.perf_counter() - started)

        started = time.perf_counter()
        scanned = sum(1 for _ in store.scan_time_window(None, None, columns=RECORD_COLUMNS, batch_size=5000))
        scan = scanned / (time.perf_counter() - started)
        assert scanned == len(records), (scanned, len(records))

        started = time.perf_counter()
        in_window = sum(1 for _ in store.scan_time_window(*window, columns=RECORD_COLUMNS, batch_size=5000))
        window_rate = in_window / (time.perf_counter() - started)

        pages = 20
        started = time.perf_counter()
        for _ in range(pages):
            page = list(store.scan_time_window(None, None, newest_first=True, limit=PAGE, batch_size=PAGE + 1))
        page_ms = (time.perf_counter() - started) / pages * 1000
        assert len(page) == PAGE
        return {"write": write, "scan": scan, "window": window_rate, "window_rows": in_window, "page_ms": page_ms}
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="payments written and scanned (default 20000)")
    parser.add_argument("--buckets", type=int, default=8, help="HBASE_SALT_BUCKETS of the salted layout (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per layout, best kept (default 2)")
    args = parser.parse_args()
    if args.count < PAGE or not 1 <= args.buckets <= 99 or args.rounds < 1:
        print("bench_salt: --count >= 50, --buckets in 1-99 and --rounds >= 1", file=sys.stderr)
        return 2

    from payment_platform.domain.rowkeys import time_key

    records = payment_records(args.count)
    keys = sorted(time_key(r.payment) for r in records)
    window = (keys[len(keys) * 45 // 100][:14], keys[len(keys) * 55 // 100][:14])  # ~10% of the rows, by second
    print(f"load average at start (2-core machine shared with other work): "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    data_dir = tempfile.mkdtemp(prefix="bench-salt-")
    gateway, port, _ = start_gateway(data_dir)
    best: dict[int, dict[str, float]] = {}
    try:
        for round_ in range(args.rounds):
            order = (0, args.buckets) if round_ % 2 == 0 else (args.buckets, 0)
            for buckets in order:
                figures = measure(port, buckets, records, window)
                kept = best.setdefault(buckets, figures)
                for name, value in figures.items():
                    kept[name] = min(kept[name], value) if name == "page_ms" else max(kept[name], value)
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)

    plain, salted = best[0], best[args.buckets]
    print(f"{len(records)} payments, HBASE_SALT_BUCKETS={args.buckets} vs 0 (baseline), best of {args.rounds} rounds; "
          f"embedded gateway (one SQLite store, no regions)")
    rows = [("writes (payments/s, 4 tables)", "write", "{:,.0f}"),
            ("full time scan (rows/s)", "scan", "{:,.0f}"),
            (f"10% time window, {plain['window_rows']:.0f} rows (rows/s)", "window", "{:,.0f}"),
            (f"newest-first page of {PAGE} (ms)", "page_ms", "{:.1f}")]
    for label, name, fmt in rows:
        ratio = salted[name] / plain[name] if plain[name] else float("nan")
        print(f"  {label:<44} unsalted {fmt.format(plain[name]):>10}   salted {fmt.format(salted[name]):>10}   "
              f"ratio salted/unsalted {ratio:.2f}")
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
