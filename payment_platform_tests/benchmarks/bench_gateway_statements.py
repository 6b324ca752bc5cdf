"""The HBase gateway's multi-gets: SQLite memory and time with the row keys padded to powers of two (a few
statement shapes per connection) against one statement shape per size (the baseline: what the gateway did before),
in the same run, on the same store.

Each variant opens `--readers` reader connections (the pool a busy gateway grows to) and on each runs multi-gets of
every size from 1 to `--max-rows` (step 3) over a 20,000-row table, as the range checks, the replay and the REST
API's lookups ask. Printed: SQLite's memory in use afterwards (`sqlite3_memory_used`: page caches and prepared
statements) and the time per multi-get, with the ratios padded / baseline. Target (issue 20): the gateway's memory
bounded by its work, not by the variety of what it was asked.

    .venv/bin/python payment_platform_tests/benchmarks/bench_gateway_statements.py [--readers 8] [--max-rows 600]
"""
from __future__ import annotations

import argparse
import ctypes
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

import _sqlite3

from devstack.hbase_gateway import storage
from devstack.hbase_gateway.storage import LATEST_TIMESTAMP, Family, Store


def sqlite_memory_used() -> int:
    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used  # the library _sqlite3 links to
    used.restype = ctypes.c_int64
    return used()


def measure(padded: bool, readers: int, max_rows: int) -> tuple[float, float]:
    """(MB of SQLite memory gained, ms per multi-get) for one variant, on a fresh store."""
    original = storage.padded_size
    storage.padded_size = original if padded else (lambda n: n)
    folder = tempfile.mkdtemp(prefix="bench-gateway-statements-")
    store = Store(folder)
    try:
        store.create_table(b"payments", [Family(b"cf", 1)])
        for start in range(0, 20_000, 2000):
            store.put(b"payments", [(b"%012d" % i, b"cf", b"q", b"v" * 200) for i in range(start, start + 2000)],
                      {b"cf"}, LATEST_TIMESTAMP)
        before = sqlite_memory_used()
        times: list[float] = []
        barrier = threading.Barrier(readers)

        def read(reader: int) -> None:
            with store.reading() as conn:
                barrier.wait()  # every reader holds its own connection: the pool grows to `readers`
                for n in range(1, max_rows + 1, 3):
                    keys = [b"%012d" % ((reader * 997 + n * 31 + i) % 20_000) for i in range(n)]
                    began = time.perf_counter()
                    store.get_rows(b"payments", keys, storage.ReadSpec(), conn=conn)
                    times.append(time.perf_counter() - began)

        threads = [threading.Thread(target=read, args=(r,)) for r in range(readers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (sqlite_memory_used() - before) / 1e6, 1000 * sum(times) / len(times)
    finally:
        storage.padded_size = original
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--max-rows", type=int, default=600)
    args = parser.parse_args()
    sqlite3.connect(":memory:").execute("PRAGMA soft_heap_limit=0")  # page caches as they come: same for both
    base_mb, base_ms = measure(False, args.readers, args.max_rows)
    padded_mb, padded_ms = measure(True, args.readers, args.max_rows)
    print(f"{args.readers} readers, multi-gets of 1..{args.max_rows} rows (step 3) over 20,000 rows")
    print(f"one statement per size (baseline): SQLite memory +{base_mb:6.1f} MB, {base_ms:6.2f} ms per multi-get")
    print(f"padded to powers of two:           SQLite memory +{padded_mb:6.1f} MB, {padded_ms:6.2f} ms per multi-get")
    print(f"ratio padded / baseline: memory {padded_mb / base_mb:.2f}x, time per multi-get {padded_ms / base_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
