"""Benchmark: the read side over N stored payments (default 1,000,000), each figure beside a raw baseline.

    .venv/bin/python payment_platform_tests/benchmarks/bench_serving.py [--rows 1000000] [--ingest-size 20000]

Starts its own embedded stack in a temp dir and loads N synthetic payments straight into the stores (the bulk
loaders of bench_reconciliation.py: HBase batched puts of every cell ingestion writes plus `payments_by_id` and both
party indexes; Postgres COPY), 100 payments per originator (N/100 originators), then measures in the same run:
- lookup by id over HTTP (`payment-platform api` in its own process, one keep-alive connection), p50/p99, against a
  raw happybase two-get lookup (`payments_by_id` then `payments`) and a raw Postgres primary-key select;
  target: API p50 within 3x the raw HBase p50; and where the time goes: the HTTP floor (GET /livez) and the raw two
  gets paced like the API's (each after an HTTP round trip, so every process has slept in between, as in the API),
  and the least any HTTP server can do: a bare ASGI app under the same uvicorn doing only the raw two gets;
- a page of 50 of one originator's payments over HTTP, p99 (target < 50 ms), against the raw happybase work it
  does (a reverse scan of 51 index rows and one multi-get);
- daily totals over the whole table over HTTP (target < 1 s), against the same GROUP BY run raw by psycopg2;
- sustained requests/s of 8 concurrent clients (lookups by id), against one raw happybase client's lookups/s;
- ingestion of one range (`Ingestor.ingest`, fresh stores each time) with the party indexes and without them
  (the HBase writes before the index existed: payment rows + `payments_by_id`), alternated, best of --ingest-runs;
  target: with the index within 15% of without.
Each figure is the best of a few runs or a percentile of many requests; the machine is shared.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingestion_throughput import publish  # noqa: E402 - the ingestion harness's publisher
from bench_reconciliation import load_hbase, load_postgres, synthetic, timed  # noqa: E402 - the bulk loaders
from figures import record_figures  # noqa: E402 - writes the figures into docs/capacity.md

PAYMENTS_PER_ORIGINATOR = 100  # 1,000,000 payments: 10,000 originators
ORIGINATORS = 10_000
BENEFICIARIES = 5_000


def parties(i: int) -> tuple[str, str]:
    return f"PTY-{i % ORIGINATORS:06d}", f"PTY-{ORIGINATORS + (i * 7) % BENEFICIARIES:06d}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def latencies(fn, args: list) -> list[float]:
    out = []
    for arg in args:
        started = time.perf_counter()
        fn(arg)
        out.append((time.perf_counter() - started) * 1000)
    return out


class Http:
    """One keep-alive HTTP/1.1 connection to the API (reopened when the server closed it while idle: uvicorn's
    keep-alive timeout is 5 s, and a baseline run between two figures lasts longer)."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> dict:
        try:
            self.connection.request("GET", path)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.connection.request("GET", path)
            response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return json.loads(body)


def start_server(command: list[str], env: dict, port: int, probe_path: str, log: Path) -> subprocess.Popen:
    """Start an HTTP server process and wait until `probe_path` answers 200 (60 s at most)."""
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            Http(port).get(probe_path)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{command[:3]} did not start; see {log}") from None
            time.sleep(0.2)


def start_api(env: dict, port: int, log: Path) -> subprocess.Popen:
    return start_server([sys.executable, "-m", "payment_platform.cli", "api", "--port", str(port)], env, port,
                        "/openapi.json", log)


# The least any HTTP server can do for a lookup: a bare ASGI app under the same uvicorn (no framework, no query
# module, no JSON of the payment), answering with the raw two gets' cell count. The API cannot beat it.
MINIMAL_SERVER_CHILD = r"""
import sys, uvicorn
from payment_platform.config import endpoints_from_env
from payment_platform.domain.rowkeys import PAYMENTS_BY_ID_TABLE, PAYMENTS_TABLE
from payment_platform.stores.hbase import HBaseStore

e = endpoints_from_env()
hbase = HBaseStore(e.hbase_host, e.hbase_port)
by_id, payments = hbase.table(PAYMENTS_BY_ID_TABLE), hbase.table(PAYMENTS_TABLE)

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    pid = scope["path"].rpartition("/")[2]
    body = b'{"cells":%d}' % len(payments.row(by_id.row(pid.encode())[b"cf:rowKey"])) if pid else b'{}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def start_minimal_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    return start_server([sys.executable, "-c", MINIMAL_SERVER_CHILD, str(port)], env, port, "/", log)


INGEST_CHILD = r"""
import json, sys, time
from payment_platform.ingestion.loader import Ingestor, OffsetRange
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore, INDEX_COLUMN, TABLES
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import RedisState
from payment_platform.domain.rowkeys import PAYMENTS_TABLE, PAYMENTS_BY_ID_TABLE
from Hbase_thrift import BatchMutation, Mutation
from payment_platform.stores.hbase import payment_cells

