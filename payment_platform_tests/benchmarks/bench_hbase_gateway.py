"""Benchmark of the embedded HBase gateway through happybase, against its own storage engine used directly.

    .venv/bin/python payment_platform_tests/benchmarks/bench_hbase_gateway.py [--cells 200000] [--rss-cells 1000000]

Prints, measured in the same run:
- start-up: seconds from launching `payment-platform hbase-gateway` to an accepted connection;
- batched puts (happybase `table.batch(batch_size=...)`, families `cf`) in cells/s, and the ratio to
  inserting the same cells straight into SQLite with the gateway's schema and pragmas (one transaction per
  batch, as the gateway does);
- a full scan (happybase `table.scan(batch_size=1000)`) in cells/s, and the ratio to reading the same cells
  straight from SQLite;
- the gateway's peak resident memory while scanning a table of --rss-cells cells.
Targets: puts >= 20,000 cells/s, scans >= 50,000 cells/s, ratios >= 0.4, RSS < 300 MB.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import happybase

ROW_COLUMNS = 4  # cells per row
VALUE = b"x" * 64
BATCH_ROWS = 250  # rows per mutateRows call: 1,000 cells


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(data_dir: str) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "hbase-gateway", "--port", str(port), "--data-dir", data_dir],
        stdout=subprocess.DEVNULL,
    )
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port, time.perf_counter() - started
        except OSError:
            if proc.poll() is not None or time.perf_counter() - started > 20:
                raise SystemExit("the gateway did not start") from None
            time.sleep(0.005)


def rows_of(n_cells: int, prefix: bytes = b"row"):
    for i in range(n_cells // ROW_COLUMNS):
        yield b"%s%09d" % (prefix, i), {b"cf:c%d" % c: VALUE for c in range(ROW_COLUMNS)}


def put_through_gateway(table, n_cells: int, prefix: bytes = b"row") -> float:
    started = time.perf_counter()
    with table.batch(batch_size=BATCH_ROWS * ROW_COLUMNS) as batch:
        for row, data in rows_of(n_cells, prefix):
            batch.put(row, data)
    return time.perf_counter() - started


def scan_through_gateway(table) -> tuple[int, float]:
    started = time.perf_counter()
    cells = 0
    for _row, data in table.scan(batch_size=1000):
        cells += len(data)
    return cells, time.perf_counter() - started


def raw_engine(path: str, n_cells: int) -> tuple[float, float, int]:
    """The same cells written and read straight through SQLite, as the gateway stores them."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE cells(row BLOB NOT NULL, family BLOB NOT NULL, qualifier BLOB NOT NULL, ts INTEGER NOT NULL,"
        " value BLOB NOT NULL, PRIMARY KEY(row, family, qualifier, ts DESC)) WITHOUT ROWID"
    )
    started = time.perf_counter()
    batch = []
    for row, data in rows_of(n_cells):
        ts = int(time.time() * 1000)
        batch.extend((row, b"cf", col[3:], ts, value) for col, value in data.items())
        if len(batch) >= BATCH_ROWS * ROW_COLUMNS:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?)", batch)
            db.execute("COMMIT")
            batch = []
    if batch:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?)", batch)
        db.execute("COMMIT")
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    cells = 0
    cur = db.execute("SELECT row, family, qualifier, ts, value FROM cells ORDER BY row, family, qualifier, ts DESC")
    while True:
        chunk = cur.fetchmany(1000)
        if not chunk:
            break
        cells += len(chunk)
    read_s = time.perf_counter() - started
    db.close()
    return write_s, read_s, cells


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=200_000, help="cells for the put and scan rates")
    parser.add_argument("--rss-cells", type=int, default=1_000_000, help="table size for the memory figure")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for the rates (best of)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-hbase-") as tmp:
        proc, port, startup_s = start_gateway(os.path.join(tmp, "gateway"))
        try:
            conn = happybase.Connection("127.0.0.1", port, autoconnect=False)
            conn.open()
            # Best of --rounds, gateway and raw engine alternating: the machine is shared and noisy.
            put_rate = scan_rate = raw_put_rate = raw_scan_rate = 0.0
            put_cpu = scan_cpu = (0.0, 0.0)  # (gateway, client) CPU seconds per 1,000 cells, best round
            for round_no in range(args.rounds):
                conn.create_table(f"bench{round_no}", {"cf": dict(max_versions=1)})
                table = conn.table(f"bench{round_no}")
                gateway_cpu, client_cpu = cpu_s(proc.pid), time.process_time()
                put_s = put_through_gateway(table, args.cells)
                if args.cells / put_s > put_rate:
                    put_cpu = ((cpu_s(proc.pid) - gateway_cpu) * 1000 / args.cells,
                               (time.process_time() - client_cpu) * 1000 / args.cells)
                gateway_cpu, client_cpu = cpu_s(proc.pid), time.process_time()
                scanned, scan_s = scan_through_gateway(table)
                if scanned / scan_s > scan_rate:
                    scan_cpu = ((cpu_s(proc.pid) - gateway_cpu) * 1000 / scanned,
                                (time.process_time() - client_cpu) * 1000 / scanned)
                assert scanned == args.cells, f"scanned {scanned} cells, wrote {args.cells}"
                raw_write_s, raw_read_s, raw_cells = raw_engine(os.path.join(tmp, f"raw{round_no}.sqlite3"), args.cells)
                assert raw_cells == args.cells
                put_rate, raw_put_rate = max(put_rate, args.cells / put_s), max(raw_put_rate, args.cells / raw_write_s)
                scan_rate, raw_scan_rate = max(scan_rate, scanned / scan_s), max(raw_scan_rate, raw_cells / raw_read_s)
                conn.delete_table(f"bench{round_no}", disable=True)
            print(f"start-up to first accepted connection: {startup_s:.3f} s")
            print(f"rates: best of {args.rounds} rounds")
            print(f"batched puts through happybase: {put_rate:10,.0f} cells/s   raw SQLite: {raw_put_rate:10,.0f}"
                  f" cells/s   ratio {put_rate / raw_put_rate:.2f}   ({args.cells:,} cells, {ROW_COLUMNS} per row,"
                  f" {BATCH_ROWS * ROW_COLUMNS} per mutateRows)")
            print(f"full scan through happybase:    {scan_rate:10,.0f} cells/s   raw SQLite: {raw_scan_rate:10,.0f}"
                  f" cells/s   ratio {scan_rate / raw_scan_rate:.2f}")
            print(f"CPU per 1,000 cells (gateway / happybase client): puts {put_cpu[0] * 1000:.1f} / {put_cpu[1] * 1000:.1f}"
                  f" ms, scans {scan_cpu[0] * 1000:.1f} / {scan_cpu[1] * 1000:.1f} ms (CPU below wall time = a busy machine)")

            if args.rss_cells:
                conn.create_table("bench_rss", {"cf": dict(max_versions=1)})
                big = conn.table("bench_rss")
                fill_s = put_through_gateway(big, args.rss_cells)
                before = rss_kb(proc.pid)
                peak = [before]
                stop = threading.Event()

                def sample():
                    while not stop.is_set():
                        peak[0] = max(peak[0], rss_kb(proc.pid))
                        time.sleep(0.02)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                scanned_big, big_scan_s = scan_through_gateway(big)
                stop.set()
                sampler.join()
                assert scanned_big == args.rss_cells
                print(f"{args.rss_cells:,}-cell table: filled at {args.rss_cells / fill_s:,.0f} cells/s, scanned at"
                      f" {scanned_big / big_scan_s:,.0f} cells/s; gateway RSS {before / 1024:.0f} MB before the scan,"
                      f" peak {peak[0] / 1024:.0f} MB during it (lifetime peak VmHWM"
                      f" {rss_kb(proc.pid, 'VmHWM') / 1024:.0f} MB)")
            conn.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        print(f"gateway stopped with status {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
