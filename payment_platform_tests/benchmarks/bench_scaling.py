"""Ingestion throughput under the real dagster-daemon with 1, 2, 3 and 6 topic partitions, same run.

    .venv/bin/python payment_platform_tests/benchmarks/bench_scaling.py [--count 24000] [--partitions 1,2,3,6]

Starts its own embedded stack. For each partition count P: a fresh topic with P partitions, and a fresh
`dagster-daemon` (the daemon harness of the e2e test and the latency benchmark) whose instance has the run
coordinator's limits set accordingly: INGESTION_MAX_RANGES_IN_FLIGHT=P and DAGSTER_MAX_CONCURRENT_RUNS=P+1 (written
into its dagster.yaml: at most one run per partition, P ingestion runs in all, one more slot so a scheduled check
run never holds an ingestion run back). The micro-batch size is
count/6 for every P (INGESTION_BATCH_SIZE), so every configuration ingests the same payments in about the same
number of runs of the same size; only how many run at once changes.

Per configuration: a warm-up batch is published and awaited (daemon and code server loaded, not measured), then
--count payments are published at once and the clock runs until Postgres records progress up to the topic's end
offsets (every range ingested into HBase, Postgres and Redis). Prints payments/s, the number of ingestion runs,
the most runs seen running at the same time, and the ratio to one partition (the baseline, same run).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

WARMUP = 60


def runs_of(stack, home: Path, topic: str) -> tuple[list[tuple[float, float]], int]:
    """(start, end) of every ingestion run of `topic` that started (Dagster's run storage), and how many of its
    runs have not finished yet."""
    import dagster as dg

    from payment_platform.defs.ingestion.runs import LEASE_JOB_NAME, RANGE_TAG

    os.environ["DAGSTER_POSTGRES_URL"] = stack.dagster_postgres_url
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        records = [r for r in instance.get_run_records(filters=dg.RunsFilter(job_name=LEASE_JOB_NAME))
                   if r.dagster_run.tags.get(RANGE_TAG, "").startswith(f"ingest:{topic}:")]
        unfinished = sum(1 for r in records if not r.dagster_run.is_finished)
        return [(r.start_time, r.end_time or time.time()) for r in records if r.start_time], unfinished
    finally:
        instance.dispose()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def measure(stack, work: Path, partitions: int, count: int, batch_size: int, timeout_s: float) -> dict:
    from payment_platform.generation.generator import generate
    from payment_platform.generation.settings import GenerationSettings
    from devstack.stack.dagster_process import DagsterDaemon, wait_for
    from payment_platform.stores import kafka
    from payment_platform.stores.postgres import PostgresLedger

    ep = stack.endpoints
    topic = f"bench-scaling-p{partitions}-{uuid.uuid4().hex[:6]}"
    kafka.ensure_topic(ep.kafka, topic, partitions=partitions)
    env = {**stack.env(), "PAYMENTS_TOPIC": topic, "INGESTION_MAX_RANGES_IN_FLIGHT": str(partitions),
           "DAGSTER_MAX_CONCURRENT_RUNS": str(2 * partitions + 1), "INGESTION_BATCH_SIZE": str(batch_size)}
    messages = list(generate(WARMUP + count, seed=partitions, settings=GenerationSettings(bad_fraction=0.0)))
    ledger = PostgresLedger(ep.postgres)
    home = work / f"dagster_home_p{partitions}"

    def caught_up() -> bool:
        try:
            ends = kafka.end_offsets(ep.kafka, topic)
            return sum(ends.values()) > 0 and ledger.read_progress(topic) == ends
        except Exception:  # noqa: BLE001 - tables not created yet by the first run
            return False

    with DagsterDaemon(home, env, work / f"daemon_p{partitions}.log") as daemon:
        with kafka.Publisher(ep.kafka, topic) as publisher:
            publisher.publish(messages[:WARMUP])
        if not wait_for(caught_up, timeout_s, interval_s=1.0, daemon=daemon):
            raise TimeoutError(f"P={partitions}: the warm-up batch never landed; daemon log: {daemon.log_tail()}")
        warm_runs = len(runs_of(stack, home, topic)[0])
        started = time.monotonic()
        with kafka.Publisher(ep.kafka, topic) as publisher:
            published = publisher.publish(messages[WARMUP:]).acknowledged
        publish_s = time.monotonic() - started
        if not wait_for(caught_up, timeout_s, interval_s=0.5, daemon=daemon):
            raise TimeoutError(f"P={partitions}: not ingested within {timeout_s:.0f}s; daemon log: {daemon.log_tail()}")
        seconds = time.monotonic() - started
        # a run records its progress before its last events: let every run end before the daemon stops, or it is
        # killed, fails, and Dagster's run retry ingests its range again under the next configuration
        wait_for(lambda: runs_of(stack, home, topic)[1] == 0, 120, interval_s=1.0, daemon=daemon)
        spans = runs_of(stack, home, topic)[0]
    ledger.close()
    measured = sorted(spans)[warm_runs:]
    return {"partitions": partitions, "payments": published, "seconds": seconds, "rate": published / seconds,
            "runs": len(measured), "at_once": most_at_once(measured), "publish_s": publish_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24_000, help="payments ingested per configuration (default 24000)")
    parser.add_argument("--partitions", default="1,2,3,6", help="partition counts to compare (default 1,2,3,6)")
    parser.add_argument("--timeout", type=float, default=600.0, help="max seconds per configuration (default 600)")
    args = parser.parse_args()
    try:
        counts = [int(p) for p in args.partitions.split(",")]
    except ValueError:
        counts = []
    if args.count < 600 or not counts or min(counts) < 1:
        print("bench_scaling: --count >= 600 and --partitions a list of integers >= 1", file=sys.stderr)
        return 2
    batch_size = max(1, args.count // max(6, max(counts)))

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="bench-xdg-"))
    from payment_platform.config import ALL_ENV_VARS
    from devstack.stack.manager import remove_data_dir, start_stack

    print(f"load average at start (2-core machine shared with other work): "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    env = {k: v for k, v in os.environ.items() if k not in ALL_ENV_VARS}
    stack = start_stack(work / "stack", use_default_ports=False, owned=True, env=env, timeout=60)
    results = []
    try:
        for partitions in counts:
            try:
                result = measure(stack, work, partitions, args.count, batch_size, args.timeout)
            except TimeoutError as error:  # said, and the other configurations still measured
                print(f"  P={partitions}: FAILED: {error}", flush=True)
                continue
            results.append(result)
            print(f"  P={partitions}: {result['payments']} payments in {result['seconds']:.1f}s = {result['rate']:,.0f}/s; "
                  f"{result['runs']} ingestion runs, at most {result['at_once']} at once "
                  f"(publishing took {result['publish_s']:.1f}s); load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        stack.stop()
        remove_data_dir(work)  # its Postgres cluster may live outside it (root, private /tmp folder)

    if not results:
        print("no configuration was measured", file=sys.stderr)
        return 1
    base = next((r for r in results if r["partitions"] == 1), results[0])
    print(f"\n{args.count} payments per configuration, micro-batch (INGESTION_BATCH_SIZE) {batch_size}, "
          f"limits per configuration: INGESTION_MAX_RANGES_IN_FLIGHT = P, DAGSTER_MAX_CONCURRENT_RUNS = P + 1")
    print(f"{'partitions':>10} {'payments/s':>11} {'runs':>5} {'at once':>8} {'ratio to P=' + str(base['partitions']):>14}")
    for r in results:
        print(f"{r['partitions']:>10} {r['rate']:>11,.0f} {r['runs']:>5} {r['at_once']:>8} {r['rate'] / base['rate']:>14.2f}")
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    from figures import record_figures  # the benchmarks' folder is on sys.path: this is a script
    record_figures(__file__, ["partitions P", "payments/s", "ingestion runs", "most runs executing at once",
                              f"ratio to P={base['partitions']}"],
                   [(r["partitions"], f"{r['rate']:,.0f}", r["runs"], r["at_once"], f"{r['rate'] / base['rate']:.2f}")
                    for r in results],
                   note=f"{args.count:,} payments per configuration, micro-batch (INGESTION_BATCH_SIZE) {batch_size:,}; "
                        f"INGESTION_MAX_RANGES_IN_FLIGHT = P, DAGSTER_MAX_CONCURRENT_RUNS = P + 1")
    return 0 if len(results) == len(counts) else 1


if __name__ == "__main__":
    sys.exit(main())
