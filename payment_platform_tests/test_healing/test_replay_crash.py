"""Dagster crashes in the middle of a replay: the daemon, its code server and the replay run's worker are
SIGKILLed while the run is draining the backup. When the daemon comes back, the replay sensor finds the dead
worker (its pid, recorded in the run's tags, is gone), fails the run at once instead of leaving replay held until
the job's dagster/max_runtime (3,600 s), and requests a new run under a fresh run key; the backup drains and every
payment is in both stores once.

HBase's share of the payments goes to the backup through a real ingestion with the (private) HBase gateway down.
The gateway is then back and healthy for the replay sensor's probe, and frozen with SIGSTOP as soon as the run is
requested, so the run is reliably caught inside its work."""
from __future__ import annotations

import signal
import time
import uuid

import dagster as dg
import pytest

from payment_platform.defs.replay.replay import REPLAY_JOB
from payment_platform.generation.generator import generate
from payment_platform.ingestion.loader import Ingestor, OffsetRange
from payment_platform.reconciliation.compare import AllPayments
from payment_platform.reconciliation.readers import HBaseReader
from devstack.stack.dagster_process import DagsterDaemon
from payment_platform.stores import kafka
from payment_platform_tests.waiting import watching, wait_until
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import RedisState

from .dagster_crashes import RESUME_S, crash_while_working, wait_until_back

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT = 40
REQUEST_S = 120  # the first daemon boots (10-50 s) and its replay sensor ticks (every 30 s)


def replay_runs(instance: dg.DagsterInstance, since: float) -> list[dg.DagsterRun]:
    """This test's replay runs (the Dagster storage is the session stack's, shared by the tests run before)."""
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name=REPLAY_JOB))
            if r.create_timestamp.timestamp() >= since]


def test_after_a_dagster_crash_mid_replay_the_backup_drains_and_every_payment_lands_once(
        stack, private_hbase, private_mongo, tmp_path, monkeypatch):
    started = time.time()
    topic = f"replay-crash-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    mongo_uri, fallback = f"mongodb://127.0.0.1:{private_mongo.port}", tmp_path / "failed_payments"
    env = {**stack.env(), "PAYMENTS_TOPIC": topic, "HBASE_HOST": "127.0.0.1", "HBASE_PORT": str(private_hbase.port),
           "MONGO_URI": mongo_uri, "FAILED_PAYMENTS_DIR": str(fallback)}
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", stack.dagster_postgres_url)
    messages = list(generate(COUNT, seed=31))
    ids = {m.payment_id for m in messages}
    with kafka.Publisher(stack.endpoints.kafka, topic) as publisher:
        assert publisher.publish(messages).acknowledged == COUNT
    hbase = HBaseStore("127.0.0.1", private_hbase.port, timeout_ms=3000)
    ledger = PostgresLedger(stack.endpoints.postgres)  # the schema the daemon's runs use
    backup = FailedPaymentBackup(mongo_uri, fallback, timeout_ms=1000)

    # HBase is down during ingestion: Postgres gets every payment, HBase's share goes to the backup, and the
    # progress recorded leaves the daemon's ingestion sensor nothing to do on this topic
    private_hbase.kill()
    ingestor = Ingestor(stack.endpoints.kafka, HBaseStore("127.0.0.1", private_hbase.port, timeout_ms=1000),
                        PostgresLedger(stack.endpoints.postgres), FailedPaymentBackup(mongo_uri, fallback),
                        RedisState(stack.endpoints.redis))
    try:
        ingestor.ingest(OffsetRange(topic, 0, 0, COUNT))
    finally:
        ingestor.close()
    assert backup.size("hbase") == COUNT and ledger.existing_ids(ids) == ids
    private_hbase.start()  # healthy again: the replay sensor's probe passes

    home = tmp_path / "dagster_home"
    daemon = DagsterDaemon(home, env, tmp_path / "daemon-1.log").start()
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        wait_until(lambda: replay_runs(instance, started), REQUEST_S, "the replay sensor requesting a run", every_s=0.1,
                   **watching(daemon))
        private_hbase.popen.send_signal(signal.SIGSTOP)  # the run worker is still booting: it will hang on HBase
        dead = crash_while_working(daemon, lambda: replay_runs(instance, started), 60)
    finally:
        private_hbase.popen.send_signal(signal.SIGCONT)
        daemon.stop()
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.STARTED  # what a crash leaves behind
    assert backup.size("hbase") > 0  # caught before it drained

    def healed():
        try:
            landed = sorted(r.payment_id for r in HBaseReader.from_store(hbase).iter_records(AllPayments()))
        except Exception:  # noqa: BLE001 - HBase's tables not created yet (the gateway came back empty)
            hbase.reset()
            return False
        return backup.size() == 0 and landed == sorted(ids)  # sorted lists: a payment twice would show

    restarted, restarted_at = time.monotonic(), time.time()
    with DagsterDaemon(home, env, tmp_path / "daemon-2.log") as daemon:
        back = wait_until_back(instance, daemon, restarted_at)
        wait_until(healed, RESUME_S, "the backup draining after Dagster came back", every_s=1.0, **watching(daemon))
        took = time.monotonic() - back
        # the run that drained it finishes its bookkeeping
        wait_until(lambda: [r for r in replay_runs(instance, started) if r.status == dg.DagsterRunStatus.SUCCESS],
                   60, "the run that drained it succeeding", every_s=1.0, **watching(daemon))
    runs = replay_runs(instance, started)
    timeline = sorted((round(instance.get_run_record_by_id(r.run_id).create_timestamp.timestamp() - restarted_at, 1),
                       r.status.value, r.tags.get("dagster/run_key", "")) for r in runs)
    print(f"replay healed {took:.1f} s after Dagster came back ({back - restarted:.1f} s after the daemon process "
          f"started); replay runs (created: seconds after the restart; status, run key): {timeline}")

    failed = instance.get_run_by_id(dead.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert failed.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"  # failed by the sensor
    assert [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS] == [dead.run_id]
    assert ledger.existing_ids(ids) == ids  # once each: payment_id is the primary key
    assert hbase.existing_ids(ids) == ids  # the payments_by_id index agrees with the rows read above
    instance.dispose()
    for store in (ledger, hbase, backup):
        store.close()
