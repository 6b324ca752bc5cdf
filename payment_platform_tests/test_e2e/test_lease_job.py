"""The lease run, executed in process against the real stack: it ingests its partition continuously (payments
published while it runs land), reports every micro-batch as a materialization of the stores' assets with its
range and timings, evaluates the range checks of what landed, and holds the partition alone (a second lease
waits; a lease whose process dies is free at once)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import dagster as dg
import pytest

from payment_platform.defs import asset_keys
from payment_platform_tests.waiting import wait_until
from payment_platform.defs.checks.checks import RANGE_CHECK_KEYS
from payment_platform.defs.ingestion.assets import CONSUMER_GROUP
from payment_platform.defs.ingestion.lease_job import ingest_lease_job
from payment_platform.defs.ingestion.runs import lease_run_config
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.generation.generator import generate
from payment_platform.stores import kafka
from payment_platform.stores.postgres import PartitionLease, PostgresLedger
from payment_platform_tests.test_e2e.test_range_job import resources

pytestmark = pytest.mark.stack

SHORT_LEASE = dict(lease_seconds=6.0, handover_seconds=1.0, lease_idle_seconds=2.0, range_check_seconds=0.5,
                   min_batch_size=10, max_wait_seconds=0.2, chunk_size=7)


def run_lease(topic: str, resource_defs: dict, instance=None):
    definitions = dg.Definitions(jobs=[ingest_lease_job], resources=resource_defs)
    return definitions.resolve_job_def(ingest_lease_job.name).execute_in_process(
        run_config=lease_run_config(topic, 0, 0), instance=instance or dg.DagsterInstance.ephemeral())


def publish(bootstrap: str, topic: str, count: int) -> list:
    messages = list(generate(count, seed=uuid.uuid4().int % 2**31))
    with kafka.Publisher(bootstrap, topic) as publisher:
        assert publisher.publish(messages).acknowledged == count
    return messages


def test_a_lease_lands_what_is_published_while_it_runs_batch_by_batch(stack, tmp_path, one_partition_topic):
    topic = one_partition_topic
    first = publish(stack.endpoints.kafka, topic, 30)
    later: list = []

    def publish_during_the_lease():
        """Once the first 30 landed, three bursts: they land in the same run, as later micro-batches."""
        ledger = PostgresLedger(stack.endpoints.postgres)
        try:  # retried until the lease has created the tables
            wait_until(lambda: ledger.read_progress(topic).get(0) == 30, 60, "the first 30 payments landing",
                       every_s=0.05, retry_on=(Exception,))
        finally:
            ledger.close()
        for _ in range(3):
            later.extend(publish(stack.endpoints.kafka, topic, 15))
            time.sleep(0.7)

    burst = threading.Thread(target=publish_during_the_lease)
    burst.start()
    result = run_lease(topic, resources(stack, topic, tmp_path,
                                        ingestion_settings=IngestionSettingsResource(**SHORT_LEASE)))
    burst.join()
    assert result.success

    ledger = PostgresLedger(stack.endpoints.postgres)
    try:
        assert ledger.read_progress(topic) == {0: 75}
        ids = [m.payment_id for m in first + later]
        assert ledger.existing_ids(ids) == set(ids)
    finally:
        ledger.close()

    batches = [e.materialization.metadata for e in result.get_asset_materialization_events()
               if e.asset_key == asset_keys.POSTGRES_PAYMENTS]
    assert len(batches) >= 2, "the payments published during the lease land as later micro-batches"
    spans = [(b["start_offset"].value, b["end_offset"].value) for b in batches]
    assert spans[0][0] == 0 and spans[-1][1] == 75
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), f"batches are contiguous: {spans}"
    assert sum(b["messages"].value for b in batches) == 75
    assert all(b["batch_seconds"].value >= b["loader_seconds"].value > 0 for b in batches)
    # the reporting of a batch (its events) is part of the next one's fixed cost, measured, never zero
    assert batches[0]["report_seconds"].value == 0 and all(b["report_seconds"].value > 0 for b in batches[1:])
    assert all(b["batch_overhead_seconds"].value >= b["report_seconds"].value for b in batches)
    hbase_batches = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_keys.HBASE_PAYMENTS]
    assert len(hbase_batches) == len(batches)

    evaluations = [e.asset_check_evaluation_data for e in result.all_events
                   if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    assert {e.asset_check_key for e in evaluations} == set(RANGE_CHECK_KEYS)
    assert all(e.passed for e in evaluations), [e.description for e in evaluations if not e.passed]
    checked = sum(e.metadata["expected_payments"].value for e in evaluations
                  if e.asset_check_key.name == "ingested_ranges_consistency")
    assert checked == 75, "every landed batch is checked once"
    consistency = [e.metadata for e in evaluations if e.asset_check_key.name == "ingested_ranges_consistency"]
    # the checks parsed the batches' messages as the lease read them, not fetched from the broker again
    assert sum(m["ranges_read_from_memory"].value for m in consistency) == len(batches)
    assert sum(m["ranges_read_from_kafka"].value for m in consistency) == 0
    with kafka.KafkaClient(stack.endpoints.kafka, topic) as client:  # Kafka's tools see the lag too
        assert client.group_offsets(CONSUMER_GROUP) == {0: 75}


def test_a_second_lease_waits_and_a_dead_holder_frees_the_partition_at_once(stack, one_partition_topic):
    topic = one_partition_topic
    dsn = stack.endpoints.postgres
    holder = PartitionLease(dsn, topic, 0)
    assert holder.acquire(1.0)
    try:
        waiting = PartitionLease(dsn, topic, 0)
        assert not waiting.acquire(0.3), "one lease per partition"
        assert PartitionLease(dsn, topic, 1).acquire(0.3), "another partition is free"
    finally:
        holder.release()
    assert waiting.acquire(1.0), "free once released"
    waiting.release()

    # a process that holds the lease and is SIGKILLed: the server ends its session, the lease is free at once
    script = ("import sys, time; from payment_platform.stores.postgres import PartitionLease; "
              "lease = PartitionLease(sys.argv[1], sys.argv[2], 0); assert lease.acquire(5); "
              "print('held', flush=True); time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", script, dsn, topic], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        assert not PartitionLease(dsn, topic, 0).acquire(0.3)
        process.kill()
        process.wait(10)
        after = PartitionLease(dsn, topic, 0)
        assert after.acquire(5.0), "a dead holder's lease is released with its session"
        after.release()
    finally:
        process.kill()


def test_a_lease_that_cannot_get_its_partition_ends_without_touching_it(stack, tmp_path, one_partition_topic):
    topic = one_partition_topic
    publish(stack.endpoints.kafka, topic, 5)
    holder = PartitionLease(stack.endpoints.postgres, topic, 0)
    assert holder.acquire(1.0)
    try:
        settings = IngestionSettingsResource(**{**SHORT_LEASE, "lease_acquire_seconds": 0.5})
        result = run_lease(topic, resources(stack, topic, tmp_path, ingestion_settings=settings))
    finally:
        holder.release()
    assert result.success
    assert not result.get_asset_materialization_events()
    ledger = PostgresLedger(stack.endpoints.postgres)
    try:
        assert ledger.read_progress(topic) == {}
    finally:
        ledger.close()


def test_a_range_check_that_failed_earlier_in_a_lease_stays_failed_in_its_later_evaluations():
    from payment_platform.defs.ingestion.lease_job import sticky

    def evaluation(passed: bool, description: str) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(asset_key=asset_keys.HBASE_PAYMENTS, check_name="ingested_ranges_consistency",
                                       passed=passed, description=description, metadata={})

    failed_before: dict = {}
    assert sticky(evaluation(True, "batch 1 consistent"), failed_before).passed
    assert not sticky(evaluation(False, "2 lost"), failed_before).passed
    later = sticky(evaluation(True, "batch 3 consistent"), failed_before)
    assert not later.passed and "FAILED earlier in this lease: 2 lost" in later.description
    assert later.metadata["failed_earlier_in_this_lease"].value == "2 lost"
