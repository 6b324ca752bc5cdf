"""End to end under the real `dagster-daemon`: payments published to Kafka appear in HBase and Postgres,
ingested by the lease runs the sensor requests (DAGSTER_HOME in tmp, storage in the stack's Postgres, sensor on)."""
from __future__ import annotations

import uuid

import dagster as dg
import pytest

from payment_platform.defs import asset_keys
from payment_platform.defs.ingestion.runs import LEASE_JOB_NAME, RANGE_TAG
from devstack.demo.accounting import account
from payment_platform.domain.rowkeys import row_key
from payment_platform.domain.validation import parse_and_validate
from payment_platform.generation.generator import generate
from payment_platform.generation.settings import GenerationSettings
from devstack.stack.dagster_process import DagsterDaemon
from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup, default_fallback_dir
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform_tests.waiting import watching, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT = 300
WAIT_S = 150  # bounded: the daemon needs a few seconds to load, then each run a few seconds


def test_published_payments_land_in_both_stores_under_the_daemon(stack, tmp_path, monkeypatch):
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    endpoints = stack.endpoints
    kafka.ensure_topic(endpoints.kafka, topic, partitions=3)
    env = {**stack.env(), "PAYMENTS_TOPIC": topic}
    messages = list(generate(COUNT, seed=7, settings=GenerationSettings(bad_fraction=0.03)))
    hbase = HBaseStore(endpoints.hbase_host, endpoints.hbase_port)
    ledger = PostgresLedger(endpoints.postgres)
    backup = FailedPaymentBackup(endpoints.mongo, default_fallback_dir(env))

    with DagsterDaemon(tmp_path / "dagster_home", env, tmp_path / "daemon.log") as daemon:
        with kafka.Publisher(endpoints.kafka, topic) as publisher:
            published = publisher.publish(messages).acknowledged
        assert published == COUNT

        def settled():
            try:
                result = account(messages, published, hbase, ledger, backup)
            except Exception:  # noqa: BLE001 - tables not created yet by the first run
                return None
            return result if result.unaccounted == 0 else None

        accounting = wait_until(settled, WAIT_S, "every payment landing", every_s=2.0, **watching(daemon))
        end_offsets = kafka.end_offsets(endpoints.kafka, topic)
        progress = wait_until(lambda: (p := ledger.read_progress(topic)) == end_offsets and p, 30,
                              f"progress recorded up to the end offsets {end_offsets}", every_s=1.0, **watching(daemon))
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", stack.dagster_postgres_url)
        instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
        try:
            def topic_lags():
                records = instance.fetch_observations(asset_keys.PAYMENTS_TOPIC, limit=500).records
                return [o.asset_observation.metadata["lag"].value for o in records
                        if o.asset_observation and o.asset_observation.metadata["topic"].value == topic]

            # the sensor observes the topic's lag: the newest observation reaches 0 once all is ingested
            lags = wait_until(lambda: (lags := topic_lags()) and lags[0] == 0 and lags, 30,
                              "a lag observation of 0", every_s=1.0, **watching(daemon))

            def finished_topic_runs():
                runs = instance.get_runs(filters=dg.RunsFilter(
                    job_name=LEASE_JOB_NAME, tags={"dagster/sensor_name": "payments_ingestion_sensor"}))
                mine = [r for r in runs if r.tags.get(RANGE_TAG, "").startswith(f"ingest:{topic}:")]
                return mine if mine and all(r.is_finished for r in mine) else None

            # a lease ends a few seconds after its partition went quiet (INGESTION_LEASE_IDLE_SECONDS in the tests)
            topic_runs = wait_until(finished_topic_runs, 60, "every lease run of the topic finished", every_s=1.0,
                                    **watching(daemon))
        finally:
            instance.dispose()

    good = [m for m in messages if m.defect is None]
    duplicates = [m for m in messages if m.defect == "duplicate_payment_id"]
    bad = [m for m in messages if m.defect not in (None, "duplicate_payment_id")]
    # every valid payment is in both stores, every bad one in quarantine, duplicates absorbed
    assert accounting.hbase == accounting.postgres == len({m.payment_id for m in good + duplicates})
    assert accounting.quarantined == len(bad) and accounting.duplicates == len(duplicates)
    assert accounting.backed_up == 0
    assert progress == end_offsets  # progress recorded up to the end of the topic, contiguous by construction
    assert topic_runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in topic_runs)
    # the run workers keyed the rows in the layout this process has (HBASE_SALT_BUCKETS reaches them through the
    # environment; `make test` runs this test unsalted and salted)
    for message in good[:5]:
        payment = parse_and_validate(message.value)
        assert hbase.row_key_for(payment.payment_id) == row_key(payment, hbase.salt_buckets)
    keys = {r.tags[RANGE_TAG] for r in topic_runs}
    assert all(k.startswith(f"ingest:{topic}:") for k in keys)
    assert lags and lags[0] == 0 and max(lags) > 0, lags  # the lag was seen, then seen drained
    for store in (hbase, ledger, backup):
        store.close()