class WithoutPartyIndex(HBaseStore):
    # HBase writes as before the party indexes: the payment rows, then payments_by_id
    @staticmethod
    def prepare(records):
        return {r.payment_id: (BatchMutation(r.row_key, [Mutation(False, c, v, True) for c, v in payment_cells(r).items()]),
                               BatchMutation(r.payment_id.encode(), [Mutation(False, INDEX_COLUMN, r.row_key, True)]))
                for r in records}

    def write_payments(self, records, prepared=None):
        prepared = prepared or self.prepare(records)
        rows = [prepared[r.payment_id] for r in records]
        client = self.connection().client
        client.mutateRows(self.table(PAYMENTS_TABLE).name, [row[0] for row in rows], {})
        client.mutateRows(self.table(PAYMENTS_BY_ID_TABLE).name, [row[1] for row in rows], {})
        return len(records)

a = json.loads(sys.argv[1])
e = a["endpoints"]
store = (HBaseStore if a["index"] else WithoutPartyIndex)(e["hbase_host"], e["hbase_port"], e["hbase_transport"],
                                                        e["hbase_protocol"], table_prefix=a["namespace"])
ledger = PostgresLedger(e["postgres"], schema=a["namespace"])
ingestor = Ingestor(e["kafka"], store, ledger, FailedPaymentBackup(e["mongo"], a["fallback_dir"], database=a["namespace"]),
                    RedisState(e["redis"], key_prefix=a["namespace"]))
