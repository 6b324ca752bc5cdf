"""The demo's Dagster steps: start the real `dagster-daemon`, publish the demo batch, wait until every message
of it is accounted for (`devstack.demo.accounting`), stop the daemon.

The demo publishes exactly what `payment-platform generate --count N --seed S --bad-fraction 0.02`
writes (same generator, same settings), lets the real `dagster-daemon` (sensor and schedules on) ingest
it, and accounts for every generated message by its own identity: its payment id in HBase and in
Postgres, in the failed-payment backup for a store it missed, or its raw bytes in quarantine. Batches the
generation schedule publishes meanwhile are ingested too but are not part of the demo batch, so they are
kept out of the summary. A message is unaccounted if it is in none of those places.
"""
from __future__ import annotations

import time
from pathlib import Path

from devstack.demo.accounting import account
from devstack.demo.state import DemoRun

DEMO_BAD_FRACTION = 0.02  # a little labelled bad data: it must land in quarantine, never be lost
GENERATION_SCHEDULE = "generate_payments_every_minute"
INGESTION_SENSOR = "payments_ingestion_sensor"


def _stores(run: DemoRun):
    from payment_platform.stores.backup import FailedPaymentBackup, default_fallback_dir
    from payment_platform.stores.hbase import HBaseStore
    from payment_platform.stores.postgres import PostgresLedger

    endpoints = run.stack.endpoints
    return (HBaseStore(endpoints.hbase_host, endpoints.hbase_port, endpoints.hbase_transport,
                       endpoints.hbase_protocol),
            PostgresLedger(endpoints.postgres),
            # the folder the runs use: they get the same environment as the daemon
            FailedPaymentBackup(endpoints.mongo, default_fallback_dir(run.stack.env())))


def start_dagster_daemon(run: DemoRun) -> None:
    """Starts `dagster-daemon run` with the project's workspace against the stack (sensor and schedules on)."""
    from devstack.stack.dagster_process import DagsterDaemon

    data_dir = Path(run.stack.data_dir)
    env = run.stack.env()
    run.daemon = DagsterDaemon(data_dir / "dagster_home", env, data_dir / "logs" / "dagster-daemon.log").start()
    # The generation schedule runs too, as in production: its batches are ingested like any other, but the
    # summary accounts only for the demo batch (by payment id and raw bytes), so they never blur the figures.
    run.daemon.start_schedule(GENERATION_SCHEDULE)
    run.summary["schedules_on"] = [GENERATION_SCHEDULE]
    run.summary["sensors_on"] = [INGESTION_SENSOR]
    run.summary["dagster_home"] = str(data_dir / "dagster_home")
    run.summary["daemon_log"] = str(run.daemon.log_path)


def demo_batch(count: int, seed: int) -> list:
    """Exactly what `payment-platform generate --count N --seed S --bad-fraction 0.02` writes."""
    from payment_platform.generation.generator import generate
    from payment_platform.generation.settings import GenerationSettings

    return list(generate(count, seed, GenerationSettings(bad_fraction=DEMO_BAD_FRACTION)))


def publish_demo_batch(run: DemoRun) -> None:
    """Generates the demo batch (same bytes as `payment-platform generate`) and publishes it to the topic."""
    from payment_platform.stores import kafka

    endpoints = run.stack.endpoints
    run.messages = demo_batch(run.options.count, run.options.seed)
    with kafka.KafkaClient(endpoints.kafka, endpoints.topic) as client:
        client.ensure_topic()
        with client.publisher() as publisher:
            result = publisher.publish(run.messages)
    run.published = result.acknowledged
    run.published_at = time.monotonic()
    run.summary["generated"] = len(run.messages)
    run.summary["published"] = result.acknowledged
    run.summary["bad_fraction"] = DEMO_BAD_FRACTION
    run.summary["equivalent_command"] = (f"payment-platform generate --count {run.options.count} "
                                         f"--seed {run.options.seed} --bad-fraction {DEMO_BAD_FRACTION}")


def wait_for_ingestion(run: DemoRun, timeout_s: float | None = None) -> None:
    """Waits (bounded) until every message of the demo batch is accounted for, then records where it landed."""
    timeout_s = timeout_s if timeout_s is not None else 90.0 + run.options.count / 100.0
    hbase, ledger, backup = _stores(run)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            run.daemon.check()
            try:
                accounting = account(run.messages, run.published, hbase, ledger, backup)
            except Exception as error:  # noqa: BLE001 - a store still creating its tables: try again
                accounting, last_error = None, error
            if accounting is not None and accounting.complete:
                break
            if time.monotonic() >= deadline:
                if accounting is None:
                    raise RuntimeError(f"could not read the stores: {last_error}")
                break
            time.sleep(2.0)
    finally:
        for store in (hbase, ledger, backup):
            try:
                store.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
    run.summary.update(accounting.as_summary())
    run.summary["ingestion_seconds"] = round(time.monotonic() - run.published_at, 2)
    if not accounting.complete:
        raise RuntimeError(f"{accounting.unaccounted} of {accounting.generated} generated payments unaccounted for "
                           f"after {timeout_s:.0f}s (e.g. {', '.join(accounting.unaccounted_sample[:3])}); "
                           f"daemon log: {run.daemon.log_path}")


def stop_dagster_daemon(run: DemoRun) -> None:
    """Stops the daemon and everything it started. In a data dir the user keeps (--data-dir), the generation
    schedule is turned off again first, so a later `payment-platform up` on it starts as it was."""
    daemon = run.daemon
    if daemon is None:
        return
    try:
        if run.options.data_dir is not None and GENERATION_SCHEDULE in run.summary.get("schedules_on", []):
            daemon.stop_schedule(GENERATION_SCHEDULE)
            run.summary["schedules_on"] = []
    finally:
        daemon.stop()
        run.daemon = None


STEPS = [
    ("start dagster-daemon", start_dagster_daemon),
    ("generate and publish", publish_demo_batch),
    ("ingest (sensor runs)", wait_for_ingestion),
    ("stop dagster-daemon", stop_dagster_daemon),
]
