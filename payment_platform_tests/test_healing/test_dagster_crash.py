"""Dagster itself crashes mid-run: the daemon, its code server and the run worker are SIGKILLed while a range run
is ingesting. When the daemon comes back, the ingestion sensor finds the dead worker (its pid, recorded in the
run's tags, is gone) and fails the run at once instead of waiting out dagster/max_runtime (300 s); the run is
retried and the range lands once. The HBase gateway (private) is frozen with SIGSTOP while the run starts, so
the run is reliably caught in the middle."""
from __future__ import annotations

import signal
import time
import uuid

import dagster as dg
import pytest

from payment_platform.defs.ingestion.runs import LEASE_JOB_NAME, RANGE_TAG
from devstack.stack.dagster_process import DagsterDaemon
from payment_platform.stores import kafka
from payment_platform_tests.waiting import watching, wait_until
from payment_platform.stores.backup import FailedPaymentBackup, default_fallback_dir
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger

from ..test_loader.conftest import publish
from ..test_stores.payments import payment_doc, raw
from .dagster_crashes import RESUME_S, crash_while_working, wait_until_back

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT = 40


def range_runs(instance, topic):
    return [r for r in instance.get_runs(filters=dg.RunsFilter(job_name=LEASE_JOB_NAME))
            if r.tags.get(RANGE_TAG, "").startswith(f"ingest:{topic}:")]


def test_after_a_dagster_crash_mid_run_ingestion_resumes_and_every_payment_lands_once(
        stack, private_hbase, tmp_path, monkeypatch):
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    env = {**stack.env(), "PAYMENTS_TOPIC": topic, "HBASE_HOST": "127.0.0.1", "HBASE_PORT": str(private_hbase.port)}
    ids = {payment_doc(i, topic)["payment_id"] for i in range(COUNT)}
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", stack.dagster_postgres_url)
    ledger = PostgresLedger(stack.endpoints.postgres)
    ledger.ensure_schema()  # a fresh session stack: the tables the assertions read exist from the start
    hbase = HBaseStore("127.0.0.1", private_hbase.port, timeout_ms=3000)
    backup = FailedPaymentBackup(stack.endpoints.mongo, default_fallback_dir(env))

    daemon = DagsterDaemon(home, env, tmp_path / "daemon-1.log").start()
    try:
        instance = dg.DagsterInstance.from_config(str(home))
        private_hbase.popen.send_signal(signal.SIGSTOP)  # the run will hang on HBase: caught mid-run
        publish(stack.endpoints.kafka, topic, [raw(payment_doc(i, topic)) for i in range(COUNT)])
        dead = crash_while_working(daemon, lambda: range_runs(instance, topic), 120)
    finally:
        private_hbase.popen.send_signal(signal.SIGCONT)
        daemon.stop()
    assert ledger.read_progress(topic).get(0, 0) == 0  # nothing recorded by the dead run

    def landed_once():
        if ledger.read_progress(topic).get(0) != COUNT or ledger.existing_ids(ids) != ids:
            return False
        hbase.reset()
        return hbase.existing_ids(ids) | backup.stored_ids("hbase", ids) == ids

    restarted, restarted_at = time.monotonic(), time.time()
    with DagsterDaemon(home, env, tmp_path / "daemon-2.log") as daemon:
        back = wait_until_back(instance, daemon, restarted_at)  # from then on the platform has RESUME_S to heal
        wait_until(landed_once, RESUME_S, "healed after Dagster came back", every_s=1.0, **watching(daemon))
        took = time.monotonic() - back
        # the run that landed it finishes its bookkeeping
        wait_until(lambda: [r for r in range_runs(instance, topic) if r.status == dg.DagsterRunStatus.SUCCESS],
                   60, "the run that landed it succeeding", every_s=1.0, **watching(daemon))
    records = instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in range_runs(instance, topic)]))
    timeline = sorted((round(r.create_timestamp.timestamp() - restarted_at, 1),
                       round((r.end_time or restarted_at) - restarted_at, 1), r.dagster_run.status.value,
                       r.dagster_run.tags.get(RANGE_TAG), r.dagster_run.tags.get("dagster/retry_number", "0"))
                      for r in records)
    print(f"the range landed {took:.1f} s after Dagster came back ({back - restarted:.1f} s after the daemon "
          f"process started); runs (created, ended: seconds after the restart; status, range, retry): {timeline}")

    dead_run = instance.get_run_by_id(dead.run_id)
    assert dead_run.status == dg.DagsterRunStatus.FAILURE
    assert dead_run.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"  # failed by the sensor
    runs = range_runs(instance, topic)
    assert [r.status for r in runs].count(dg.DagsterRunStatus.SUCCESS) == 1
    # only the killed run failed: its retry (which starts with a copy of the dead run's tags) was left alone
    assert [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS] == [dead_run.run_id]
    ranges = [row for row in ledger.resets(topic)]  # no reset was needed: offsets never went backwards
    assert not ranges
    instance.dispose()
    for store in (ledger, hbase, backup):
        store.close()