ingestor.ensure_schemas()
ledger.reset_progress(a["topic"], 0, a["start"], "benchmark starts here")
started = time.perf_counter()
result = ingestor.ingest(OffsetRange(a["topic"], 0, a["start"], a["end"]))
print(json.dumps({"seconds": time.perf_counter() - started, **result.as_metadata()}))
"""


def ingest_once(endpoints, topic: str, start: int, end: int, index: bool, work: Path) -> float:
    namespace = f"b{'i' if index else 'n'}{uuid.uuid4().hex[:8]}"
    args = {"endpoints": endpoints.as_dict(), "topic": topic, "start": start, "end": end, "index": index,
            "namespace": namespace, "fallback_dir": str(work / namespace)}
    out = subprocess.run([sys.executable, "-c", INGEST_CHILD, json.dumps(args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    run = json.loads(out.stdout.strip().splitlines()[-1])
    if run["backed_up"] or run["written_hbase"] + run["duplicates_skipped"] + run["quarantined"] != end - start:
        raise RuntimeError(f"not every payment landed cleanly: {run}")
    return run["messages"] / run["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="payments stored (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=2000, help="lookups per latency figure (default 2,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the concurrent run (default 10)")
    parser.add_argument("--ingest-size", type=int, default=20_000, help="messages per ingested range (default 20,000)")
    parser.add_argument("--ingest-runs", type=int, default=2, help="runs of each variant, alternated (default 2)")
    args = parser.parse_args()
    if args.rows < 20_000:
        parser.error("--rows: at least 20,000 (pages of 50 need originators with 50+ payments)")

    import psycopg2

    global ORIGINATORS, BENEFICIARIES
    ORIGINATORS, BENEFICIARIES = args.rows // PAYMENTS_PER_ORIGINATOR, args.rows // (2 * PAYMENTS_PER_ORIGINATOR)

    from payment_platform.domain.rowkeys import PARTY_INDEX_TABLES, PAYMENTS_BY_ID_TABLE, PAYMENTS_TABLE, party_prefix
    from devstack.stack.manager import free_ports, remove_data_dir, start_stack
    from payment_platform.stores.hbase import HBaseStore
    from payment_platform.stores.postgres import PostgresLedger

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="bench-xdg-"))
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_DSN", "HBASE_HOST",
                                                            "HBASE_PORT", "MONGO_URI", "REDIS_URL",
                                                            "PAYMENT_API_TOKEN")}
    stack = start_stack(work / "stack", use_default_ports=False, owned=True, env=env, timeout=60)
    api = None
    figures: dict = {"rows": args.rows}
    try:
        e = stack.endpoints
        hbase = HBaseStore(e.hbase_host, e.hbase_port, timeout_ms=120_000)
        ledger = PostgresLedger(e.postgres)
        hbase.ensure_schema()
        ledger.ensure_schema()
        rows = list(synthetic(args.rows))
        hbase_s = load_hbase(hbase, rows, full=True, parties=parties, party_index=True)
        pg_s = load_postgres(ledger, rows, parties=parties)
        print(f"loaded {args.rows:,} payments: HBase {hbase_s:.1f} s ({args.rows / hbase_s:,.0f} payments/s with "
              f"4 rows each), Postgres COPY {pg_s:.1f} s", flush=True)

        rng = random.Random(3)
        ids = [rows[rng.randrange(len(rows))][0] for _ in range(args.requests)]
        # raw baselines
        by_id, payments = hbase.table(PAYMENTS_BY_ID_TABLE), hbase.table(PAYMENTS_TABLE)
        raw_hbase = latencies(lambda pid: payments.row(by_id.row(pid.encode())[b"cf:rowKey"]), ids)
        connection = psycopg2.connect(e.postgres)
        connection.autocommit = True
        cur = connection.cursor()

        def pk_select(pid):
            cur.execute("SELECT * FROM payments WHERE payment_id = %s", (pid,))
            cur.fetchone()
        raw_pg = latencies(pk_select, ids)

        port = free_ports(1)[0]
        api_env = {**env, **stack.env()}
        api = start_api(api_env, port, work / "api.log")
        client = Http(port)
        for pid in ids[:100]:  # warm the API's connections
            client.get(f"/payments/{pid}")
        via_api = latencies(lambda pid: client.get(f"/payments/{pid}"), ids)
        # Where the API's time goes. The HTTP floor: the same server answering GET /livez (no store asked). The raw
        # two gets "paced": each after an (untimed) HTTP round trip to the API, so the stores are asked after the
        # same idle gap as the API asks them; the hot loop of the raw baseline above never lets a process sleep.
        floor = latencies(lambda pid: client.get("/livez"), ids)

        def paced_raw(pid):
            client.get("/livez")
            started = time.perf_counter()
            payments.row(by_id.row(pid.encode())[b"cf:rowKey"])
            return (time.perf_counter() - started) * 1000
        paced = [paced_raw(pid) for pid in ids]
        minimal_port = free_ports(1)[0]
        minimal = start_minimal_server(api_env, minimal_port, work / "minimal.log")
        try:
            bare = Http(minimal_port)
            for pid in ids[:100]:
                bare.get(f"/payments/{pid}")
            least = latencies(lambda pid: bare.get(f"/payments/{pid}"), ids)
        finally:
            minimal.terminate()
            minimal.wait(timeout=20)
        measured = (("api", via_api), ("hbase", raw_hbase), ("pg", raw_pg), ("floor", floor), ("paced", paced),
                    ("least", least))
        p50 = {name: percentile(v, 50) for name, v in measured}
        p99 = {name: percentile(v, 99) for name, v in measured}
        print(f"LOOKUP BY ID over HTTP: p50 {p50['api']:.2f} ms, p99 {p99['api']:.2f} ms | raw happybase two gets p50 "
              f"{p50['hbase']:.2f} ms, p99 {p99['hbase']:.2f} ms | raw Postgres PK select p50 {p50['pg']:.2f} ms, "
              f"p99 {p99['pg']:.2f} ms | API p50 / raw HBase p50 = {p50['api'] / p50['hbase']:.2f}x (target <= 3x)",
              flush=True)
        print(f"  where it goes: HTTP floor (GET /livez, no store) p50 {p50['floor']:.2f} ms; the raw two gets paced "
              f"like the API's (after an HTTP round trip) p50 {p50['paced']:.2f} ms; the API's own work (p50 API - "
              f"floor - paced) {p50['api'] - p50['floor'] - p50['paced']:.2f} ms; the least an HTTP server can do "
              f"(bare ASGI app doing only the raw two gets) p50 {p50['least']:.2f} ms = {p50['least'] / p50['hbase']:.2f}x "
              f"raw HBase; API / that = {p50['api'] / p50['least']:.2f}x", flush=True)
        figures["lookup"] = {"api_p50_ms": round(p50["api"], 3), "api_p99_ms": round(p99["api"], 3),
                             "raw_hbase_p50_ms": round(p50["hbase"], 3), "raw_hbase_p99_ms": round(p99["hbase"], 3),
                             "raw_postgres_p50_ms": round(p50["pg"], 3), "raw_postgres_p99_ms": round(p99["pg"], 3),
                             "api_vs_raw_hbase_p50": round(p50["api"] / p50["hbase"], 2),
                             "http_floor_p50_ms": round(p50["floor"], 3), "raw_hbase_paced_p50_ms": round(p50["paced"], 3),
                             "bare_asgi_two_gets_p50_ms": round(p50["least"], 3),
                             "api_vs_bare_asgi_p50": round(p50["api"] / p50["least"], 2)}

        # a page of 50 of one originator
        originators = [parties(rng.randrange(args.rows))[0] for _ in range(min(500, args.requests))]
        index = hbase.table(PARTY_INDEX_TABLES["originator"])

        def raw_page(party):
            prefix = party_prefix(party)
            keys = [cells[b"cf:rowKey"] for _, cells in index.scan(row_start=prefix + b"\xff", row_stop=prefix,
                                                                      reverse=True, limit=51, batch_size=51)]
            payments.rows(keys[:50])
        raw_pages = latencies(raw_page, originators)
        api_pages = latencies(lambda party: client.get(f"/payments?originator_id={party}&limit=50"), originators)
        sample = client.get(f"/payments?originator_id={originators[0]}&limit=50")
        assert sample["count"] == 50 and sample["source"] == "hbase", sample["count"]
        print(f"PAGE OF 50 (one originator) over HTTP: p50 {percentile(api_pages, 50):.2f} ms, p99 "
              f"{percentile(api_pages, 99):.2f} ms (target p99 < 50 ms) | raw happybase scan of 51 index rows + "
              f"multi-get p50 {percentile(raw_pages, 50):.2f} ms, p99 {percentile(raw_pages, 99):.2f} ms | p99 ratio "
              f"{percentile(api_pages, 99) / percentile(raw_pages, 99):.2f}x", flush=True)
        figures["page_of_50"] = {"api_p50_ms": round(percentile(api_pages, 50), 3),
                                 "api_p99_ms": round(percentile(api_pages, 99), 3),
                                 "raw_p99_ms": round(percentile(raw_pages, 99), 3)}

        # daily totals over the whole table
        totals, api_totals_s = timed(lambda: client.get("/stats/daily"), repeat=3)
        assert sum(r["count"] for r in totals["rows"]) == args.rows

        def raw_totals():
            cur.execute("SELECT (created_at AT TIME ZONE 'UTC')::date, payment_type, currency, count(*), sum(amount) "
                        "FROM payments GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
            return cur.fetchall()
        _, raw_totals_s = timed(raw_totals, repeat=3)
        print(f"DAILY TOTALS over all {args.rows:,} payments over HTTP: {api_totals_s:.3f} s (target < 1 s; "
              f"{len(totals['rows'])} rows) | raw psycopg2 GROUP BY {raw_totals_s:.3f} s | ratio "
              f"{api_totals_s / raw_totals_s:.2f}x", flush=True)
        figures["daily_totals"] = {"api_s": round(api_totals_s, 3), "raw_s": round(raw_totals_s, 3)}

        # sustained requests/s, 8 concurrent clients
        stop_at = time.monotonic() + args.seconds
        counts = [0] * 8

        def hammer(n: int):
            own, local_rng = Http(port), random.Random(n)
            while time.monotonic() < stop_at:
                own.get(f"/payments/{rows[local_rng.randrange(len(rows))][0]}")
                counts[n] += 1
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = sum(counts) / (time.perf_counter() - started)
        raw_rate = len(ids) / (sum(raw_hbase) / 1000)
        print(f"SUSTAINED: {rate:,.0f} lookups/s over HTTP with 8 concurrent clients | one raw happybase client "
              f"{raw_rate:,.0f} lookups/s | ratio {rate / raw_rate:.2f}x", flush=True)
        figures["concurrent_8"] = {"api_req_per_s": round(rate, 1), "raw_hbase_single_client_per_s": round(raw_rate, 1)}
        cur.close()
        connection.close()
        api.terminate()
        api.wait(timeout=20)
        api = None

        # ingestion with and without the party indexes
        topic = f"bench-serving-ingest-{uuid.uuid4().hex[:6]}"
        t0 = time.perf_counter()
        start, end = publish(e.kafka, topic, args.ingest_size, seed=77)
        print(f"published {args.ingest_size:,} payments in {time.perf_counter() - t0:.1f} s", flush=True)
        rates = {True: [], False: []}
        for _ in range(args.ingest_runs):
            for index_on in (False, True):
                rates[index_on].append(ingest_once(e, topic, start, end, index_on, work))
                print(f"  ingest {'with   ' if index_on else 'without'} party indexes: "
                      f"{rates[index_on][-1]:,.0f} payments/s", flush=True)
        with_index, without = max(rates[True]), max(rates[False])
        print(f"INGESTION: with the party indexes {with_index:,.0f} payments/s, without {without:,.0f} payments/s "
              f"(best of {args.ingest_runs}; all runs with {[round(r) for r in rates[True]]}, without "
              f"{[round(r) for r in rates[False]]}): {with_index / without:.2f}x (target >= 0.85x)", flush=True)
        figures["ingestion"] = {"with_index_per_s": round(with_index), "without_index_per_s": round(without),
                                "ratio": round(with_index / without, 3)}

        verdicts = {
            "lookup p50 within 3x raw HBase": figures["lookup"]["api_vs_raw_hbase_p50"] <= 3,
            "page of 50 p99 < 50 ms": figures["page_of_50"]["api_p99_ms"] < 50,
            "daily totals < 1 s": api_totals_s < 1,
            "ingestion with index within 15%": with_index / without >= 0.85,
        }
        print()
        for target, met in verdicts.items():
            print(f"  {'met   ' if met else 'MISSED'}  {target}")
        print(json.dumps(figures))
        record(figures, verdicts)
        return 0
    finally:
        if api is not None:
            api.terminate()
        stack.stop()
        remove_data_dir(work)  # its Postgres cluster may live outside it (root, private /tmp folder)


def record(f: dict, verdicts: dict) -> None:
    """The figures in docs/capacity.md, as the table the docs quote."""
    lookup, page, totals, busy, ingest = (f["lookup"], f["page_of_50"], f["daily_totals"], f["concurrent_8"],
                                          f["ingestion"])
    record_figures(__file__, ["figure", f"{f['rows']:,} payments", "raw baseline, same run", "ratio"], [
        ("lookup by id over HTTP p50 / p99", f"{lookup['api_p50_ms']:.2f} / {lookup['api_p99_ms']:.2f} ms",
         f"happybase two gets {lookup['raw_hbase_p50_ms']:.2f} / {lookup['raw_hbase_p99_ms']:.2f} ms; Postgres PK "
         f"select {lookup['raw_postgres_p50_ms']:.2f} / {lookup['raw_postgres_p99_ms']:.2f} ms",
         f"{lookup['api_vs_raw_hbase_p50']:.2f}x (p50)"),
        ("the least an HTTP server can do (bare ASGI app, the two raw gets) p50",
         f"{lookup['bare_asgi_two_gets_p50_ms']:.2f} ms", f"happybase two gets {lookup['raw_hbase_p50_ms']:.2f} ms",
         f"{lookup['bare_asgi_two_gets_p50_ms'] / lookup['raw_hbase_p50_ms']:.2f}x; the API "
         f"{lookup['api_vs_bare_asgi_p50']:.2f}x that"),
        ("page of 50 of one originator over HTTP p50 / p99", f"{page['api_p50_ms']:.1f} / {page['api_p99_ms']:.1f} ms",
         f"index scan + multi-get p99 {page['raw_p99_ms']:.1f} ms", f"{page['api_p99_ms'] / page['raw_p99_ms']:.2f}x"),
        ("daily totals over the whole table over HTTP", f"{totals['api_s']:.3f} s",
         f"psycopg2 GROUP BY {totals['raw_s']:.3f} s", f"{totals['api_s'] / totals['raw_s']:.2f}x"),
        ("lookups/s, 8 concurrent HTTP clients", f"{busy['api_req_per_s']:,.0f}/s",
         f"one raw happybase client {busy['raw_hbase_single_client_per_s']:,.0f}/s",
         f"{busy['api_req_per_s'] / busy['raw_hbase_single_client_per_s']:.2f}x"),
        ("ingestion with / without the party indexes",
         f"{ingest['with_index_per_s']:,} / {ingest['without_index_per_s']:,} payments/s", "", f"{ingest['ratio']:.2f}x"),
    ], note="; ".join(f"{'met' if met else 'MISSED'}: {target}" for target, met in verdicts.items()))


if __name__ == "__main__":
    sys.exit(main())
